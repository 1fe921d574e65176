/**
 * Shared presentation helpers for restore reports, diffs and inspect: a register as
 * `{ id, name, size }` and a value as hex.
 */
import { decodeReg } from "../../abi/catalog.js";
import { formatRegId, regSize, type RegId } from "../../abi/regid.js";
import type { RegRef } from "./errors.js";

/** The catalog name of `id`, or `null` when the catalog does not know it. */
export function regName(id: RegId): string | null {
  const info = decodeReg(id);
  return info.known ? info.name : null;
}

/** A register as reported: `{ id: "0x…", name, size }`. */
export function regRef(id: RegId): RegRef {
  return { id: formatRegId(id), name: regName(id), size: regSize(id) };
}

/** `core.ra (0x8030000002000001)`, or the bare id for an unknown register. */
export function refText(ref: RegRef): string {
  return ref.name === null ? `${ref.id} (unknown)` : `${ref.name} (${ref.id})`;
}

/** Values up to this size print as one little-endian integer; larger ones as raw bytes. */
export const INTEGER_HEX_MAX_BYTES = 16;

/**
 * A register value as hex: `0x` + the little-endian integer (2 digits per byte) for values of
 * at most 16 bytes; larger values (structs, vector registers) as bytes in memory order.
 */
export function valueHex(bytes: Uint8Array): string {
  let out = "";
  if (bytes.length <= INTEGER_HEX_MAX_BYTES) {
    for (let i = bytes.length - 1; i >= 0; i--)
      out += (bytes[i] ?? 0).toString(16).padStart(2, "0");
    return "0x" + out;
  }
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** True when two byte arrays hold the same bytes. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Byte ranges `[start, end)` where `a` and `b` (same length) differ, merged when adjacent. */
export function differingRanges(a: Uint8Array, b: Uint8Array): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    const last = out[out.length - 1];
    if (last?.[1] === i) last[1] = i + 1;
    else out.push([i, i + 1]);
  }
  return out;
}

// Scratch for reading an id's high word without bigint arithmetic; typed arrays use the host
// byte order, little-endian on every host regvisor runs on (x86-64, arm64, riscv64).
const idScratch = new BigUint64Array(1);
const idHalves = new Uint32Array(idScratch.buffer);

/**
 * `regSize(id)` without bigint shifts: restore planning sizes every register several times,
 * and the bigint path (two allocations per call) showed up in whole-vCPU restore profiles.
 */
export function sizeOf(id: RegId): number {
  idScratch[0] = id;
  return 1 << (((idHalves[1] ?? 0) >>> 20) & 0xf);
}
