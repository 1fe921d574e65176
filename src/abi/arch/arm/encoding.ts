/**
 * Bit layout of 32-bit ARM register ids (arch/arm/include/uapi/asm/kvm.h up to Linux 5.6; the
 * KVM/arm host was removed in 5.7 but the ids stay defined; docs/kvm-register-abi.md §1.1).
 *
 * ```
 *  63    56 55  52 51          32 31 29 28  27        16 15                          0
 * +--------+------+--------------+-----+---+------------+----------------------------+
 * |  0x40  | size |  must be 0   |  0  | S |  coproc    |  coproc-specific index     |
 * +--------+------+--------------+-----+---+------------+----------------------------+
 * ```
 *
 * S (bit 28, `KVM_REG_ARM_SECURE_MASK`) is reserved for secure banked registers; KVM never
 * accepted it. Coproc values: 15 = CP15 system registers, 0x10 CORE (index = byte offset into
 * struct kvm_regs / 4), 0x11 DEMUX (CCSIDR by CSSELR), 0x12 VFP, 0x14 FW.
 *
 * CP15 index, 32-bit (U32) registers: CRn bits 14..11, CRm 10..7, Opc1 6..3, Opc2 2..0;
 * 64-bit (U64, MRRC/MCRR) registers: CRm 10..7, Opc1 6..3, everything else zero
 * (`ARM_CP15_REG32` / `ARM_CP15_REG64` in the header; index_to_params in arch/arm/kvm/coproc.c).
 */
import type { RegId } from "../../regid.js";
import { makeRegId, payloadOf } from "../../regid.js";

/** Coproc codes in bits 27..16 (`KVM_REG_ARM_CORE`, `KVM_REG_ARM_VFP`, …). */
export const ARM_COPROC = {
  CP15: 15,
  CORE: 0x10,
  DEMUX: 0x11,
  VFP: 0x12,
  FW: 0x14,
} as const;

/** CSSELR values the demux accepts (`CSSELR_MAX` in arch/arm/kvm/coproc.c). */
export const ARM_CSSELR_MAX = 12;

/** VFP index values of the control registers (`KVM_REG_ARM_VFP_*`); D0..D31 are 0..31. */
export const ARM_VFP_INDEX = {
  FPSID: 0x1000,
  FPSCR: 0x1001,
  MVFR1: 0x1006,
  MVFR0: 0x1007,
  FPEXC: 0x1008,
  FPINST: 0x1009,
  FPINST2: 0x100a,
} as const;

/** A 32-bit CP15 register: MRC/MCR p15, opc1, Rt, CRn, CRm, opc2. */
export interface Cp15Encoding {
  readonly crn: number;
  readonly opc1: number;
  readonly crm: number;
  readonly opc2: number;
}

/** A 64-bit CP15 register: MRRC/MCRR p15, opc1, Rt, Rt2, CRm. */
export interface Cp15Encoding64 {
  readonly opc1: number;
  readonly crm: number;
}

const inRange = (value: number, limit: number): boolean =>
  Number.isInteger(value) && value >= 0 && value < limit;

/** True when the fields fit the id layout (CRn, CRm, Opc1 < 16, Opc2 < 8). */
export function cp15Fits(enc: Cp15Encoding): boolean {
  return (
    inRange(enc.crn, 16) && inRange(enc.opc1, 16) && inRange(enc.crm, 16) && inRange(enc.opc2, 8)
  );
}

/** True when the fields fit the 64-bit id layout (Opc1, CRm < 16). */
export function cp15Fits64(enc: Cp15Encoding64): boolean {
  return inRange(enc.opc1, 16) && inRange(enc.crm, 16);
}

/** Builds a 32-bit ARM id from a coproc, a size in bytes and a 16-bit index. */
export function armId(coproc: number, sizeBytes: number, index: number): RegId {
  return makeRegId("arm", sizeBytes, (BigInt(coproc) << 16n) | BigInt(index));
}

/**
 * The U32 id of a 32-bit CP15 register (`ARM_CP15_REG32(opc1, crn, crm, opc2)`).
 * @throws {RangeError} if a field does not fit its width.
 */
export function cp15Id(enc: Cp15Encoding): RegId {
  if (!cp15Fits(enc)) {
    throw new RangeError(
      `CP15(${enc.crn},${enc.opc1},${enc.crm},${enc.opc2}) does not fit the id layout`,
    );
  }
  return armId(ARM_COPROC.CP15, 4, (enc.crn << 11) | (enc.crm << 7) | (enc.opc1 << 3) | enc.opc2);
}

/**
 * The U64 id of a 64-bit CP15 register (`ARM_CP15_REG64(opc1, crm)`).
 * @throws {RangeError} if a field does not fit its width.
 */
export function cp15Id64(enc: Cp15Encoding64): RegId {
  if (!cp15Fits64(enc)) {
    throw new RangeError(`CP15_64(${enc.opc1},${enc.crm}) does not fit the id layout`);
  }
  return armId(ARM_COPROC.CP15, 8, (enc.crm << 7) | (enc.opc1 << 3));
}

/** Splits a CP15 index into the 32-bit register fields. */
export function cp15Fields(index: number): Cp15Encoding {
  return {
    crn: (index >> 11) & 15,
    opc1: (index >> 3) & 15,
    crm: (index >> 7) & 15,
    opc2: index & 7,
  };
}

/** The coproc and index of an ARM id; `undefined` when any of bits 51..28 is set. */
export function armParts(id: RegId): { coproc: number; index: number } | undefined {
  const payload = payloadOf(id);
  // Bits 51..32 must be zero, bits 31..29 are unused and bit 28 (secure) was never accepted.
  if (payload >> 28n !== 0n) return undefined;
  return { coproc: Number(payload >> 16n), index: Number(payload & 0xffffn) };
}
