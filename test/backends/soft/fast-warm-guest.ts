/** The guest of fast-warm.test.ts, a module of its own: the test's child process imports it. */
import { I, R, iType, place } from "./asm.js";

/** `sltiu rd, rs1, imm` (RV64I OP-IMM, funct3 = 3). */
const sltiu = (rd: number, rs1: number, imm: number): number => iType(0x13, 3, rd, rs1, imm);
/** The sscratch CSR number (privileged spec, "Supervisor Scratch Register"). */
const SSCRATCH = 0x140;
/** `fence.i` (Zifencei). */
const FENCE_I = 0x0000100f;
/** `auipc rd, 0`. */
const auipc0 = (rd: number): number => (rd << 7) | 0x17;

/**
 * The guest (RAM offsets): page 0 runs `sltiu` whose operands' upper words are equal (so the
 * low words decide) a CSR read (the loop goes on after it) and fence.i (it ends the loop's call), and jumps to page 1, which loops back to page 0 once (jumps between two
 * looked-up pages, the loop's `ops = q.op`), then rewrites its own running page with the bytes
 * already there (the page is dropped: the first `DecodedPage.valid` write) and ends in ecall.
 */
export function guest(ram: Uint8Array): void {
  place(ram, 0, [
    I.addi(R.s1, R.zero, 2),
    I.addi(R.a1, R.zero, 3),
    sltiu(R.a0, R.a1, 5),
    I.csrrs(R.a2, SSCRATCH, R.zero),
    FENCE_I,
    I.jal(R.zero, 4096 - 20),
  ]);
  place(ram, 4096, [
    I.addi(R.s1, R.s1, -1),
    I.beq(R.s1, R.zero, 8),
    I.jal(R.zero, 4 - 4104),
    auipc0(R.t0),
    I.lw(R.t1, R.t0, 0),
    I.sw(R.t1, R.t0, 0),
    I.ecall(),
  ]);
}
