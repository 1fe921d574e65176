/**
 * RISC-V ONE_REG numbering (arch/riscv/include/uapi/asm/kvm.h, Linux 6.18; RV64 values).
 *
 * ```
 *  63    56 55  52 51            32 31    24 23     16 15            0
 * +--------+------+----------------+--------+---------+---------------+
 * |  0x80  | size |   must be 0    |  type  | subtype |    number     |
 * +--------+------+----------------+--------+---------+---------------+
 * ```
 *
 * The kernel strips arch, size and type and compares everything left (bits 51..32 included)
 * against the class's range, so stray high bits make the number out of range. Classes without
 * subtypes therefore treat a non-zero subtype byte as an out-of-range number too.
 *
 * This module holds the numbers the soft backend and the catalog share: type and subtype codes,
 * the ISA_EXT and SBI_EXT enums in kernel order, and an id builder/splitter.
 */
import type { RegId } from "../../regid.js";
import { makeRegId, payloadOf, regSize } from "../../regid.js";

/** `KVM_REG_RISCV_<TYPE>` codes (bits 31..24 of the id). */
export const RISCV_REG_TYPE = {
  CONFIG: 1,
  CORE: 2,
  CSR: 3,
  TIMER: 4,
  FP_F: 5,
  FP_D: 6,
  ISA_EXT: 7,
  SBI_EXT: 8,
  VECTOR: 9,
  SBI_STATE: 10,
} as const;

/** One of the `RISCV_REG_TYPE` values. */
export type RiscvRegType = (typeof RISCV_REG_TYPE)[keyof typeof RISCV_REG_TYPE];

/** `KVM_REG_RISCV_CSR_<SUBTYPE>` codes (bits 23..16). */
export const RISCV_CSR_SUBTYPE = { GENERAL: 0, AIA: 1, SMSTATEEN: 2 } as const;

/** `KVM_REG_RISCV_ISA_<SUBTYPE>` codes, shared by ISA_EXT and SBI_EXT (`KVM_REG_RISCV_SBI_<…>`). */
export const RISCV_EXT_SUBTYPE = { SINGLE: 0, MULTI_EN: 1, MULTI_DIS: 2 } as const;

/** `KVM_REG_RISCV_SBI_<SUBTYPE>` codes of the SBI_STATE class. */
export const RISCV_SBI_STATE_SUBTYPE = { STA: 0, FWFT: 1 } as const;

/** Register number of v0 in the VECTOR class (0..4 are the vector CSRs, 5 is `datap`). */
export const RISCV_VECTOR_REG_BASE = 6;

/**
 * Extension names of `enum KVM_RISCV_ISA_EXT_ID` in enum order (index = ext id), lower-case as
 * they appear in catalog names (`isa_ext.zicbom`). `KVM_RISCV_ISA_EXT_MAX` is 75 in 6.18; the
 * enum is append-only, so later kernels only add ids after `zvfbfwma`.
 */
// prettier-ignore
export const RISCV_ISA_EXT_NAMES = [
  "a", "c", "d", "f", "h", "i", "m", "svpbmt", "sstc", "svinval",
  "zihintpause", "zicbom", "zicboz", "zbb", "ssaia", "v", "svnapot", "zba", "zbs", "zicntr",
  "zicsr", "zifencei", "zihpm", "smstateen", "zicond", "zbc", "zbkb", "zbkc", "zbkx", "zknd",
  "zkne", "zknh", "zkr", "zksed", "zksh", "zkt", "zvbb", "zvbc", "zvkb", "zvkg",
  "zvkned", "zvknha", "zvknhb", "zvksed", "zvksh", "zvkt", "zfh", "zfhmin", "zihintntl", "zvfh",
  "zvfhmin", "zfa", "ztso", "zacas", "sscofpmf", "zimop", "zca", "zcb", "zcd", "zcf",
  "zcmop", "zawrs", "smnpm", "ssnpm", "svade", "svadu", "svvptc", "zabha", "ziccrse", "zaamo",
  "zalrsc", "zicbop", "zfbfmin", "zvfbfmin", "zvfbfwma",
] as const;

/** Extension names of `enum KVM_RISCV_SBI_EXT_ID` in enum order (`KVM_RISCV_SBI_EXT_MAX` = 13). */
// prettier-ignore
export const RISCV_SBI_EXT_NAMES = [
  "v01", "time", "ipi", "rfence", "srst", "hsm", "pmu", "experimental", "vendor", "dbcn",
  "sta", "susp", "fwft",
] as const;

/** `KVM_REG_RISCV_ISA_MULTI_REG_LAST`: highest MULTI_EN/MULTI_DIS word number (75 ids → 0..1). */
export const RISCV_ISA_MULTI_REG_LAST = Math.ceil(RISCV_ISA_EXT_NAMES.length / 64) - 1;

/** `KVM_REG_RISCV_SBI_MULTI_REG_LAST`: highest SBI MULTI word number (13 ids → 0). */
export const RISCV_SBI_MULTI_REG_LAST = Math.ceil(RISCV_SBI_EXT_NAMES.length / 64) - 1;

/** Size in bytes of an RV64 `unsigned long`: CONFIG, CORE, CSR, ISA_EXT, SBI_EXT, VECTOR CSRs. */
export const RISCV_ULONG_BYTES = 8;

/** The parts of a riscv id after the arch byte. */
export interface RiscvRegParts {
  readonly sizeBytes: number;
  readonly type: number;
  readonly subtype: number;
  /** Bits 15..0. */
  readonly index: number;
  /** Bits 51..32; the kernel folds them into the number, so any non-zero value is out of range. */
  readonly high: number;
}

/**
 * Builds `0x80… | size | type<<24 | subtype<<16 | index`.
 * @throws {RangeError} if a field does not fit (type/subtype 0..255, index 0..0xffff) or the
 *   size is not a power of two from 1 to 32768 bytes.
 */
export function riscvRegId(type: number, subtype: number, index: number, sizeBytes: number): RegId {
  checkField("type", type, 0xff);
  checkField("subtype", subtype, 0xff);
  checkField("index", index, 0xffff);
  const payload = (BigInt(type) << 24n) | (BigInt(subtype) << 16n) | BigInt(index);
  return makeRegId("riscv", sizeBytes, payload);
}

/** Splits a riscv id into its fields; the arch byte is not looked at (the kernel ignores it). */
export function riscvRegParts(id: RegId): RiscvRegParts {
  const payload = payloadOf(id);
  return {
    sizeBytes: regSize(id),
    type: Number((payload >> 24n) & 0xffn),
    subtype: Number((payload >> 16n) & 0xffn),
    index: Number(payload & 0xffffn),
    high: Number(payload >> 32n),
  };
}

function checkField(what: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`riscv register ${what} ${value} is not an integer from 0 to ${max}`);
  }
}
