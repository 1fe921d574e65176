/**
 * Guest-physical lookups over memslots, for the few places the "kernel" touches guest memory
 * itself (SBI address checks, legacy SBI hart masks) and for VMM helpers such as the demo's
 * DBCN console (which, like kvmtool, reads the guest buffer through its own mapping).
 */
import type { Memslot } from "./riscv/contract.js";

/** The slot holding guest-physical bytes `gpa .. gpa+len-1`, or undefined. */
export function slotFor(slots: readonly Memslot[], gpa: bigint, len: number): Memslot | undefined {
  for (const slot of slots) {
    const start = BigInt(slot.gpa);
    if (gpa >= start && gpa + BigInt(len) <= start + BigInt(slot.bytes.length)) return slot;
  }
  return undefined;
}

/** A view of `len` guest-physical bytes at `gpa`, or undefined when no single slot holds them. */
export function physView(
  slots: readonly Memslot[],
  gpa: bigint,
  len: number,
): Uint8Array | undefined {
  const slot = slotFor(slots, gpa, len);
  if (slot === undefined) return undefined;
  const offset = Number(gpa - BigInt(slot.gpa));
  return slot.bytes.subarray(offset, offset + len);
}

/** Reads a little-endian u64 at guest-physical `gpa`, or undefined outside RAM. */
export function readPhysU64(slots: readonly Memslot[], gpa: bigint): bigint | undefined {
  const view = physView(slots, gpa, 8);
  if (view === undefined) return undefined;
  let value = 0n;
  for (let i = 7; i >= 0; i--) value = (value << 8n) | BigInt(view[i] ?? 0);
  return value;
}
