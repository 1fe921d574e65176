/**
 * Encoders of the 32-bit RISC-V instruction formats (unprivileged spec §2.2–2.3: R, I, S, B, J),
 * for the engine's warm-up programs (fast-warm.ts, ref-warm.ts). Immediates are byte offsets
 * (B and J: even), taken modulo their field width.
 */

/** R-type: funct7, rs2, rs1, funct3, rd, opcode. */
export const rType = (
  f7: number,
  rs2: number,
  rs1: number,
  f3: number,
  rd: number,
  op: number,
): number => (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;

/** I-type: a 12-bit immediate, rs1, funct3, rd, opcode. */
export const iType = (imm: number, rs1: number, f3: number, rd: number, op: number): number =>
  ((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;

/** S-type store (opcode STORE): a 12-bit offset, rs2 (the value), rs1 (the base), funct3. */
export const sType = (imm: number, rs2: number, rs1: number, f3: number): number =>
  (((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 31) << 7) | 0x23;

/** B-type branch (opcode BRANCH): a 13-bit even offset, rs2, rs1, funct3. */
export const bType = (imm: number, rs2: number, rs1: number, f3: number): number =>
  (((imm >> 12) & 1) << 31) |
  (((imm >> 5) & 0x3f) << 25) |
  (rs2 << 20) |
  (rs1 << 15) |
  (f3 << 12) |
  (((imm >> 1) & 0xf) << 8) |
  (((imm >> 11) & 1) << 7) |
  0x63;

/** `jal rd, imm` (J-type): a 21-bit even offset. */
export const jal = (imm: number, rd: number): number =>
  (((imm >> 20) & 1) << 31) |
  (((imm >> 1) & 0x3ff) << 21) |
  (((imm >> 11) & 1) << 20) |
  (((imm >> 12) & 0xff) << 12) |
  (rd << 7) |
  0x6f;
