/**
 * The RV64 assembler of the soft-backend tests: one encoder per instruction the hand-built test
 * programs use (real encodings from the RISC-V unprivileged spec, chapter "RV32I Base Integer
 * Instruction Set" §2.2–2.3 for the formats), `li` for 64-bit constants, and `place` to write
 * words into guest RAM. Operands follow assembly order: `I.sd(rs2, rs1, imm)` is `sd rs2,
 * imm(rs1)`. Out-of-range operands throw RangeError instead of being silently truncated.
 */

/** Integer register numbers by ABI name (spec chapter "RISC-V Assembly Programmer's Handbook"). */
export const R = {
  zero: 0,
  ra: 1,
  sp: 2,
  gp: 3,
  tp: 4,
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
  s2: 18,
  s3: 19,
  s4: 20,
  s5: 21,
  s6: 22,
  s7: 23,
  s8: 24,
  s9: 25,
  s10: 26,
  s11: 27,
  t3: 28,
  t4: 29,
  t5: 30,
  t6: 31,
} as const;

function check(ok: boolean, what: string, value: number): void {
  if (!ok) throw new RangeError(`asm: ${what} out of range: ${value}`);
}

/** A register number 0..31. */
function x(r: number): number {
  check(Number.isInteger(r) && r >= 0 && r < 32, "register", r);
  return r;
}

/** A signed immediate that must fit `bits` bits (and be a multiple of `align`), masked. */
function simm(v: number, bits: number, align = 1): number {
  const lim = 2 ** (bits - 1);
  check(Number.isInteger(v) && v >= -lim && v < lim && v % align === 0, `${bits}-bit immediate`, v);
  return v & (2 * lim - 1);
}

/** An unsigned field that must fit `bits` bits (CSR numbers, shift amounts). */
function uimm(v: number, bits: number): number {
  check(Number.isInteger(v) && v >= 0 && v < 2 ** bits, `${bits}-bit field`, v);
  return v;
}

/** R-type: funct7 | rs2 | rs1 | funct3 | rd | opcode. */
export function rType(
  op: number,
  f3: number,
  f7: number,
  rd: number,
  rs1: number,
  rs2: number,
): number {
  return ((f7 << 25) | (x(rs2) << 20) | (x(rs1) << 15) | (f3 << 12) | (x(rd) << 7) | op) >>> 0;
}

/** I-type with a raw 12-bit field `imm12` (callers range-check it as signed or unsigned). */
export function iType(op: number, f3: number, rd: number, rs1: number, imm12: number): number {
  return ((uimm(imm12, 12) << 20) | (x(rs1) << 15) | (f3 << 12) | (x(rd) << 7) | op) >>> 0;
}

/** S-type: the signed 12-bit offset split into imm[11:5] and imm[4:0]. */
function sType(f3: number, rs2: number, rs1: number, imm: number): number {
  const i = simm(imm, 12);
  return (
    (((i >> 5) << 25) | (x(rs2) << 20) | (x(rs1) << 15) | (f3 << 12) | ((i & 31) << 7) | 0x23) >>> 0
  );
}

/** B-type: a signed, even byte offset of ±4 KiB, bits scattered as imm[12|10:5] … imm[4:1|11]. */
function bType(f3: number, rs1: number, rs2: number, off: number): number {
  const o = simm(off, 13, 2);
  const imm =
    (((o >> 12) & 1) << 31) |
    (((o >> 5) & 0x3f) << 25) |
    (((o >> 1) & 0xf) << 8) |
    (((o >> 11) & 1) << 7);
  return (imm | (x(rs2) << 20) | (x(rs1) << 15) | (f3 << 12) | 0x63) >>> 0;
}

/** J-type (jal): a signed, even byte offset of ±1 MiB as imm[20|10:1|11|19:12]. */
function jType(rd: number, off: number): number {
  const o = simm(off, 21, 2);
  const imm =
    (((o >> 20) & 1) << 31) |
    (((o >> 1) & 0x3ff) << 21) |
    (((o >> 11) & 1) << 20) |
    (((o >> 12) & 0xff) << 12);
  return (imm | (x(rd) << 7) | 0x6f) >>> 0;
}

const opImm = (f3: number) => (rd: number, rs1: number, imm: number) =>
  iType(0x13, f3, rd, rs1, simm(imm, 12));
const load = (f3: number) => (rd: number, rs1: number, imm: number) =>
  iType(0x03, f3, rd, rs1, simm(imm, 12));
const store = (f3: number) => (rs2: number, rs1: number, imm: number) => sType(f3, rs2, rs1, imm);
const branch = (f3: number) => (rs1: number, rs2: number, off: number) => bType(f3, rs1, rs2, off);
const csr = (f3: number) => (rd: number, n: number, rs1: number) =>
  iType(0x73, f3, rd, rs1, uimm(n, 12));
/** AMO/LR/SC: funct5 then aq = rl = 0 in funct7 (spec chapter "A" Extension). */
const amo = (f3: number, f5: number) => (rd: number, rs1: number, rs2: number) =>
  rType(0x2f, f3, f5 << 2, rd, rs1, rs2);

/** Instruction encoders by mnemonic; each returns the 32-bit instruction word. */
export const I = {
  addi: opImm(0),
  andi: opImm(7),
  /** slli rd, rs1, shamt (RV64: 6-bit shamt, funct6 = 0). */
  slli: (rd: number, rs1: number, sh: number) => iType(0x13, 1, rd, rs1, uimm(sh, 6)),
  /** lui rd, imm20: the 20-bit field as unsigned (0..0xfffff) or signed (-0x80000..0x7ffff). */
  lui: (rd: number, imm20: number) => {
    check(
      Number.isInteger(imm20) && imm20 >= -(1 << 19) && imm20 < 1 << 20,
      "lui immediate",
      imm20,
    );
    return (((imm20 & 0xfffff) << 12) | (x(rd) << 7) | 0x37) >>> 0;
  },
  add: (rd: number, rs1: number, rs2: number) => rType(0x33, 0, 0, rd, rs1, rs2),
  lb: load(0),
  lh: load(1),
  lw: load(2),
  ld: load(3),
  lbu: load(4),
  lhu: load(5),
  lwu: load(6),
  sb: store(0),
  sh: store(1),
  sw: store(2),
  sd: store(3),
  beq: branch(0),
  bne: branch(1),
  jal: jType,
  jalr: (rd: number, rs1: number, imm: number) => iType(0x67, 0, rd, rs1, simm(imm, 12)),
  csrrw: csr(1),
  csrrs: csr(2),
  csrrc: csr(3),
  /** lr.w rd, (rs1). */
  lrW: (rd: number, rs1: number) => amo(2, 0x02)(rd, rs1, 0),
  /** sc.w rd, rs2, (rs1). */
  scW: amo(2, 0x03),
  /** amoadd.d rd, rs2, (rs1). */
  amoaddD: amo(3, 0x00),
  ecall: () => 0x00000073,
  ebreak: () => 0x00100073,
  sret: () => 0x10200073,
  wfi: () => 0x10500073,
  fenceI: () => 0x0000100f,
} as const;

/**
 * li rd, value: the shortest-ish lui/addi/slli sequence for a 64-bit constant (at most 8 words).
 * It avoids addiw on purpose so the programs also run on the kernel tests' fake hart (RV64I
 * subset, test/backends/soft/fake-hart.ts). lui sign-extends bit 31 on RV64, so lui+addi only
 * covers values whose upper part fits 32 signed bits; wider values are built as
 * li(upper >> shift); slli shift; addi low12, with the shift skipping the upper part's trailing
 * zeros (the approach of LLVM's RISCVMatInt).
 */
export function li(rd: number, value: bigint): number[] {
  const v = BigInt.asIntN(64, value);
  const lo = BigInt.asIntN(12, v); // what the final addi adds (sign-extended)
  if (v === lo) return [I.addi(rd, R.zero, Number(lo))];
  const hi = v - lo; // a non-zero multiple of 4096
  if (hi >= -(1n << 31n) && hi < 1n << 31n) {
    const upper = I.lui(rd, Number(hi >> 12n));
    return lo === 0n ? [upper] : [upper, I.addi(rd, rd, Number(lo))];
  }
  let shift = 12n;
  while (((hi >> shift) & 1n) === 0n) shift++;
  const out = [...li(rd, hi >> shift), I.slli(rd, rd, Number(shift))];
  if (lo !== 0n) out.push(I.addi(rd, rd, Number(lo)));
  return out;
}

/** Writes instruction words little-endian into `ram` at byte `offset`. */
export function place(ram: Uint8Array, offset: number, words: readonly number[]): void {
  const view = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
  words.forEach((w, i) => {
    view.setUint32(offset + 4 * i, w, true);
  });
}
