/**
 * RVC (the C extension, unprivileged spec chapter "Compressed Instructions", RV64 column):
 * every 16-bit instruction expanded once into its 32-bit equivalent, so the interpreter and the
 * block translator only decode one format. Reserved encodings and RV32/RV128-only forms expand
 * to 0 (illegal); HINTs expand to their architectural no-op form.
 */

/** Bits lo..hi (inclusive) of v. */
function bits(v: number, hi: number, lo: number): number {
  return (v >>> lo) & ((1 << (hi - lo + 1)) - 1);
}

/** Sign-extends the low `width` bits of v. */
function sext(v: number, width: number): number {
  const s = 32 - width;
  return (v << s) >> s;
}

function iType(imm: number, rs1: number, f3: number, rd: number, op: number): number {
  return ((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}

function sType(imm: number, rs2: number, rs1: number, f3: number, op: number): number {
  return (
    (((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 31) << 7) | op
  );
}

function bType(imm: number, rs2: number, rs1: number, f3: number): number {
  return (
    (((imm >> 12) & 1) << 31) |
    (((imm >> 5) & 0x3f) << 25) |
    (rs2 << 20) |
    (rs1 << 15) |
    (f3 << 12) |
    (((imm >> 1) & 15) << 8) |
    (((imm >> 11) & 1) << 7) |
    0x63
  );
}

function jType(imm: number, rd: number): number {
  return (
    (((imm >> 20) & 1) << 31) |
    (((imm >> 1) & 0x3ff) << 21) |
    (((imm >> 11) & 1) << 20) |
    (((imm >> 12) & 0xff) << 12) |
    (rd << 7) |
    0x6f
  );
}

function rType(f7: number, rs2: number, rs1: number, f3: number, rd: number, op: number): number {
  return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}

const OP_IMM = 0x13;
const OP_IMM32 = 0x1b;
const OP = 0x33;
const OP32 = 0x3b;
const LOAD = 0x03;
const STORE = 0x23;
const LOAD_FP = 0x07;
const STORE_FP = 0x27;

function quadrant0(c: number): number {
  const f3 = bits(c, 15, 13);
  const rdp = bits(c, 4, 2) + 8;
  const rs1p = bits(c, 9, 7) + 8;
  // uimm[5:3] = c[12:10], uimm[7:6] = c[6:5] (C.LD/C.SD/C.FLD/C.FSD).
  const dOff = (bits(c, 12, 10) << 3) | (bits(c, 6, 5) << 6);
  // uimm[5:3] = c[12:10], uimm[2] = c[6], uimm[6] = c[5] (C.LW/C.SW).
  const wOff = (bits(c, 12, 10) << 3) | (bits(c, 6, 6) << 2) | (bits(c, 5, 5) << 6);
  switch (f3) {
    case 0: {
      // C.ADDI4SPN: nzuimm[5:4|9:6|2|3] = c[12:5].
      const imm =
        (bits(c, 12, 11) << 4) |
        (bits(c, 10, 7) << 6) |
        (bits(c, 6, 6) << 2) |
        (bits(c, 5, 5) << 3);
      return imm === 0 ? 0 : iType(imm, 2, 0, rdp, OP_IMM);
    }
    case 1:
      return iType(dOff, rs1p, 3, rdp, LOAD_FP);
    case 2:
      return iType(wOff, rs1p, 2, rdp, LOAD);
    case 3:
      return iType(dOff, rs1p, 3, rdp, LOAD);
    case 5:
      return sType(dOff, rdp, rs1p, 3, STORE_FP);
    case 6:
      return sType(wOff, rdp, rs1p, 2, STORE);
    case 7:
      return sType(dOff, rdp, rs1p, 3, STORE);
    default:
      return 0;
  }
}

function quadrant1Alu(c: number): number {
  const rd = bits(c, 9, 7) + 8;
  const sh = (bits(c, 12, 12) << 5) | bits(c, 6, 2);
  switch (bits(c, 11, 10)) {
    case 0:
      return iType(sh, rd, 5, rd, OP_IMM);
    case 1:
      return iType(0x400 | sh, rd, 5, rd, OP_IMM);
    case 2:
      return iType(sext((bits(c, 12, 12) << 5) | bits(c, 6, 2), 6), rd, 7, rd, OP_IMM);
    default: {
      const rs2 = bits(c, 4, 2) + 8;
      const f2 = bits(c, 6, 5);
      if (bits(c, 12, 12) === 0) {
        if (f2 === 0) return rType(0x20, rs2, rd, 0, rd, OP);
        if (f2 === 1) return rType(0, rs2, rd, 4, rd, OP);
        if (f2 === 2) return rType(0, rs2, rd, 6, rd, OP);
        return rType(0, rs2, rd, 7, rd, OP);
      }
      if (f2 === 0) return rType(0x20, rs2, rd, 0, rd, OP32);
      if (f2 === 1) return rType(0, rs2, rd, 0, rd, OP32);
      return 0;
    }
  }
}

function quadrant1(c: number): number {
  const f3 = bits(c, 15, 13);
  const rd = bits(c, 11, 7);
  const imm6 = sext((bits(c, 12, 12) << 5) | bits(c, 6, 2), 6);
  switch (f3) {
    case 0:
      return iType(imm6, rd, 0, rd, OP_IMM);
    case 1:
      return rd === 0 ? 0 : iType(imm6, rd, 0, rd, OP_IMM32);
    case 2:
      return iType(imm6, 0, 0, rd, OP_IMM);
    case 3: {
      if (rd === 2) {
        // C.ADDI16SP: nzimm[9|4|6|8:7|5] = c[12|6|5|4:3|2].
        const imm = sext(
          (bits(c, 12, 12) << 9) |
            (bits(c, 6, 6) << 4) |
            (bits(c, 5, 5) << 6) |
            (bits(c, 4, 3) << 7) |
            (bits(c, 2, 2) << 5),
          10,
        );
        return imm === 0 ? 0 : iType(imm, 2, 0, 2, OP_IMM);
      }
      if (imm6 === 0) return 0;
      return ((imm6 & 0xfffff) << 12) | (rd << 7) | 0x37;
    }
    case 4:
      return quadrant1Alu(c);
    case 5: {
      // C.J: offset[11|4|9:8|10|6|7|3:1|5] = c[12|11|10:9|8|7|6|5:3|2].
      const imm = sext(
        (bits(c, 12, 12) << 11) |
          (bits(c, 11, 11) << 4) |
          (bits(c, 10, 9) << 8) |
          (bits(c, 8, 8) << 10) |
          (bits(c, 7, 7) << 6) |
          (bits(c, 6, 6) << 7) |
          (bits(c, 5, 3) << 1) |
          (bits(c, 2, 2) << 5),
        12,
      );
      return jType(imm, 0);
    }
    default: {
      // C.BEQZ/C.BNEZ: offset[8|4:3|7:6|2:1|5] = c[12|11:10|6:5|4:3|2].
      const imm = sext(
        (bits(c, 12, 12) << 8) |
          (bits(c, 11, 10) << 3) |
          (bits(c, 6, 5) << 6) |
          (bits(c, 4, 3) << 1) |
          (bits(c, 2, 2) << 5),
        9,
      );
      return bType(imm, 0, bits(c, 9, 7) + 8, f3 === 6 ? 0 : 1);
    }
  }
}

function quadrant2(c: number): number {
  const f3 = bits(c, 15, 13);
  const rd = bits(c, 11, 7);
  const rs2 = bits(c, 6, 2);
  const b12 = bits(c, 12, 12);
  // uimm[5] = c[12], uimm[4:3] = c[6:5], uimm[8:6] = c[4:2] (C.LDSP/C.FLDSP).
  const dSp = (b12 << 5) | (bits(c, 6, 5) << 3) | (bits(c, 4, 2) << 6);
  // uimm[5:3] = c[12:10], uimm[8:6] = c[9:7] (C.SDSP/C.FSDSP).
  const dSs = (bits(c, 12, 10) << 3) | (bits(c, 9, 7) << 6);
  switch (f3) {
    case 0:
      return iType((b12 << 5) | rs2, rd, 1, rd, OP_IMM);
    case 1:
      return iType(dSp, 2, 3, rd, LOAD_FP);
    case 2: {
      const off = (b12 << 5) | (bits(c, 6, 4) << 2) | (bits(c, 3, 2) << 6);
      return rd === 0 ? 0 : iType(off, 2, 2, rd, LOAD);
    }
    case 3:
      return rd === 0 ? 0 : iType(dSp, 2, 3, rd, LOAD);
    case 4:
      if (b12 === 0) {
        if (rs2 === 0) return rd === 0 ? 0 : iType(0, rd, 0, 0, 0x67);
        return rType(0, rs2, 0, 0, rd, OP);
      }
      if (rs2 === 0) return rd === 0 ? 0x00100073 : iType(0, rd, 0, 1, 0x67);
      return rType(0, rs2, rd, 0, rd, OP);
    case 5:
      return sType(dSs, rs2, 2, 3, STORE_FP);
    case 6:
      return sType((bits(c, 12, 9) << 2) | (bits(c, 8, 7) << 6), rs2, 2, 2, STORE);
    default:
      return sType(dSs, rs2, 2, 3, STORE);
  }
}

/** Expands one 16-bit instruction (low two bits != 3) to its 32-bit form; 0 = illegal. */
export function expandCompressed(c: number): number {
  switch (c & 3) {
    case 0:
      return quadrant0(c);
    case 1:
      return quadrant1(c);
    case 2:
      return quadrant2(c);
    default:
      return 0;
  }
}

/**
 * Expansions made so far, indexed by the 16-bit instruction; NOT_YET marks one not made yet (an
 * expansion is 0 or has its low bits 11, so it is never 1). Building all 65536 at start cost
 * 30-85 ms per process on a loaded 2-core host (each threaded worker paid it again); a Linux
 * boot uses a few thousand distinct compressed instructions.
 */
const NOT_YET = 1;
const memo = new Int32Array(65536).fill(NOT_YET);

/** The 32-bit form of compressed instruction `c` (0: illegal; `c & 3 === 3` is not compressed: 0). */
export function expandRvc(c: number): number {
  const e = memo[c] ?? 0;
  if (e !== NOT_YET) return e;
  const x = (c & 3) === 3 ? 0 : expandCompressed(c);
  memo[c] = x;
  return x;
}
