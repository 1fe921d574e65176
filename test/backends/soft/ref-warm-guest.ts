/**
 * The guest of ref-warm.test.ts, a module of its own: the test's child process imports it.
 *
 * What a Linux boot does when /init starts, in miniature: S mode turns on Sv39 (a gigapage over
 * RAM, 4 KiB user pages at USER_VA), writes a user page with SUM set, clears SUM and srets to U
 * mode, where the user code loads, stores, runs AMOs and LR/SC, reads `time` and the FP flags,
 * faults on an unmapped page (the handler skips the instruction) and ends with `ecall` (the
 * handler then makes an S-mode ecall: the run stops). Privileged spec §4.3 (Sv39), §4.1.1.
 */
import { I, R, li, place } from "./asm.js";

const RAM_BASE = 0x80000000;
/** The user pages' virtual addresses: code, then data; the page after them is unmapped. */
const USER_VA = 0x40000000;
/** RAM offsets: tables, the user pages' backing, the trap handler. */
const ROOT = 0x8000;
const L1 = 0x9000;
const L0 = 0xa000;
const U_CODE = 0x10000;
const U_DATA = 0x11000;
const HANDLER = 0x800;
const PTE = { V: 1, R: 2, W: 4, X: 8, U: 16, A: 64, D: 128 } as const;
const SUM = 1 << 18;
const FS = 3 << 13;
const CSR = { SSTATUS: 0x100, STVEC: 0x105, SEPC: 0x141, SCAUSE: 0x142, SATP: 0x180 } as const;
/** amo<f5>.<w|d> rd, rs2, (rs1) (spec chapter "A"). */
const amo = (f3: number, f5: number, rd: number, rs1: number, rs2: number): number =>
  ((f5 << 27) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | 0x2f) >>> 0;
/** c.fld f8, 0(s0), then c.nop (RVC quadrant 0). */
const CFLD_CNOP = 0x00012000;

function pte(view: DataView, table: number, idx: number, pa: number, flags: number): void {
  view.setBigUint64(table + idx * 8, (BigInt(pa / 4096) << 10n) | BigInt(flags), true);
}

/** Writes the tables and the code into `ram` (1 MiB at RAM_BASE, pc at RAM_BASE). */
export function guest(ram: Uint8Array): void {
  const view = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
  const all = PTE.V | PTE.R | PTE.W | PTE.X | PTE.A | PTE.D;
  pte(view, ROOT, 2, RAM_BASE, all); // gigapage: VA = PA over RAM, S only
  pte(view, ROOT, 1, RAM_BASE + L1, PTE.V);
  pte(view, L1, 0, RAM_BASE + L0, PTE.V);
  pte(view, L0, 0, RAM_BASE + U_CODE, PTE.V | PTE.R | PTE.X | PTE.U | PTE.A);
  pte(view, L0, 1, RAM_BASE + U_DATA, PTE.V | PTE.R | PTE.W | PTE.U); // A/D: set by the walk
  const satp = (8n << 60n) | BigInt((RAM_BASE + ROOT) / 4096);
  place(ram, 0, [
    ...li(R.t0, satp),
    I.csrrw(R.zero, CSR.SATP, R.t0),
    0x12000073, // sfence.vma
    ...li(R.t0, BigInt(RAM_BASE + HANDLER)),
    I.csrrw(R.zero, CSR.STVEC, R.t0),
    ...li(R.t1, BigInt(SUM | FS)),
    I.csrrs(R.zero, CSR.SSTATUS, R.t1),
    ...li(R.t2, BigInt(USER_VA + 4096)),
    I.sd(R.t1, R.t2, 0),
    ...li(R.t1, BigInt(SUM)),
    I.csrrc(R.zero, CSR.SSTATUS, R.t1),
    ...li(R.t0, BigInt(USER_VA)),
    I.csrrw(R.zero, CSR.SEPC, R.t0),
    I.sret(),
  ]);
  place(ram, U_CODE, [
    ...li(R.t2, BigInt(USER_VA + 4096)),
    I.addi(R.s0, R.t2, 64),
    ...li(R.a0, 0x9abcdef01n),
    I.ld(R.a1, R.t2, 0),
    I.sd(R.a0, R.t2, 8),
    amo(2, 0x00, R.a2, R.t2, R.a0), // amoadd.w
    amo(3, 0x01, R.a3, R.t2, R.a0), // amoswap.d
    amo(3, 0x10, R.a3, R.t2, R.a1), // amomin.d
    amo(2, 0x1c, R.a3, R.t2, R.a0), // amomaxu.w
    amo(2, 0x04, R.a3, R.t2, R.a0), // amoxor.w
    amo(3, 0x02, R.a4, R.t2, R.zero), // lr.d
    amo(3, 0x03, R.a5, R.t2, R.a0), // sc.d
    I.csrrs(R.a6, 0xc01, R.zero), // rdtime
    I.csrrs(R.a6, 0x001, R.zero), // frflags
    CFLD_CNOP,
    ...li(R.t3, BigInt(USER_VA + 2 * 4096)),
    I.ld(R.a1, R.t3, 0), // unmapped: a load page fault, skipped by the handler
    I.ecall(),
  ]);
  // Handler: ecall from U ends the run (S-mode ecall); anything else resumes after the insn.
  place(ram, HANDLER, [
    I.csrrs(R.a7, CSR.SCAUSE, R.zero),
    I.addi(R.t5, R.zero, 8),
    I.beq(R.a7, R.t5, 20),
    I.csrrs(R.t6, CSR.SEPC, R.zero),
    I.addi(R.t6, R.t6, 4),
    I.csrrw(R.zero, CSR.SEPC, R.t6),
    I.sret(),
    I.ecall(),
  ]);
}
