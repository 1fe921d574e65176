/**
 * The x86 vCPU state KVM moves as structs (arch/x86/include/uapi/asm/kvm.h; ABI doc §3.2, §5):
 * REGS, SREGS, FPU, XSAVE, XCRS, VCPU_EVENTS, MP_STATE, DEBUGREGS, LAPIC, CPUID2, TSC_KHZ,
 * and MSRs through KVM_GET_MSRS / KVM_SET_MSRS, and the ONE_REG argument. The name-based
 * helpers build each struct in the vCPU's scratch memory and copy results out; the `…At`
 * primitives run an ioctl on native memory the caller owns (the scratch, or the register
 * view's rollback area, where a saved copy can stay until it is written back).
 */
import { ERRNO } from "../../abi/kvm/errno.js";
import { KvmError } from "../../abi/kvm/errors.js";
import { IOCTLS, type IoctlName } from "../../abi/kvm/ioctls.js";
import {
  KVM_CPUID2,
  KVM_CPUID_ENTRY2,
  KVM_MSRS,
  KVM_MSR_ENTRY,
  KVM_ONE_REG,
} from "../../abi/kvm/layouts.js";
import { X86_PSEUDO, type X86PseudoName } from "../../abi/arch/x86/index.js";
import type { RegId } from "../../abi/regid.js";
import { cpuidByteSize, cpuidCount } from "./cpuid.js";
import { kvmFail } from "./errors.js";
import { ioctlMem, ioctlValue, type NativeMemory } from "./ffi.js";
import type { Scratch } from "./scratch.js";
import { getU32, putU32 } from "./le-bytes.js";

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
 * The struct's GET ioctl into the `spec.size` bytes at `address`: native memory
 * (readStructAt()) or a JS buffer from `viewAddress()`.
 * @throws {KvmError} if the ioctl fails.
 */
export function readStructTo(fd: number, spec: StructSpec, address: number): void {
  // FFI: the caller's memory (native, or a JS buffer alive and attached for the call) has
  // spec.size bytes from `address`; every GET here copies a whole kernel-side struct out
  // (copy_to_user of sizeof), so the bytes need no clearing.
  const r = ioctlValue(fd, spec.getNumber, address);
  if (r < 0) throw kvmFail(spec.get, r, { action: `Cannot ${spec.readAction}` });
}

/**
 * The struct's SET ioctl from the `spec.size` bytes at `address` (as in readStructTo()).
 * @throws {KvmError} if the ioctl fails.
 */
export function writeStructFrom(fd: number, spec: StructSpec, address: number): void {
  // FFI: as in readStructTo(); the kernel only reads the struct.
  const r = ioctlValue(fd, spec.setNumber, address);
  if (r < 0) throw kvmFail(spec.set, r, { action: `Cannot ${spec.writeAction}` });
}

/**
 * readStructTo() into `mem` at `at` (which must have `spec.size` bytes; callers size it).
 * @throws {KvmError} if the ioctl fails.
 */
export function readStructAt(fd: number, spec: StructSpec, mem: NativeMemory, at: number): void {
  readStructTo(fd, spec, mem.address + at);
}

/**
 * writeStructFrom() the `spec.size` bytes at `at` in `mem`.
 * @throws {KvmError} if the ioctl fails.
 */
export function writeStructAt(fd: number, spec: StructSpec, mem: NativeMemory, at: number): void {
  writeStructFrom(fd, spec, mem.address + at);
}

/**
 * Reads a struct group into `out` at `offset` (or a new array of its size).
 * @throws {KvmError} if the ioctl fails.
 */
export function getStruct(io: VcpuIo, name: StructName, out?: Uint8Array, offset = 0): Uint8Array {
  const spec = STRUCT_IOCTLS[name];
  const fd = io.fd(spec.readAction);
  readStructAt(fd, spec, io.scratch.get(spec.size), 0);
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
  writeStructAt(fd, spec, mem, 0);
}

// KVM_MAX_CPUID_ENTRIES (arch/x86/include/asm/kvm_host.h).
const CPUID_MAX_ENTRIES = 256;
const CPUID_NENT = KVM_CPUID2.fields.nent.offset;

/** Bytes of a `struct kvm_cpuid2` with room for KVM_MAX_CPUID_ENTRIES: what a GET needs. */
export const CPUID_MAX_BYTES = cpuidByteSize(CPUID_MAX_ENTRIES);

/**
 * Where in native memory a KVM_GET_CPUID2 table goes: not at a page start, where the kernel's
 * copy_to_user of the entries ran ~0.8 µs slower per call (measured on Linux 6.18, x86-64:
 * 2.2 µs at any cache-line offset, 3.0 µs page-aligned — 4 KiB aliasing with its source).
 */
export const CPUID_READ_AT = 64;

/**
 * KVM_GET_CPUID2 into `out` at `offset`, whose address is `address` (`mem.address + at` for
 * native memory, `viewAddress(out)` plus `offset` for a JS buffer); `out` must have
 * CPUID_MAX_BYTES from `offset`. Returns the length of the header and the valid entries, which
 * is all the kernel writes (arch/x86/kvm/cpuid.c kvm_vcpu_ioctl_get_cpuid2), so the bytes after
 * them are left as they were.
 * @throws {RangeError} if `out` is too short (before any syscall).
 * @throws {KvmError} if the ioctl fails.
 */
export function readCpuidTo(fd: number, out: Uint8Array, offset: number, address: number): number {
  if (offset < 0 || offset + CPUID_MAX_BYTES > out.length) {
    throw new RangeError(`a CPUID read needs ${CPUID_MAX_BYTES} bytes at ${offset}`);
  }
  putU32(out, offset + CPUID_NENT, CPUID_MAX_ENTRIES);
  putU32(out, offset + CPUID_NENT + 4, 0);
  // FFI: `out` is alive and attached, with CPUID_MAX_BYTES from `address` (checked above), the
  // room nent = 256 announces.
  const r = ioctlValue(fd, IOCTLS.KVM_GET_CPUID2.number, address);
  if (r < 0) throw kvmFail("KVM_GET_CPUID2", r, { action: "Cannot read CPUID" });
  return cpuidByteSize(Math.min(getU32(out, offset + CPUID_NENT), CPUID_MAX_ENTRIES));
}

/**
 * readCpuidTo() into `mem` at `at` (CPUID_MAX_BYTES of room).
 * @throws {RangeError} if `mem` is too short (before any syscall).
 * @throws {KvmError} if the ioctl fails.
 */
export function readCpuidAt(fd: number, mem: NativeMemory, at: number): number {
  return readCpuidTo(fd, mem.bytes, at, mem.address + at);
}

/**
 * KVM_SET_CPUID2 from the `struct kvm_cpuid2` at `address` (native memory, or a JS buffer from
 * `viewAddress()`), whose nent (≤ 256, as readCpuidTo() leaves it or as setCpuidBytes() and
 * setCpuidFrom() checked it) bounds what the kernel reads.
 * @throws {KvmError} if the kernel refuses it.
 */
function writeCpuidFrom(fd: number, address: number): void {
  // FFI: the header and nent entries are at `address`; the kernel only reads them.
  const r = ioctlValue(fd, IOCTLS.KVM_SET_CPUID2.number, address);
  if (r < 0) throw kvmFail("KVM_SET_CPUID2", r, { action: "Cannot write CPUID" });
}

/**
 * writeCpuidFrom() the `struct kvm_cpuid2` at `at` in `mem`.
 * @throws {KvmError} if the kernel refuses it.
 */
export function writeCpuidAt(fd: number, mem: NativeMemory, at: number): void {
  writeCpuidFrom(fd, mem.address + at);
}

/**
 * KVM_GET_CPUID2: the vCPU's CPUID table as `struct kvm_cpuid2` bytes.
 * @throws {KvmError} if the ioctl fails.
 */
export function getCpuidBytes(io: VcpuIo): Uint8Array {
  const fd = io.fd("read CPUID");
  const mem = io.scratch.get(CPUID_READ_AT + CPUID_MAX_BYTES);
  return mem.bytes.slice(CPUID_READ_AT, CPUID_READ_AT + readCpuidAt(fd, mem, CPUID_READ_AT));
}

/**
 * KVM_SET_CPUID2 from `struct kvm_cpuid2` bytes (extra bytes after the last entry ignored).
 * @throws {RangeError} if the table is truncated or too long.
 * @throws {KvmError} if the kernel refuses it.
 */
export function setCpuidBytes(io: VcpuIo, bytes: Uint8Array): void {
  const size = checkedCpuidSize(bytes);
  const fd = io.fd("write CPUID");
  const mem = io.scratch.get(size);
  mem.bytes.set(bytes.subarray(0, size));
  writeCpuidAt(fd, mem, 0);
}

/**
 * setCpuidBytes() straight from `bytes`, whose first byte is at `address` (from viewAddress()).
 * @throws {RangeError} if the table is truncated or too long (before any syscall).
 * @throws {KvmError} if the kernel refuses it.
 */
export function setCpuidFrom(io: VcpuIo, bytes: Uint8Array, address: number): void {
  checkedCpuidSize(bytes);
  // FFI: `bytes` is alive and attached and holds the header and all nent entries (checked).
  writeCpuidFrom(io.fd("write CPUID"), address);
}

/** The bytes a `struct kvm_cpuid2` value needs; throws RangeError when it is truncated. */
function checkedCpuidSize(bytes: Uint8Array): number {
  const count = cpuidCount(bytes);
  const size = cpuidByteSize(count);
  if (count > CPUID_MAX_ENTRIES || bytes.length < size) {
    throw new RangeError(
      `kvm_cpuid2 with ${count} entries needs ${size} bytes, got ${bytes.length}`,
    );
  }
  return size;
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
 * The largest TSC frequency that reads back: KVM_GET_TSC_KHZ returns the frequency as the
 * ioctl's int result (6.18 arch/x86/kvm/x86.c, `r = vcpu->arch.virtual_tsc_khz`), so 2^31 kHz
 * and above come back negative, as an error or as garbage.
 */
export const TSC_KHZ_MAX = 0x7fffffff;

/**
 * Why `khz` cannot be written as TSC_KHZ (a value that would not read back), or undefined.
 * 0 is refused too: KVM_SET_TSC_KHZ takes it as "the host's frequency" (x86.c).
 */
export function tscKhzProblem(khz: bigint | number): string | undefined {
  const ok = typeof khz === "bigint" || Number.isInteger(khz);
  if (ok && khz >= 1 && khz <= TSC_KHZ_MAX) return undefined;
  return `TSC_KHZ must be 1..${TSC_KHZ_MAX} kHz, got ${String(khz)} (KVM_GET_TSC_KHZ returns the frequency as an int, and 0 means "the host's rate": neither would read back)`;
}

/**
 * KVM_SET_TSC_KHZ. Writing the current frequency is a no-op that issues no ioctl, so state
 * restore works on hosts without KVM_CAP_TSC_CONTROL. A refused write leaves the frequency as
 * it was: 6.18 x86.c kvm_set_tsc_khz() stores the new frequency before set_tsc_khz() refuses
 * it (no TSC scaling and a rate below the host's), so the old one is written back.
 * @throws {RangeError} for a frequency that would not read back (before any ioctl).
 * @throws {KvmError} if the kernel refuses a change.
 */
export function setTscKhz(io: VcpuIo, khz: number): void {
  const problem = tscKhzProblem(khz);
  if (problem !== undefined) throw new RangeError(problem);
  const old = getTscKhz(io);
  if (old === khz) return;
  const fd = io.fd("write TSC_KHZ");
  const r = ioctlValue(fd, IOCTLS.KVM_SET_TSC_KHZ.number, khz);
  if (r >= 0) return;
  // Writing back the frequency the kernel accepted before is accepted again.
  ioctlValue(fd, IOCTLS.KVM_SET_TSC_KHZ.number, old);
  const now = getTscKhz(io);
  throw kvmFail("KVM_SET_TSC_KHZ", r, {
    action: `Cannot write TSC_KHZ ${khz}`,
    ...(now === old ? {} : { hint: `it is now ${now} kHz, not the previous ${old}` }),
  });
}

const MSR_HEAD = KVM_MSRS.fields.entries.offset;
const MSR_COUNT = KVM_MSRS.fields.nmsrs.offset;
const MSR_STRIDE = KVM_MSR_ENTRY.size;
const MSR_INDEX = KVM_MSR_ENTRY.fields.index.offset;
const MSR_DATA = KVM_MSR_ENTRY.fields.data.offset;
const GET_MSRS = IOCTLS.KVM_GET_MSRS.number;
const SET_MSRS = IOCTLS.KVM_SET_MSRS.number;

/** Bytes of a `struct kvm_msrs` with `count` entries. */
export function msrRequestBytes(count: number): number {
  return MSR_HEAD + MSR_STRIDE * count;
}

/**
 * `struct kvm_msrs` naming `indices`: nmsrs, then per entry the index, zero reserved and zero
 * data. Both MSR ioctls take it; callers that repeat a batch keep it and copy it into native
 * memory per call, which is one memcpy instead of a field write per entry.
 */
export function msrRequest(indices: readonly number[]): Uint8Array {
  const out = new Uint8Array(msrRequestBytes(indices.length));
  const view = new DataView(out.buffer);
  view.setUint32(MSR_COUNT, indices.length, true);
  indices.forEach((index, i) => {
    view.setUint32(MSR_HEAD + i * MSR_STRIDE + MSR_INDEX, index, true);
  });
  return out;
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
 * KVM_GET_MSRS (`set` false) or KVM_SET_MSRS on the `struct kvm_msrs` for `indices` at `at` in
 * `mem`, in place: a GET leaves the values in the entries' data.
 * @throws {KvmError} naming the first MSR the kernel refused (a SET keeps the ones before it).
 */
export function msrsAt(
  io: VcpuIo,
  fd: number,
  set: boolean,
  mem: NativeMemory,
  at: number,
  indices: readonly number[],
): void {
  // FFI: `mem` holds msrRequestBytes(indices.length) bytes from `at` (callers size it), and
  // nmsrs bounds what the kernel reads and writes.
  const r = ioctlMem(fd, set ? SET_MSRS : GET_MSRS, mem, at);
  const ioctl = set ? "KVM_SET_MSRS" : "KVM_GET_MSRS";
  if (r < 0) throw kvmFail(ioctl, r, { action: set ? "Cannot write MSRs" : "Cannot read MSRs" });
  if (r < indices.length) throw msrStopped(io, ioctl, indices, r);
}

/**
 * Copies the values of the `struct kvm_msrs` at `at` out: entry `i`'s 8 data bytes (little-
 * endian) to `out` at `outAt[i]`, as two word loads and eight byte stores (no bigints).
 */
export function msrValuesOut(
  mem: NativeMemory,
  at: number,
  out: Uint8Array,
  outAt: readonly number[],
): void {
  const view = mem.view;
  for (let i = 0; i < outAt.length; i++) {
    const from = at + MSR_HEAD + i * MSR_STRIDE + MSR_DATA;
    const to = outAt[i] ?? 0;
    putU32(out, to, view.getUint32(from, true));
    putU32(out, to + 4, view.getUint32(from + 4, true));
  }
}

/**
 * Copies values into the `struct kvm_msrs` at `at`: the 8 little-endian bytes of `src` at
 * `srcAt[i]` become entry `i`'s data. Offsets must leave 8 bytes inside `src`.
 */
export function msrValuesIn(
  mem: NativeMemory,
  at: number,
  src: Uint8Array,
  srcAt: readonly number[],
): void {
  const view = mem.view;
  for (let i = 0; i < srcAt.length; i++) {
    const f = srcAt[i] ?? 0;
    const to = at + MSR_HEAD + i * MSR_STRIDE + MSR_DATA;
    view.setUint32(to, getU32(src, f), true);
    view.setUint32(to + 4, getU32(src, f + 4), true);
  }
}

/** Copies `request` into the vCPU scratch (the native memory the MSR ioctls then run on). */
function loadRequest(io: VcpuIo, request: Uint8Array): NativeMemory {
  const mem = io.scratch.get(request.length);
  mem.bytes.set(request);
  return mem;
}

/**
 * Reads MSRs with one KVM_GET_MSRS.
 * @throws {KvmError} naming the first MSR the kernel refused.
 */
export function getMsrs(io: VcpuIo, indices: readonly number[]): bigint[] {
  const fd = io.fd("read MSRs");
  const mem = loadRequest(io, msrRequest(indices));
  msrsAt(io, fd, false, mem, 0, indices);
  return indices.map((_, i) => mem.view.getBigUint64(MSR_HEAD + i * MSR_STRIDE + MSR_DATA, true));
}

/**
 * Writes MSRs with one KVM_SET_MSRS.
 * @throws {RangeError} if the counts differ.
 * @throws {KvmError} naming the first MSR the kernel refused (earlier ones stay written).
 */
export function setMsrs(io: VcpuIo, indices: readonly number[], values: readonly bigint[]): void {
  if (values.length !== indices.length) {
    throw new RangeError(`${indices.length} MSR indices but ${values.length} values`);
  }
  const fd = io.fd("write MSRs");
  const mem = loadRequest(io, msrRequest(indices));
  values.forEach((v, i) => {
    mem.view.setBigUint64(MSR_HEAD + i * MSR_STRIDE + MSR_DATA, v, true);
  });
  msrsAt(io, fd, true, mem, 0, indices);
}

/**
 * Which of `indices` the vCPU accepts in KVM_GET_MSRS, probing each once.
 * @throws {KvmError} if the ioctl itself fails.
 */
export function probeMsrs(io: VcpuIo, indices: readonly number[]): number[] {
  const fd = io.fd("probe MSRs");
  const ok: number[] = [];
  for (const index of indices) {
    const mem = loadRequest(io, msrRequest([index]));
    // FFI: vCPU scratch holding a one-entry kvm_msrs.
    const r = ioctlMem(fd, GET_MSRS, mem, 0);
    if (r < 0) throw kvmFail("KVM_GET_MSRS", r, { action: "Cannot probe MSRs" });
    if (r === 1) ok.push(index);
  }
  return ok;
}

const ONE_ID = KVM_ONE_REG.fields.id.offset;
const ONE_ADDR = KVM_ONE_REG.fields.addr.offset;
const GET_ONE_REG = IOCTLS.KVM_GET_ONE_REG.number;
const SET_ONE_REG = IOCTLS.KVM_SET_ONE_REG.number;

/** Offset of a ONE_REG value from its `kvm_one_reg` (the value follows the struct). */
export const ONE_REG_VALUE = KVM_ONE_REG.size;

/**
 * Prepares the `kvm_one_reg` at `at` in `mem` for `id`, its `addr` pointing at the value
 * right after it (ONE_REG_VALUE further; the caller sizes `mem` for the id's value).
 */
export function oneRegAt(mem: NativeMemory, at: number, id: RegId): void {
  mem.view.setBigUint64(at + ONE_ID, id, true);
  // FFI: addr points into the same native memory, which the caller keeps for the ioctl.
  mem.view.setBigUint64(at + ONE_ADDR, mem.addressOf(at + ONE_REG_VALUE), true);
}

/**
 * KVM_GET_ONE_REG (`set` false) or KVM_SET_ONE_REG on the `kvm_one_reg` at `at` (oneRegAt()).
 * @throws {KvmError} if the kernel refuses.
 */
export function oneRegIoctlAt(
  fd: number,
  set: boolean,
  mem: NativeMemory,
  at: number,
  id: RegId,
): void {
  // FFI: as in oneRegAt(); the kernel moves regSize(id) bytes at addr.
  const r = ioctlMem(fd, set ? SET_ONE_REG : GET_ONE_REG, mem, at);
  if (r < 0) {
    throw kvmFail(set ? "KVM_SET_ONE_REG" : "KVM_GET_ONE_REG", r, {
      action: set ? "Cannot set" : "Cannot read",
      regId: id,
    });
  }
}
