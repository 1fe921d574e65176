/**
 * The x86 ONE_REG id layout (arch/x86/include/uapi/asm/kvm.h, arch/x86/kvm/x86.c, Linux 6.18;
 * docs/kvm-register-abi.md §6.1):
 *
 * ```
 *  63    56 55  52 51      40 39    32 31                 0
 * +--------+------+----------+--------+--------------------+
 * |  0x20  | size | reserved |  type  |       index        |
 * +--------+------+----------+--------+--------------------+
 * ```
 *
 * The kernel accepts size U64 only, reserved bits 51..40 zero, type 2 (MSR; index = MSR
 * number) or 3 (KVM-defined; GUEST_SSP = 0) — anything else is EINVAL. regvisor adds type
 * 0xff for its pseudo-registers (./pseudo.ts), which the kernel would reject and which never
 * reach it.
 */
import type { RegId } from "../../regid.js";
import { ARCH_CODES, archCode, makeRegId } from "../../regid.js";

/** Values of the type field (bits 39..32). */
export const X86_REG_TYPE = {
  /** `KVM_X86_REG_TYPE_MSR`: index is an MSR number. */
  MSR: 2,
  /** `KVM_X86_REG_TYPE_KVM`: index is a KVM-defined register number. */
  KVM: 3,
  /** regvisor pseudo-register (a whole state struct); never sent to a kernel. */
  PSEUDO: 0xff,
} as const;

/** `KVM_REG_GUEST_SSP`, the only KVM-type register in 6.18. */
export const KVM_REG_GUEST_SSP = 0;

const U64_CODE = 3;

/** The fields of an x86 id, without judging whether the kernel would accept it. */
export interface X86IdParts {
  readonly type: number;
  readonly index: number;
  readonly sizeCode: number;
  /** Bits 51..40, which must be zero. */
  readonly reserved: number;
}

// The id's two 32-bit halves, read without bigint arithmetic: x86IdParts runs for every id of
// every MANY_REGS batch, and four bigint shifts per call dominated batch planning.
const idView = new DataView(new ArrayBuffer(8));

/** Splits an x86 id into its fields. */
export function x86IdParts(id: RegId): X86IdParts {
  idView.setBigUint64(0, id, true);
  const high = idView.getUint32(4, true);
  return {
    type: high & 0xff,
    index: idView.getUint32(0, true),
    sizeCode: (high >>> 20) & 0xf,
    reserved: (high >>> 8) & 0xfff,
  };
}

function checkIndex(index: number): void {
  if (!Number.isInteger(index) || index < 0 || index > 0xffffffff) {
    throw new RangeError(`x86 register index ${index} is not a 32-bit unsigned integer`);
  }
}

/**
 * The ONE_REG id of MSR `index` (`KVM_X86_REG_MSR(index)`): `0x20300002_xxxxxxxx`.
 * @throws {RangeError} if `index` is not a 32-bit unsigned integer.
 */
export function msrRegId(index: number): RegId {
  checkIndex(index);
  return makeRegId("x86", 8, (BigInt(X86_REG_TYPE.MSR) << 32n) | BigInt(index));
}

/**
 * The ONE_REG id of KVM-defined register `index` (`KVM_X86_REG_KVM(index)`).
 * @throws {RangeError} if `index` is not a 32-bit unsigned integer.
 */
export function kvmRegId(index: number): RegId {
  checkIndex(index);
  return makeRegId("x86", 8, (BigInt(X86_REG_TYPE.KVM) << 32n) | BigInt(index));
}

/** True when `id` has the x86 arch byte. */
export function isX86Id(id: RegId): boolean {
  return archCode(id) === ARCH_CODES.x86;
}

/**
 * True when the kernel's ONE_REG would even look at `id`: x86 arch byte, size U64, reserved
 * bits zero, type MSR or KVM (whether the register exists is another matter).
 */
export function isKernelX86Id(id: RegId): boolean {
  if (!isX86Id(id)) return false;
  const parts = x86IdParts(id);
  return (
    parts.sizeCode === U64_CODE &&
    parts.reserved === 0 &&
    (parts.type === X86_REG_TYPE.MSR || parts.type === X86_REG_TYPE.KVM)
  );
}

/** The MSR number of a kernel MSR id, or undefined for any other id. */
export function msrIndexOf(id: RegId): number | undefined {
  if (!isKernelX86Id(id)) return undefined;
  const parts = x86IdParts(id);
  return parts.type === X86_REG_TYPE.MSR ? parts.index : undefined;
}

/** `MSR(0x0000001b)`: the generic name of an MSR, 8 lower-case hex digits. */
export function genericMsrName(index: number): string {
  return `MSR(0x${index.toString(16).padStart(8, "0")})`;
}

/** `KVM_REG(5)`: the generic name of a KVM-type register. */
export function genericKvmRegName(index: number): string {
  return `KVM_REG(${index})`;
}

const MSR_NAME = /^MSR\(0x([0-9a-f]{1,8})\)$/i;
const KVM_NAME = /^KVM_REG\((?:0x([0-9a-f]{1,8})|(\d{1,10}))\)$/i;

/** Parses `MSR(0x…)` or `KVM_REG(n)` back to an id; undefined for any other text. */
export function parseGenericX86Name(name: string): RegId | undefined {
  const msr = MSR_NAME.exec(name);
  if (msr?.[1] !== undefined) return msrRegId(parseInt(msr[1], 16));
  const kvm = KVM_NAME.exec(name);
  if (kvm === null) return undefined;
  const index = kvm[1] !== undefined ? parseInt(kvm[1], 16) : Number(kvm[2]);
  return index > 0xffffffff ? undefined : kvmRegId(index);
}
