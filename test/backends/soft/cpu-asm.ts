/**
 * A tiny RV64 encoder for the CPU tests' hand-built programs (no toolchain needed), plus a helper that
 * puts a program into a fresh Hart with one RAM slot at 0x80000000.
 */
import { Hart, type HartOptions } from "../../../src/backends/soft/riscv/hart.js";

/** Register numbers by ABI name. */
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
} as const;

const u = (v: number): number => v >>> 0;

/** I-type. */
export function iType(op: number, f3: number, rd: number, rs1: number, imm: number): number {
  return u(((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op);
}

/** R-type. */
export function rType(
  op: number,
  f3: number,
  f7: number,
  rd: number,
  rs1: number,
  rs2: number,
): number {
  return u((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op);
}

/** S-type. */
export function sType(op: number, f3: number, rs1: number, rs2: number, imm: number): number {
  return u(
    (((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 31) << 7) | op,
  );
}

/** B-type (offset in bytes, even). */
export function bType(f3: number, rs1: number, rs2: number, off: number): number {
  return u(
    (((off >> 12) & 1) << 31) |
      (((off >> 5) & 0x3f) << 25) |
      (rs2 << 20) |
      (rs1 << 15) |
      (f3 << 12) |
      (((off >> 1) & 15) << 8) |
      (((off >> 11) & 1) << 7) |
      0x63,
  );
}

/** JAL rd, off. */
export function jal(rd: number, off: number): number {
  return u(
    (((off >> 20) & 1) << 31) |
      (((off >> 1) & 0x3ff) << 21) |
      (((off >> 11) & 1) << 20) |
      (((off >> 12) & 0xff) << 12) |
      (rd << 7) |
      0x6f,
  );
}

/** Common instructions. */
export const I = {
  addi: (rd: number, rs1: number, imm: number) => iType(0x13, 0, rd, rs1, imm),
  lui: (rd: number, imm20: number) => u(((imm20 & 0xfffff) << 12) | (rd << 7) | 0x37),
  slli: (rd: number, rs1: number, sh: number) => iType(0x13, 1, rd, rs1, sh),
  add: (rd: number, rs1: number, rs2: number) => rType(0x33, 0, 0, rd, rs1, rs2),
  lb: (rd: number, rs1: number, imm: number) => iType(0x03, 0, rd, rs1, imm),
  lbu: (rd: number, rs1: number, imm: number) => iType(0x03, 4, rd, rs1, imm),
  lh: (rd: number, rs1: number, imm: number) => iType(0x03, 1, rd, rs1, imm),
  lw: (rd: number, rs1: number, imm: number) => iType(0x03, 2, rd, rs1, imm),
  lwu: (rd: number, rs1: number, imm: number) => iType(0x03, 6, rd, rs1, imm),
  ld: (rd: number, rs1: number, imm: number) => iType(0x03, 3, rd, rs1, imm),
  sb: (rs1: number, rs2: number, imm: number) => sType(0x23, 0, rs1, rs2, imm),
  sw: (rs1: number, rs2: number, imm: number) => sType(0x23, 2, rs1, rs2, imm),
  sd: (rs1: number, rs2: number, imm: number) => sType(0x23, 3, rs1, rs2, imm),
  beq: (rs1: number, rs2: number, off: number) => bType(0, rs1, rs2, off),
  bne: (rs1: number, rs2: number, off: number) => bType(1, rs1, rs2, off),
  jal,
  jalr: (rd: number, rs1: number, imm: number) => iType(0x67, 0, rd, rs1, imm),
  ecall: () => 0x00000073,
  ebreak: () => 0x00100073,
  sret: () => 0x10200073,
  wfi: () => 0x10500073,
  fenceI: () => 0x0000100f,
  csrrw: (rd: number, csr: number, rs1: number) => iType(0x73, 1, rd, rs1, csr),
  csrrs: (rd: number, csr: number, rs1: number) => iType(0x73, 2, rd, rs1, csr),
  csrrc: (rd: number, csr: number, rs1: number) => iType(0x73, 3, rd, rs1, csr),
  lrW: (rd: number, rs1: number) => rType(0x2f, 2, 0x02 << 2, rd, rs1, 0),
  scW: (rd: number, rs1: number, rs2: number) => rType(0x2f, 2, 0x03 << 2, rd, rs1, rs2),
  amoaddD: (rd: number, rs1: number, rs2: number) => rType(0x2f, 3, 0, rd, rs1, rs2),
} as const;

/** RAM base of test harts (QEMU virt's). */
export const BASE = 0x80000000;

/** A hart with `ramSize` bytes of RAM at BASE holding `code` (32-bit words or raw bytes). */
export function hartWith(
  code: readonly number[] | Uint8Array,
  opts: HartOptions & { ramSize?: number } = {},
): { hart: Hart; ram: Uint8Array; view: DataView } {
  const ram = new Uint8Array(opts.ramSize ?? 1 << 20);
  const view = new DataView(ram.buffer);
  if (code instanceof Uint8Array) ram.set(code);
  else
    code.forEach((w, i) => {
      view.setUint32(4 * i, w >>> 0, true);
    });
  const hart = new Hart(opts);
  hart.setMemslots([{ slot: 0, gpa: BASE, bytes: ram, readonly: false }]);
  hart.setPc(BigInt(BASE));
  return { hart, ram, view };
}

/** Loads a 64-bit constant into rd (lui/addi/slli sequence, at most 8 instructions). */
export function li(rd: number, value: bigint): number[] {
  const v = BigInt.asIntN(64, value);
  if (v >= -2048n && v < 2048n) return [I.addi(rd, 0, Number(v))];
  if (v >= -(1n << 31n) && v < 1n << 31n) {
    const lo = Number(BigInt.asIntN(12, v));
    const hi = Number(BigInt.asIntN(32, v - BigInt(lo))) >> 12;
    // lui+addiw keeps 32-bit semantics (sign-extension) exact.
    return [I.lui(rd, hi), iType(0x1b, 0, rd, rd, lo)];
  }
  const lo = Number(BigInt.asIntN(12, v));
  const rest = (v - BigInt(lo)) >> 12n;
  return [...li(rd, rest), I.slli(rd, rd, 12), I.addi(rd, rd, lo)];
}
