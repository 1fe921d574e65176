/**
 * Type-feedback priming of the reference paths a boot reaches from the fast tier and from wasm
 * (the interpreter's `step`/`exec`, fetchPage, the page walk, the TLB fill, csrRead/csrWrite,
 * the AMOs, RVC expansion, decodeBlock, interrupts), once per process.
 *
 * Why: as with runFast (fast-warm.ts), V8 optimizes these with the feedback they have so far,
 * and a path first taken later deoptimizes them. A Linux boot takes most of those paths for the
 * first time when /init starts (the first user-mode fetch, walk, page fault, `ecall` from U,
 * SUM cleared, the first FP-off CSR read, AMO kinds the kernel never used): measured on a Linux
 * 6.1 boot with --trace-deopt, fetchPage, csrRead, csrWrite, amoFast, walk, fill, system,
 * writeSstatus, quadrant0/2, decodeBlock, storeSlow, checkTimer and updateIrq deoptimized 1-2
 * times each, and fetchPage, csrRead, csrWrite, amoFast, decodeBlock and storeSlow ended the boot
 * in baseline code.
 *
 * The run drives `step` one instruction at a time on a scratch hart of its own (Sv39 over a
 * small memslot, S and U mode, traps to a handler address) and has no effect on any guest; its
 * objects stay alive for the process (see fast-warm.ts `primed` for why). Encodings: RISC-V
 * unprivileged spec chapters 2 (RV32I formats), "A" and "C"; privileged spec §4.3 (Sv39 PTEs),
 * §4.1.1 (sstatus).
 */
import { C64, Core, SSTATUS } from "./core.js";
import { step } from "./interp.js";
import { decodeBlock } from "./block.js";
import { CSR } from "./csr.js";
import { amoFast } from "./amo.js";
import { bType, iType, rType, sType } from "./insn-encode.js";

const BASE = 0x80000000;
const PAGES = 16;
/** Pages of the scratch RAM (identity-mapped at BASE by the Sv39 tables). */
const P = { S_CODE: 0, U_CODE: 1, S_DATA: 2, ROOT: 3, L1: 4, L0: 5, U_DATA: 6, HOLE: 8 } as const;
/** Sv39 PTE bits (privileged spec §4.3.1). */
const PTE = { V: 1, R: 2, W: 4, X: 8, U: 16, A: 64, D: 128 } as const;
/** Where the megapage maps the RAM again (S only): VA 2 MiB above it. */
const ALIAS = BASE + 0x200000;
/** An address outside the memslot, mapped by a gigapage: loads and stores there stop (MMIO). */
const MMIO = 0x10000000;
/** satp.MODE = Sv39 (8) in the high word. */
const SV39_HI = (8 << 28) | 0;
/** Iterations of `warmup` (see there). */
const WARMUP = 12;
/** Where traps go (stvec): an `sret` back to whatever sepc says. */
const HANDLER = BASE + 2048;

/** csrrs rd, csr, rs1 (f3 2), csrrc (3), csrrw (1). */
const csr = (f3: number, num: number, rs1: number, rd: number): number =>
  iType(num, rs1, f3, rd, 0x73);

const T0 = 5;
const T1 = 6;
const T2 = 7;
const S0 = 8;
const S1 = 9;
const A0 = 10;
const A1 = 11;
const SP = 2;
const T3 = 28;
const T4 = 29;

const SRET = 0x10200073;
const ECALL = 0x00000073;
const SFENCE_ALL = 0x12000073;
/** AMO funct5 values (spec chapter "A", table of AMOs): every one, W and D. */
const AMO_F5 = [0x00, 0x01, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c];
/** RVC loads and stores through s0 (quadrant 0) and sp (quadrant 2), integer and FP. */
const RVC = [0x4008, 0x6008, 0xc008, 0xe008, 0x2000, 0xa000, 0x4502, 0x6502, 0xc02a, 0xe02a];
const RVC_SP = [0x2402, 0xa022];

/** The scratch hart and its RAM, kept for the life of the process. */
let primed: { core: Core; ram: Uint8Array } | null = null;

/** Writes the Sv39 tables: VA = PA over the RAM, a gigapage at 0 (MMIO), a hole at HOLE. */
function tables(dv: DataView): void {
  const pte = (table: number, idx: number, ppn: number, flags: number): void => {
    dv.setUint32(table * 4096 + idx * 8, ((ppn << 10) | flags) >>> 0, true);
    dv.setUint32(table * 4096 + idx * 8 + 4, ppn >>> 22, true);
  };
  const ppn0 = BASE / 4096;
  pte(P.ROOT, 0, 0, PTE.V | PTE.R | PTE.W | PTE.A | PTE.D); // gigapage over 0..1 GiB, S only
  pte(P.ROOT, 2, ppn0 + P.L1, PTE.V);
  pte(P.L1, 0, ppn0 + P.L0, PTE.V);
  pte(P.L1, 1, ppn0, PTE.V | PTE.R | PTE.W | PTE.X | PTE.A | PTE.D); // megapage: ALIAS

  const rx = PTE.V | PTE.R | PTE.X | PTE.A;
  const rw = PTE.V | PTE.R | PTE.W;
  pte(P.L0, P.S_CODE, ppn0 + P.S_CODE, rx);
  pte(P.L0, P.U_CODE, ppn0 + P.U_CODE, rx | PTE.U);
  pte(P.L0, P.S_DATA, ppn0 + P.S_DATA, rw | PTE.A | PTE.D);
  // Without A/D: the walk sets them (a store sets D).
  pte(P.L0, P.U_DATA, ppn0 + P.U_DATA, rw | PTE.U);
}

/**
 * Runs `insn` in `mode` through `step` (a trap goes to HANDLER, a stop is dropped). S-mode code
 * runs through the megapage alias once paging is on (as a kernel's text is mapped).
 */
function run(c: Core, dv: DataView, mode: 0 | 1, insn: number): void {
  const sBase = c.paging() ? ALIAS : BASE;
  const off = (mode === 0 ? P.U_CODE : P.S_CODE) * 4096 + 64;
  dv.setInt32(off, insn, true);
  if (mode === 0) {
    // Into U as a kernel gets there: sret with SPP clear (privileged spec §4.1.1).
    c.csr[C64.SEPC] = BASE + off;
    c.csr[C64.SEPC + 1] = 0;
    c.sstatus &= ~SSTATUS.SPP;
    c.pc = sBase + P.S_CODE * 4096 + 32;
    dv.setInt32(P.S_CODE * 4096 + 32, SRET, true);
    step(c);
  } else {
    c.pc = sBase + off;
  }
  step(c);
  if (c.trapped() && c.pc === HANDLER) step(c); // sret back (to U: sepc is the faulting pc)
  c.stop = null;
  c.exc = false;
  c.setMode(1);
}

/** The instructions both modes run on their data: loads, stores, AMOs, LR/SC, RVC. */
function dataOps(): number[] {
  const ops: number[] = [];
  for (let f3 = 0; f3 < 7; f3++) ops.push(iType(8 * (f3 & 3), T0, f3, A0, 0x03));
  for (let f3 = 0; f3 < 4; f3++) ops.push(sType(8 * f3, T3, T0, f3));
  for (const f3 of [2, 3]) {
    for (const f5 of AMO_F5) ops.push(rType(f5 << 2, T3, T0, f3, A0, 0x2f));
    ops.push(rType(0x08, 0, T0, f3, A0, 0x2f), rType(0x0c, T3, T0, f3, A0, 0x2f));
  }
  for (const h of [...RVC, ...RVC_SP]) ops.push(h | (0x0001 << 16)); // + c.nop
  ops.push(iType(0, T1, 3, A0, 0x03), sType(0, A0, T1, 3)); // the S data page
  ops.push(iType(0, T2, 3, A0, 0x03), sType(0, A0, T2, 3)); // the hole: page faults
  ops.push(iType(0, S1, 2, A0, 0x03), sType(0, A0, S1, 2)); // MMIO (U: a fault)
  ops.push(iType(0, S1, 3, A0, 0x03), sType(0, A0, S1, 3));
  return ops;
}

/** CSR accesses in either mode: FP on and off, counters allowed and not, S CSRs from U. */
function csrOps(): number[] {
  const ops: number[] = [];
  for (const num of [CSR.FFLAGS, CSR.FRM, CSR.FCSR, CSR.CYCLE, CSR.TIME, CSR.INSTRET]) {
    ops.push(csr(2, num, 0, A0));
  }
  for (const num of [
    CSR.SSTATUS,
    CSR.SIE,
    CSR.SIP,
    CSR.SSCRATCH,
    CSR.SEPC,
    CSR.STVEC,
    CSR.SCOUNTEREN,
    CSR.SENVCFG,
    CSR.STIMECMP,
  ]) {
    ops.push(csr(2, num, 0, A0), csr(2, num, A1, 0));
  }
  ops.push(csr(1, CSR.FCSR, 0, A0), ECALL, -1, 0x10500073); // ..., illegal, wfi
  return ops;
}

/**
 * The integer instructions `exec` runs when they reach it (a page-straddling instruction, an
 * instruction after a TLB miss in wasm): every opcode, with operands above 2^31.
 */
function aluOps(): number[] {
  const ops = [0x12345537, 0x00000517]; // lui a0; auipc a0
  for (let f3 = 0; f3 < 8; f3++) {
    const imm = f3 === 1 ? 3 : f3 === 5 ? 0x403 : -5;
    ops.push(iType(imm, T3, f3, A0, 0x13), rType(0, T1, T3, f3, A0, 0x33));
    ops.push(rType(1, T1, T3, f3, A0, 0x33), rType(1, T1, T3, f3, A0, 0x3b));
    if (f3 === 0 || f3 === 5) ops.push(rType(0x20, T1, T3, f3, A0, 0x33));
  }
  for (const f3 of [0, 1, 5]) ops.push(iType(f3 === 0 ? -5 : 3, T3, f3, A0, 0x1b));
  for (const f3 of [0, 1, 5]) ops.push(rType(0, T1, T3, f3, A0, 0x3b));
  ops.push(rType(0x20, T1, T3, 0, A0, 0x3b), rType(0x20, T1, T3, 5, A0, 0x3b));
  for (const f3 of [0, 1, 4, 5, 6, 7]) ops.push(br(T1, T3, f3), br(T3, T3, f3));
  ops.push(0x0080006f, iType(8, T1, 0, A0, 0x67), 0x0ff0000f, 0x0000100f); // jal, jalr, fences
  return ops;
}

/** `b<f3> rs1, rs2, 8`. */
const br = (rs2: number, rs1: number, f3: number): number => bType(8, rs2, rs1, f3);

/** Sets the registers the ops use: data addresses in each page kind, wide values. */
function regs(c: Core): void {
  const sData = (c.paging() ? ALIAS : BASE) + P.S_DATA * 4096;
  c.x.set([BASE + P.U_DATA * 4096 + 64, 0, sData, 0], 2 * T0);
  c.x.set([BASE + P.HOLE * 4096, 0], 2 * T2);
  c.x.set([BASE + P.U_DATA * 4096 + 256, 0, MMIO, 0], 2 * S0);
  c.x.set([BASE + P.U_DATA * 4096 + 512, 0], 2 * SP);
  c.x.set([0x9abcdef0 | 0, -7], 2 * T3);
  c.x.set([0, 0], 2 * A1);
}

/** Runs `ops` in `mode`, each from fresh registers. */
function runAll(c: Core, dv: DataView, mode: 0 | 1, ops: readonly number[]): void {
  for (const op of ops) {
    regs(c);
    run(c, dv, mode, op);
  }
}

/** Sets or clears sstatus bits `bits` through csrrs/csrrc, as a kernel does. */
function sstatusOp(c: Core, dv: DataView, set: boolean, bits: number): void {
  c.x.set([bits, 0], 2 * A1);
  run(c, dv, 1, csr(set ? 2 : 3, CSR.SSTATUS, A1, 0));
}

/**
 * Calls enough for V8 to give the small CSR paths (csrWrite, writeSstatus, writeSatp,
 * sumCleared) and the slow load and store paths a feedback vector: it allocates one only after a function ran a certain amount of
 * bytecode (Node 20's V8: --budget-for-feedback-vector-allocation), and paths run before that
 * record nothing (measured: after a single pass, csrWrite had no feedback vector at all).
 */
function warmup(c: Core, dv: DataView): void {
  for (let k = 0; k < WARMUP; k++) {
    regs(c);
    // MMIO: always the slow paths (a RAM access after the first hits the TLB).
    run(c, dv, 1, iType(0, S1, 3, A0, 0x03));
    run(c, dv, 1, sType(0, A0, S1, 3));
    c.x.set([k, 0], 2 * A0);
    run(c, dv, 1, csr(1, CSR.SSCRATCH, A0, 0));
    run(c, dv, 1, csr(1, CSR.SATP, 0, 0)); // Bare
    sstatusOp(c, dv, true, SSTATUS.SUM);
    sstatusOp(c, dv, false, SSTATUS.SUM);
  }
}

/**
 * One pass, each instruction once per state it meets in a boot: S mode bare and under Sv39
 * (SUM set, then clear), U mode with FP and counters on, then off.
 */
function pass(c: Core, dv: DataView): void {
  runAll(c, dv, 1, [...dataOps(), ...aluOps()]);
  c.x.set([BASE / 4096 + P.ROOT, SV39_HI], 2 * A0);
  run(c, dv, 1, csr(1, CSR.SATP, A0, 0));
  run(c, dv, 1, SFENCE_ALL);
  sstatusOp(c, dv, true, SSTATUS.SUM | SSTATUS.FS);
  c.sstc = true;
  runAll(c, dv, 1, [...dataOps(), ...csrOps()]);
  c.sstc = false;
  regs(c);
  fastAmos(c, T1);
  runAll(c, dv, 0, [...dataOps(), ...csrOps()]);
  regs(c);
  fastAmos(c, T0);
  sstatusOp(c, dv, false, SSTATUS.SUM | SSTATUS.FS);
  c.scounteren = 0;
  runAll(c, dv, 1, dataOps().slice(0, 4));
  runAll(c, dv, 0, csrOps());
  c.scounteren = 7;
}

/**
 * amoFast (the fast tier's AMOs and LR/SC on a TLB hit) for every kind and size at the address
 * in register `at` (a page the last stores entered into the write TLB), and once on a miss.
 */
function fastAmos(c: Core, at: number): void {
  for (const size of [0, 32]) {
    for (const f5 of [0x02, 0x03, ...AMO_F5]) amoFast(c, f5 + size, 2 * A0, 2 * at, 2 * T3);
    amoFast(c, size, 2 * A0, 2 * T2, 2 * T3);
  }
}

/**
 * The hart's callbacks (timeNow, onCodeWrite, onFenceI) called with two different functions
 * each, so that their call sites are megamorphic before a boot's own callbacks arrive: code
 * optimized while only one target was seen inlines it and deoptimizes at the next (measured:
 * csrRead at `c.timeNow()` and storeSlow at `c.onCodeWrite` once a boot's Engine ran).
 */
function callbacks(c: Core, dv: DataView): void {
  const slot = c.mem.slots[0];
  const code = P.S_DATA * 4096 + 1024;
  for (const k of [0, 1]) {
    c.timeNow = k === 0 ? () => 0n : () => BigInt(c.icount);
    c.onCodeWrite =
      k === 0
        ? (s) => {
            s.clearAllCode();
          }
        : (s, page) => {
            s.clearCode(page);
          };
    c.onFenceI =
      k === 0
        ? () => undefined
        : () => {
            c.flushTlb();
          };
    slot?.markCode(code, 4);
    c.flushTlb(); // as Engine.register does: stores to a code page take the slow path
    c.x.set([BASE + code, 0], 2 * T4);
    runAll(c, dv, 1, [csr(2, CSR.TIME, 0, A0), sType(0, 0, T4, 2), 0x0000100f]);
  }
}

/** Interrupts taken in S and U mode, from the timer and from sip. */
function interrupts(c: Core): void {
  c.sie = 0x222; // SSIE | STIE | SEIE
  for (const mode of [1, 0, 1, 0, 1, 0, 1, 0] as const) {
    c.setMode(mode);
    c.sstatus |= SSTATUS.SIE;
    c.sip = 0x20; // STIP
    c.updateIrq();
    if (c.irqReady) c.takeInterrupt();
    c.sip = 0;
    // Sstc: a due stimecmp (0 against time 0) raises STIP (core.ts checkTimer).
    c.sstc = true;
    c.csr[C64.STIMECMP] = 0;
    c.csr[C64.STIMECMP + 1] = 0;
    // A few calls first: V8 records feedback only once a function has its feedback vector.
    for (let k = 0; k < 10; k++) c.checkTimer();
    if (c.irqReady) c.takeInterrupt();
    c.sstc = false;
    c.sip = 0;
    c.updateIrq();
  }
  c.setMode(1);
}

/** Decodes the blocks a boot's decodeBlock meets: plain, SYSTEM first, straddling, empty. */
function blocks(c: Core): void {
  const slot = c.mem.slots[0];
  if (slot === undefined) return;
  for (const off of [0, 32, 64, 2048, 4092, 4094, 0, 32, 64]) {
    decodeBlock(BASE + off, BASE + off, slot);
  }
}

/** Runs the priming (once per process; later calls do nothing). */
export function primeReferencePaths(): void {
  if (primed !== null) return;
  const ram = new Uint8Array(PAGES * 4096);
  const dv = new DataView(ram.buffer);
  tables(dv);
  dv.setInt32(HANDLER - BASE, SRET, true);
  dv.setInt32(4092, 0x0000100f, true); // fence.i
  dv.setUint16(4094, 0x0013, true); // addi straddling the page end
  const c = new Core(0);
  c.mem.set([{ slot: 0, gpa: BASE, bytes: ram, readonly: false }]);
  primed = { core: c, ram };
  c.csr[C64.STVEC] = HANDLER;
  c.csr[C64.STVEC + 1] = 0;
  // Twice: V8 gives a function its feedback vector only after a few calls (Node 20's V8:
  // --invocation-count-for-feedback-allocation=8), and paths run before that leave none.
  warmup(c, dv);
  for (let round = 0; round < 2; round++) {
    c.x.set([0, 0], 2 * A0);
    run(c, dv, 1, csr(1, CSR.SATP, A0, 0)); // Bare again
    pass(c, dv);
    callbacks(c, dv);
    interrupts(c);
    blocks(c);
  }
}
