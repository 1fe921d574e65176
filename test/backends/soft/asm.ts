/**
 * A tiny RV64 assembler for the soft kernel tests: encoders for the handful of instructions the
 * test guests use (real encodings, so the same programs run on any hart implementing the
 * contract), plus `li` for 64-bit constants and a loader that writes words into guest RAM.
 */

/** ABI register numbers. */
export const R = {
  zero: 0,
  ra: 1,
  sp: 2,
  t0: 5,
  t1: 6,
  t2: 7,
  s0: 8,
  s1: 9,
  a0: 10,
  a1: 11,
  a2: 12,
  a3: 13,
  a4: 14,
  a5: 15,
  a6: 16,
  a7: 17,
} as const;

const mask = (v: number, bits: number): number => v & ((1 << bits) - 1);

function iType(op: number, f3: number, rd: number, rs1: number, imm: number): number {
  return ((mask(imm, 12) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
}

function sType(op: number, f3: number, rs1: number, rs2: number, imm: number): number {
  const i = mask(imm, 12);
  return (((i >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((i & 31) << 7) | op) >>> 0;
}

/** addi rd, rs1, imm (12-bit signed). */
export const addi = (rd: number, rs1: number, imm: number): number => iType(0x13, 0, rd, rs1, imm);
/** slli rd, rs1, shamt. */
export const slli = (rd: number, rs1: number, sh: number): number => iType(0x13, 1, rd, rs1, sh);
/** lui rd, imm20 (upper 20 bits). */
export const lui = (rd: number, imm20: number): number =>
  ((mask(imm20, 20) << 12) | (rd << 7) | 0x37) >>> 0;
/** add rd, rs1, rs2. */
export const add = (rd: number, rs1: number, rs2: number): number =>
  ((rs2 << 20) | (rs1 << 15) | (rd << 7) | 0x33) >>> 0;
/** Loads: width 0 lb, 1 lh, 2 lw, 3 ld, 4 lbu, 5 lhu, 6 lwu. */
export const load = (f3: number, rd: number, rs1: number, imm: number): number =>
  iType(0x03, f3, rd, rs1, imm);
/** Stores: width 0 sb, 1 sh, 2 sw, 3 sd. */
export const store = (f3: number, rs2: number, rs1: number, imm: number): number =>
  sType(0x23, f3, rs1, rs2, imm);

/** jal rd, offset (±1 MiB, even). */
export function jal(rd: number, offset: number): number {
  const o = mask(offset, 21);
  const imm =
    (((o >> 20) & 1) << 31) |
    (((o >> 1) & 0x3ff) << 21) |
    (((o >> 11) & 1) << 20) |
    (((o >> 12) & 0xff) << 12);
  return (imm | (rd << 7) | 0x6f) >>> 0;
}

/** bne rs1, rs2, offset. */
export function bne(rs1: number, rs2: number, offset: number): number {
  const o = mask(offset, 13);
  const imm =
    (((o >> 12) & 1) << 31) |
    (((o >> 5) & 0x3f) << 25) |
    (((o >> 1) & 0xf) << 8) |
    (((o >> 11) & 1) << 7);
  return (imm | (rs2 << 20) | (rs1 << 15) | (1 << 12) | 0x63) >>> 0;
}

/** csrrs rd, csr, rs1 (csrr when rs1 = 0, csrs when rd = 0). */
export const csrrs = (rd: number, csr: number, rs1: number): number => iType(0x73, 2, rd, rs1, csr);
/** csrrw rd, csr, rs1. */
export const csrrw = (rd: number, csr: number, rs1: number): number => iType(0x73, 1, rd, rs1, csr);
/** ecall. */
export const ECALL = 0x00000073;
/** wfi. */
export const WFI = 0x10500073;
/** nop (addi x0, x0, 0). */
export const NOP = 0x00000013;

/** li rd, value: lui/addi for 32-bit values, shifted pieces for wider ones. */
export function li(rd: number, value: bigint): number[] {
  const v = BigInt.asIntN(64, value);
  if (v >= -2048n && v < 2048n) return [addi(rd, 0, Number(v))];
  if (v >= -(1n << 31n) && v < 1n << 31n) {
    const n = Number(v);
    const lo = ((n & 0xfff) << 20) >> 20;
    const hi = ((n - lo) >>> 12) & 0xfffff;
    return lo === 0 ? [lui(rd, hi)] : [lui(rd, hi), addi(rd, rd, lo)];
  }
  // Build the upper part, then shift in 11-bit chunks (keeps each addi positive).
  const low = BigInt.asUintN(64, v) & 0x3fffffn;
  const out = li(rd, BigInt.asIntN(64, v >> 22n));
  out.push(slli(rd, rd, 11), addi(rd, rd, Number(low >> 11n)), slli(rd, rd, 11));
  out.push(addi(rd, rd, Number(low & 0x7ffn)));
  return out;
}

/** Writes instruction words little-endian into `ram` at byte `offset`. */
export function place(ram: Uint8Array, offset: number, words: readonly number[]): void {
  const view = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
  words.forEach((w, i) => {
    view.setUint32(offset + 4 * i, w, true);
  });
}
