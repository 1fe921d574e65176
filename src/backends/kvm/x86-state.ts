/**
 * The x86 vCPU state KVM moves as structs (arch/x86/include/uapi/asm/kvm.h; ABI doc §3.2, §5):
 * REGS, SREGS, FPU, XSAVE, XCRS, VCPU_EVENTS, MP_STATE, DEBUGREGS, LAPIC, CPUID2, TSC_KHZ,
 * and MSRs through KVM_GET_MSRS / KVM_SET_MSRS. Each struct is read into the vCPU's scratch
 * memory and copied out, so callers never see native memory.
 */
import { ERRNO } from "../../abi/kvm/errno.js";
import { KvmError } from "../../abi/kvm/errors.js";
import { IOCTLS, type IoctlName } from "../../abi/kvm/ioctls.js";
import { KVM_CPUID2, KVM_CPUID_ENTRY2, KVM_MSRS, KVM_MSR_ENTRY } from "../../abi/kvm/layouts.js";
import { X86_PSEUDO, type X86PseudoName } from "../../abi/arch/x86/index.js";
import type { RegId } from "../../abi/regid.js";
import { cpuidByteSize, cpuidCount } from "./cpuid.js";
import { kvmFail } from "./errors.js";
import { ioctlMem, ioctlValue, type NativeMemory } from "./ffi.js";
import type { Scratch } from "./scratch.js";

/** What the struct helpers need from a vCPU: its fd (checked open) and its scratch memory. */
export interface VcpuIo {
  /** The vCPU fd; throws `KvmClosedError` naming `action` when closed. */
  fd(action: string): number;
  readonly scratch: Scratch;
  /** The MSR's ONE_REG id, for error messages. */
  msrId(index: number): RegId;
}

/** The fixed-size struct groups (the pseudo-registers other than CPUID and TSC_KHZ). */
export type StructName = Exclude<X86PseudoName, "CPUID" | "TSC_KHZ">;

/** Every fixed-size struct group, in the x86 catalog's order. */
export const STRUCT_NAMES: readonly StructName[] = [
  "REGS",
  "SREGS",
  "FPU",
  "XSAVE",
  "XCRS",
  "VCPU_EVENTS",
  "MP_STATE",
  "DEBUGREGS",
  "LAPIC",
];

function ioctlNamed(name: string): IoctlName {
  if (!(name in IOCTLS)) throw new Error(`x86 pseudo catalog names unknown ioctl ${name}`);
  // Checked just above: the name is a key of the ioctl table.
  return name as IoctlName;
}

/** How one struct group moves: ioctl names and numbers, size, and the error actions. */
export interface StructSpec {
  readonly get: IoctlName;
  readonly set: IoctlName;
  readonly getNumber: number;
  readonly setNumber: number;
  readonly size: number;
  readonly readAction: string;
  readonly writeAction: string;
}

/** GET/SET ioctls and size of each struct group, from the x86 pseudo-register catalog. */
export const STRUCT_IOCTLS: Readonly<Record<StructName, StructSpec>> = Object.fromEntries(
  STRUCT_NAMES.map((name): [StructName, StructSpec] => {
    const reg = X86_PSEUDO[name];
    const get = ioctlNamed(reg.get);
    const set = ioctlNamed(reg.set);
    return [
      name,
      {
        get,
        set,
        getNumber: IOCTLS[get].number,
        setNumber: IOCTLS[set].number,
        size: reg.structSize,
        readAction: `read ${name}`,
        writeAction: `write ${name}`,
      },
    ];
  }),
  // One entry per StructName, built just above.
) as Record<StructName, StructSpec>;

/**
 * Reads a struct group into `out` at `offset` (or a new array of its size).
 * @throws {KvmError} if the ioctl fails.
 */
export function getStruct(io: VcpuIo, name: StructName, out?: Uint8Array, offset = 0): Uint8Array {
  const spec = STRUCT_IOCTLS[name];
  const fd = io.fd(spec.readAction);
  // Every GET ioctl here copies a whole kernel-side struct out (copy_to_user of sizeof), so
  // the buffer needs no clearing.
  const mem = io.scratch.get(spec.size);
  // FFI: vCPU scratch, at least spec.size bytes (get() above); the kernel writes sizeof(struct).
  const r = ioctlMem(fd, spec.getNumber, mem, 0);
  if (r < 0) throw kvmFail(spec.get, r, { action: `Cannot read ${name}` });
  const target = out ?? new Uint8Array(spec.size);
  target.set(io.scratch.prefix(spec.size), offset);
  return target;
}

/**
 * Writes a struct group from `bytes` (exactly its size).
 * @throws {RangeError} if `bytes` has the wrong length (before any syscall).
 * @throws {KvmError} if the ioctl fails.
 */
export function setStruct(io: VcpuIo, name: StructName, bytes: Uint8Array): void {
  const spec = STRUCT_IOCTLS[name];
  if (bytes.length !== spec.size) {
    throw new RangeError(`${name} is ${spec.size} bytes, got ${bytes.length}`);
  }
  const fd = io.fd(spec.writeAction);
  const mem = io.scratch.get(spec.size);
  mem.bytes.set(bytes);
  // FFI: vCPU scratch holding exactly spec.size bytes of struct; the kernel only reads it.
  const r = ioctlMem(fd, spec.setNumber, mem, 0);
  if (r < 0) throw kvmFail(spec.set, r, { action: `Cannot write ${name}` });
}

// KVM_MAX_CPUID_ENTRIES (arch/x86/include/asm/kvm_host.h).
const CPUID_MAX_ENTRIES = 256;

/**
 * KVM_GET_CPUID2: the vCPU's CPUID table as `struct kvm_cpuid2` bytes.
 * @throws {KvmError} if the ioctl fails.
 */
export function getCpuidBytes(io: VcpuIo): Uint8Array {
  return readCpuid(io).slice();
}

/**
 * KVM_GET_CPUID2 into `out` at `offset` (header and valid entries; bytes after them untouched).
 * @throws {RangeError} if `out` has no room for the table.
 * @throws {KvmError} if the ioctl fails.
 */
export function getCpuidInto(io: VcpuIo, out: Uint8Array, offset: number): void {
  const table = readCpuid(io);
  if (offset + table.length > out.length) {
    throw new RangeError(`kvm_cpuid2 of ${table.length} bytes does not fit at offset ${offset}`);
  }
  out.set(table, offset);
}

/** KVM_GET_CPUID2 into scratch; a view of the header and the valid entries. */
function readCpuid(io: VcpuIo): Uint8Array {
  const fd = io.fd("read CPUID");
  const max = cpuidByteSize(CPUID_MAX_ENTRIES);
  const mem = io.scratch.get(max);
  // The kernel writes nent and the entries it has (arch/x86/kvm/cpuid.c
  // kvm_vcpu_ioctl_get_cpuid2), and only those entries are copied out, so no clearing.
  mem.view.setUint32(KVM_CPUID2.fields.nent.offset, CPUID_MAX_ENTRIES, true);
  mem.view.setUint32(KVM_CPUID2.fields.nent.offset + 4, 0, true);
  // FFI: vCPU scratch sized for nent = 256 entries, which bounds what the kernel writes.
  const r = ioctlMem(fd, IOCTLS.KVM_GET_CPUID2.number, mem, 0);
  if (r < 0) throw kvmFail("KVM_GET_CPUID2", r, { action: "Cannot read CPUID" });
  const nent = mem.view.getUint32(KVM_CPUID2.fields.nent.offset, true);
  return mem.bytes.subarray(0, cpuidByteSize(Math.min(nent, CPUID_MAX_ENTRIES)));
}

/**
 * KVM_SET_CPUID2 from `struct kvm_cpuid2` bytes (extra bytes after the last entry ignored).
 * @throws {RangeError} if the table is truncated or too long.
 * @throws {KvmError} if the kernel refuses it.
 */
export function setCpuidBytes(io: VcpuIo, bytes: Uint8Array): void {
  const count = cpuidCount(bytes);
  const size = cpuidByteSize(count);
  if (count > CPUID_MAX_ENTRIES || bytes.length < size) {
    throw new RangeError(
      `kvm_cpuid2 with ${count} entries needs ${size} bytes, got ${bytes.length}`,
    );
  }
  const fd = io.fd("write CPUID");
  const mem = io.scratch.get(size);
  mem.bytes.set(bytes.subarray(0, size));
  // FFI: vCPU scratch holding the header and exactly `count` entries.
  const r = ioctlMem(fd, IOCTLS.KVM_SET_CPUID2.number, mem, 0);
  if (r < 0) throw kvmFail("KVM_SET_CPUID2", r, { action: "Cannot write CPUID" });
}

/** Entry size of kvm_cpuid2, for view code that sizes CPUID values. */
export const CPUID_ENTRY_SIZE = KVM_CPUID_ENTRY2.size;

/**
 * KVM_GET_TSC_KHZ: the guest TSC frequency.
 * @throws {KvmError} if the ioctl fails.
 */
export function getTscKhz(io: VcpuIo): number {
  const r = ioctlValue(io.fd("read TSC_KHZ"), IOCTLS.KVM_GET_TSC_KHZ.number, 0);
  if (r < 0) throw kvmFail("KVM_GET_TSC_KHZ", r, { action: "Cannot read TSC_KHZ" });
  return r;
}

/**
 * KVM_SET_TSC_KHZ. Writing the current frequency is a no-op that issues no ioctl, so state
 * restore works on hosts without KVM_CAP_TSC_CONTROL.
 * @throws {KvmError} if the kernel refuses a change.
 */
export function setTscKhz(io: VcpuIo, khz: number): void {
  if (!Number.isInteger(khz) || khz < 0 || khz > 0xffffffff) {
    throw new RangeError(`TSC frequency ${khz} kHz is not a u32`);
  }
  if (getTscKhz(io) === khz) return;
  const r = ioctlValue(io.fd("write TSC_KHZ"), IOCTLS.KVM_SET_TSC_KHZ.number, khz);
  if (r < 0) throw kvmFail("KVM_SET_TSC_KHZ", r, { action: "Cannot write TSC_KHZ" });
}

const MSR_HEAD = KVM_MSRS.fields.entries.offset;
const MSR_STRIDE = KVM_MSR_ENTRY.size;
const MSR_INDEX = KVM_MSR_ENTRY.fields.index.offset;
const MSR_DATA = KVM_MSR_ENTRY.fields.data.offset;

/**
 * Builds `struct kvm_msrs` in scratch: nmsrs, then per entry the index, zero reserved and the
 * data (8 bytes from `src` at `srcOffsets[i]`, or zero).
 */
function fillMsrs(
  io: VcpuIo,
  indices: readonly number[],
  src?: Uint8Array,
  srcOffsets?: readonly number[],
): NativeMemory {
  const n = indices.length;
  const mem = io.scratch.get(MSR_HEAD + MSR_STRIDE * n);
  const view = mem.view;
  const bytes = mem.bytes;
  view.setUint32(KVM_MSRS.fields.nmsrs.offset, n, true);
  view.setUint32(KVM_MSRS.fields.nmsrs.offset + 4, 0, true);
  for (let i = 0; i < n; i++) {
    const entry = MSR_HEAD + i * MSR_STRIDE;
    view.setUint32(entry + MSR_INDEX, indices[i] ?? 0, true);
    view.setUint32(entry + MSR_INDEX + 4, 0, true);
    const from = srcOffsets?.[i];
    if (src === undefined || from === undefined) {
      view.setUint32(entry + MSR_DATA, 0, true);
      view.setUint32(entry + MSR_DATA + 4, 0, true);
    } else {
      for (let b = 0; b < 8; b++) bytes[entry + MSR_DATA + b] = src[from + b] ?? 0;
    }
  }
  return mem;
}

/**
 * The error for a KVM_GET/SET_MSRS that stopped at entry `done`: the kernel reports partial
 * success as a count, and the same refusal through ONE_REG is EINVAL (ABI doc §6.3), so the
 * error carries EINVAL and names the MSR.
 */
function msrStopped(io: VcpuIo, ioctl: string, indices: readonly number[], done: number): KvmError {
  const index = indices[done] ?? 0;
  return new KvmError({
    action: ioctl === "KVM_GET_MSRS" ? "Cannot read" : "Cannot write",
    ioctl,
    errno: ERRNO.EINVAL,
    regId: io.msrId(index),
  });
}

/**
 * Reads MSRs with one KVM_GET_MSRS.
 * @throws {KvmError} naming the first MSR the kernel refused.
 */
export function getMsrs(io: VcpuIo, indices: readonly number[]): bigint[] {
  const mem = readMsrs(io, indices);
  return indices.map((_, i) => mem.view.getBigUint64(MSR_HEAD + i * MSR_STRIDE + MSR_DATA, true));
}

/**
 * Reads MSRs with one KVM_GET_MSRS, copying value `i` (8 bytes, little-endian) to
 * `out[outOffsets[i]]` without going through bigints.
 * @throws {KvmError} naming the first MSR the kernel refused.
 */
export function getMsrsInto(
  io: VcpuIo,
  indices: readonly number[],
  out: Uint8Array,
  outOffsets: readonly number[],
): void {
  const bytes = readMsrs(io, indices).bytes;
  for (let i = 0; i < indices.length; i++) {
    const from = MSR_HEAD + i * MSR_STRIDE + MSR_DATA;
    const to = outOffsets[i] ?? 0;
    for (let b = 0; b < 8; b++) out[to + b] = bytes[from + b] ?? 0;
  }
}

function readMsrs(io: VcpuIo, indices: readonly number[]): NativeMemory {
  const fd = io.fd("read MSRs");
  const mem = fillMsrs(io, indices);
  // FFI: fillMsrs() sized the scratch for nmsrs entries; the kernel touches no more.
  const r = ioctlMem(fd, IOCTLS.KVM_GET_MSRS.number, mem, 0);
  if (r < 0) throw kvmFail("KVM_GET_MSRS", r, { action: "Cannot read MSRs" });
  if (r < indices.length) throw msrStopped(io, "KVM_GET_MSRS", indices, r);
  return mem;
}

/**
 * Writes MSRs with one KVM_SET_MSRS; returns how many the kernel applied (all, or it throws).
 * @throws {KvmError} naming the first MSR the kernel refused (earlier ones stay written).
 */
export function setMsrs(io: VcpuIo, indices: readonly number[], values: readonly bigint[]): void {
  if (values.length !== indices.length) {
    throw new RangeError(`${indices.length} MSR indices but ${values.length} values`);
  }
  const packed = new Uint8Array(8 * values.length);
  const view = new DataView(packed.buffer);
  values.forEach((v, i) => {
    view.setBigUint64(8 * i, v, true);
  });
  setMsrsFrom(
    io,
    indices,
    packed,
    values.map((_, i) => 8 * i),
  );
}

/**
 * Writes MSRs with one KVM_SET_MSRS, value `i` being the 8 little-endian bytes of `src` at
 * `srcOffsets[i]`.
 * @throws {RangeError} if the offsets do not match the indices or leave `src`.
 * @throws {KvmError} naming the first MSR the kernel refused (earlier ones stay written).
 */
export function setMsrsFrom(
  io: VcpuIo,
  indices: readonly number[],
  src: Uint8Array,
  srcOffsets: readonly number[],
): void {
  if (srcOffsets.length !== indices.length) {
    throw new RangeError(`${indices.length} MSR indices but ${srcOffsets.length} values`);
  }
  for (const at of srcOffsets) {
    if (at < 0 || at + 8 > src.length) throw new RangeError(`MSR value at ${at} outside the data`);
  }
  const fd = io.fd("write MSRs");
  const mem = fillMsrs(io, indices, src, srcOffsets);
  // FFI: as in readMsrs(); the kernel only reads the entries.
  const r = ioctlMem(fd, IOCTLS.KVM_SET_MSRS.number, mem, 0);
  if (r < 0) throw kvmFail("KVM_SET_MSRS", r, { action: "Cannot write MSRs" });
  if (r < indices.length) throw msrStopped(io, "KVM_SET_MSRS", indices, r);
}

/**
 * Which of `indices` the vCPU accepts in KVM_GET_MSRS, probing each once.
 * @throws {KvmError} if the ioctl itself fails.
 */
export function probeMsrs(io: VcpuIo, indices: readonly number[]): number[] {
  const fd = io.fd("probe MSRs");
  const ok: number[] = [];
  for (const index of indices) {
    const mem = fillMsrs(io, [index]);
    const r = ioctlMem(fd, IOCTLS.KVM_GET_MSRS.number, mem, 0);
    if (r < 0) throw kvmFail("KVM_GET_MSRS", r, { action: "Cannot probe MSRs" });
    if (r === 1) ok.push(index);
  }
  return ok;
}
