/**
 * CPUID tables as KVM carries them: `struct kvm_cpuid2` (a u32 count, padding, then
 * `struct kvm_cpuid_entry2` × count; arch/x86/include/uapi/asm/kvm.h). Decoding is bounded by
 * the buffer, so a short or corrupt table is a RangeError, never an out-of-bounds read.
 */
import { KVM_CPUID2, KVM_CPUID_ENTRY2 } from "../../abi/kvm/layouts.js";
import { getU32 } from "./le-bytes.js";

/** One CPUID leaf/subleaf as KVM reports it. */
export interface CpuidEntry {
  readonly function: number;
  readonly index: number;
  /** KVM_CPUID_FLAG_* (1 = significant index). */
  readonly flags: number;
  readonly eax: number;
  readonly ebx: number;
  readonly ecx: number;
  readonly edx: number;
}

const E = KVM_CPUID_ENTRY2.fields;
const HEAD = KVM_CPUID2.fields.entries.offset;
const NENT = KVM_CPUID2.fields.nent.offset;
const STRIDE = KVM_CPUID_ENTRY2.size;

/** Number of entries a kvm_cpuid2 buffer says it holds. */
export function cpuidCount(bytes: Uint8Array): number {
  if (bytes.length < HEAD) throw new RangeError(`kvm_cpuid2 needs ${HEAD} header bytes`);
  return getU32(bytes, NENT);
}

/** Byte size of a kvm_cpuid2 holding `count` entries. */
export function cpuidByteSize(count: number): number {
  return HEAD + STRIDE * count;
}

/**
 * Decodes a `struct kvm_cpuid2`.
 * @throws {RangeError} if the buffer is shorter than its count says.
 */
export function decodeCpuid(bytes: Uint8Array): CpuidEntry[] {
  const count = cpuidCount(bytes);
  if (bytes.length < cpuidByteSize(count)) {
    throw new RangeError(`kvm_cpuid2 claims ${count} entries but has ${bytes.length} bytes`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: CpuidEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = HEAD + i * STRIDE;
    out.push({
      function: view.getUint32(at + E.function.offset, true),
      index: view.getUint32(at + E.index.offset, true),
      flags: view.getUint32(at + E.flags.offset, true),
      eax: view.getUint32(at + E.eax.offset, true),
      ebx: view.getUint32(at + E.ebx.offset, true),
      ecx: view.getUint32(at + E.ecx.offset, true),
      edx: view.getUint32(at + E.edx.offset, true),
    });
  }
  return out;
}

/** Encodes entries as a `struct kvm_cpuid2` (padding zero). */
export function encodeCpuid(entries: readonly CpuidEntry[]): Uint8Array {
  const out = new Uint8Array(cpuidByteSize(entries.length));
  const view = new DataView(out.buffer);
  view.setUint32(NENT, entries.length, true);
  entries.forEach((e, i) => {
    const at = HEAD + i * STRIDE;
    view.setUint32(at + E.function.offset, e.function, true);
    view.setUint32(at + E.index.offset, e.index, true);
    view.setUint32(at + E.flags.offset, e.flags, true);
    view.setUint32(at + E.eax.offset, e.eax, true);
    view.setUint32(at + E.ebx.offset, e.ebx, true);
    view.setUint32(at + E.ecx.offset, e.ecx, true);
    view.setUint32(at + E.edx.offset, e.edx, true);
  });
  return out;
}
