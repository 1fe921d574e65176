/**
 * Test helper: tiny RISC-V guests for `runGuest()` written as machine code (RV64I encodings,
 * unprivileged spec ch. 2 "Base Instruction Formats"), so the run loop is tested without a
 * cross compiler. Each guest is an ELF64 for EM_RISCV at 0x80200000 (test/vmm/elf-builder.ts).
 */
import { buildElf, EM_TEST, PF } from "./elf-builder.js";

/** ABI register numbers. */
export const R = { zero: 0, t0: 5, s0: 8, s1: 9, a0: 10, a1: 11, a2: 12, a6: 16, a7: 17 } as const;

/** Load address and entry of the guests. */
export const GUEST_BASE = 0x8020_0000n;

const itype = (op: number, rd: number, f3: number, rs1: number, imm: number): number =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;

/** addi rd, rs1, imm (12-bit signed). */
export const addi = (rd: number, rs1: number, imm: number): number => itype(0x13, rd, 0, rs1, imm);
/** lw rd, imm(rs1). */
export const lw = (rd: number, rs1: number, imm: number): number => itype(0x03, rd, 2, rs1, imm);
/** jalr rd, imm(rs1). */
export const jalr = (rd: number, rs1: number, imm: number): number => itype(0x67, rd, 0, rs1, imm);
/** ecall. */
export const ECALL = 0x0000_0073;
/** jal zero, 0: a one-instruction infinite loop. */
export const SPIN = 0x0000_006f;

/**
 * li rd, value for values that fit in 32 bits signed (lui + addi; lui sign-extends on RV64).
 * @throws RangeError for values outside that range.
 */
export function li(rd: number, value: number): number[] {
  if (value < -0x8000_0000 || value > 0x7fff_ffff) throw new RangeError(`li: ${value}`);
  if (value >= -2048 && value < 2048) return [addi(rd, R.zero, value)];
  const hi = ((value + 0x800) >> 12) & 0xf_ffff;
  const lo = value - (((value + 0x800) >> 12) << 12);
  return [((hi << 12) | (rd << 7) | 0x37) >>> 0, addi(rd, rd, lo)];
}

/** An SBI call: a7 = eid, a6 = fid, then ecall (arguments set by the caller). */
export function sbi(eid: number, fid = 0): number[] {
  return [...li(R.a7, eid), ...li(R.a6, fid), ECALL];
}

/** SBI SRST system_reset(type, reason), then a spin in case it returns. */
export function srst(type: number, reason: number): number[] {
  return [...li(R.a0, type), ...li(R.a1, reason), ...sbi(0x5352_5354), SPIN];
}

/** Legacy SBI putchar of a constant byte. */
export function putchar(byte: number): number[] {
  return [...li(R.a0, byte), ...sbi(0x01)];
}

/** Instructions as little-endian bytes. */
export function code(words: readonly number[]): Uint8Array {
  const out = new Uint8Array(4 * words.length);
  const view = new DataView(out.buffer);
  words.forEach((w, i) => {
    view.setUint32(4 * i, w, true);
  });
  return out;
}

/** An ELF64 RISC-V executable of `words` at GUEST_BASE, with `bss` zero bytes after the code. */
export function riscvElf(words: readonly number[], bss = 0n): Uint8Array {
  const data = code(words);
  return buildElf({
    bits: 64,
    machine: EM_TEST.RISCV,
    entry: GUEST_BASE,
    segments: [
      { paddr: GUEST_BASE, data, memsz: BigInt(data.length) + bss, flags: PF.R | PF.X | PF.W },
    ],
  });
}

/** An ELF for `machine` with one tiny segment at `paddr` (for refusal tests). */
export function foreignElf(machine: number, bits: 32 | 64, paddr: bigint): Uint8Array {
  return buildElf({
    bits,
    machine,
    entry: paddr,
    segments: [{ paddr, data: Uint8Array.of(0xf4), flags: PF.R | PF.X }],
  });
}
