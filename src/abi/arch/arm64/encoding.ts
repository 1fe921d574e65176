/**
 * Bit layout of arm64 register ids (arch/arm64/include/uapi/asm/kvm.h;
 * docs/kvm-register-abi.md §7).
 *
 * ```
 *  63    56 55  52 51            32 31   28 27        16 15                          0
 * +--------+------+----------------+-------+------------+----------------------------+
 * |  0x60  | size |   must be 0    |   0   |   group    |  group-specific index      |
 * +--------+------+----------------+-------+------------+----------------------------+
 * ```
 *
 * Group ("coprocessor") values: CORE 0x10 (index = byte offset into struct kvm_regs / 4),
 * DEMUX 0x11 (bits 15..8 demux id, 0 = CCSIDR; bits 7..0 CSSELR value), SYSREG 0x13
 * (op0 15..14, op1 13..11, CRn 10..7, CRm 6..3, op2 2..0), FW 0x14 and FW_FEAT_BMAP 0x16
 * (16-bit register number), SVE 0x15 (Z: `n<<5 | slice`, P: `0x400 | n<<5 | slice`,
 * FFR: `0x600 | slice`, VLS: `0xffff`).
 */
import type { RegId } from "../../regid.js";
import { makeRegId, payloadOf } from "../../regid.js";

/** Group codes in bits 27..16 (`KVM_REG_ARM_CORE`, `KVM_REG_ARM64_SYSREG`, …). */
export const ARM64_GROUP = {
  CORE: 0x10,
  DEMUX: 0x11,
  SYSREG: 0x13,
  FW: 0x14,
  SVE: 0x15,
  FW_FEAT_BMAP: 0x16,
} as const;

/** Number of CSSELR values the 6.18 demux accepts (`CSSELR_MAX` in arch/arm64/kvm/sys_regs.c). */
export const ARM64_CSSELR_MAX = 14;

/** Slices per SVE register the id layout can address (`KVM_ARM64_SVE_MAX_SLICES`). */
export const ARM64_SVE_MAX_SLICES = 32;

/** Index bases inside the SVE group (`KVM_REG_ARM64_SVE_{ZREG,PREG,FFR}_BASE`) and VLS. */
export const ARM64_SVE_INDEX = { Z: 0x000, P: 0x400, FFR: 0x600, VLS: 0xffff } as const;

/** Value sizes in bytes of the SVE registers: Z U2048, P/FFR U256, VLS U512 (u64[8]). */
export const ARM64_SVE_SIZE = { Z: 256, P: 32, FFR: 32, VLS: 64 } as const;

/** The five fields of a system-register encoding. */
export interface SysRegEncoding {
  readonly op0: number;
  readonly op1: number;
  readonly crn: number;
  readonly crm: number;
  readonly op2: number;
}

/** Field widths of the encoding; a value outside its width is not encodable. */
const SYSREG_LIMITS: SysRegEncoding = { op0: 4, op1: 8, crn: 16, crm: 16, op2: 8 };

/** True when every field fits its width (op0 < 4, op1 < 8, CRn < 16, CRm < 16, op2 < 8). */
export function sysRegFits(enc: SysRegEncoding): boolean {
  return (Object.keys(SYSREG_LIMITS) as (keyof SysRegEncoding)[]).every(
    (key) => Number.isInteger(enc[key]) && enc[key] >= 0 && enc[key] < SYSREG_LIMITS[key],
  );
}

/**
 * The 16-bit sysreg index (`ARM64_SYS_REG` without the prefix).
 * @throws {RangeError} if a field does not fit its width.
 */
export function sysRegIndex(enc: SysRegEncoding): number {
  if (!sysRegFits(enc)) {
    const text = `${enc.op0},${enc.op1},${enc.crn},${enc.crm},${enc.op2}`;
    throw new RangeError(`arm64 system register encoding (${text}) does not fit the id layout`);
  }
  return (enc.op0 << 14) | (enc.op1 << 11) | (enc.crn << 7) | (enc.crm << 3) | enc.op2;
}

/** Splits a 16-bit sysreg index into its five fields. */
export function sysRegFields(index: number): SysRegEncoding {
  return {
    op0: (index >> 14) & 3,
    op1: (index >> 11) & 7,
    crn: (index >> 7) & 15,
    crm: (index >> 3) & 15,
    op2: index & 7,
  };
}

/** Builds an arm64 id from a group, a size in bytes and a 16-bit index. */
export function arm64Id(group: number, sizeBytes: number, index: number): RegId {
  return makeRegId("arm64", sizeBytes, (BigInt(group) << 16n) | BigInt(index));
}

/**
 * The id KVM uses for a system register: `ARM64_SYS_REG(op0, op1, crn, crm, op2)`, always U64.
 * @throws {RangeError} if a field does not fit its width.
 */
export function sysRegId(enc: SysRegEncoding): RegId {
  return arm64Id(ARM64_GROUP.SYSREG, 8, sysRegIndex(enc));
}

/** The parts of an arm64 id's low 52 bits; `undefined` when bits 51..28 are not zero. */
export function arm64Parts(id: RegId): { group: number; index: number } | undefined {
  const payload = payloadOf(id);
  // Bits 51..32 must be zero (KVM answers EINVAL); bits 31..28 belong to no group field.
  if (payload >> 28n !== 0n) return undefined;
  return { group: Number(payload >> 16n), index: Number(payload & 0xffffn) };
}
