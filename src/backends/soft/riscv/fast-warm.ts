/**
 * Type-feedback priming of the fast interpreter (fast.ts), once per process.
 *
 * Why: V8 optimizes `runFast` with the type feedback its cases have gathered so far, and a case
 * first reached after that (a Linux boot meets new instruction kinds for hundreds of
 * milliseconds) deoptimizes the whole loop back to the bytecode interpreter until it is
 * recompiled (measured on a Linux 6.1 boot: runFast optimized 14 times). Running a short program
 * that takes every case once — with register values outside V8's small-integer range, as guest
 * registers and addresses are — lets the first optimized version cover them all.
 *
 * The program runs on a scratch hart state of its own (bare mode, one small memslot) and has
 * no effect on any guest. Encodings: RISC-V unprivileged spec, chapter 2 ("RV32I Base Integer
 * Instruction Set", instruction formats) and chapters "M" and "A".
 */
import { C64, Core, SSTATUS } from "./core.js";
import { runFast } from "./fast.js";
import { DecodeCache } from "./predecode.js";
import { bType as br, iType as i, jal, rType as r, sType as s } from "./insn-encode.js";

/** Heat counters of the priming run (a power of two, as the engine's). */
const HEAT_SIZE = 64;
/** Runs of the program (see primeFastTier). */
const ROUNDS = 8;
/**
 * Runs of the program in heatFastTier, with no state change in between: V8 marks a function for
 * optimization once it has run through its interrupt budget (--interrupt-budget, 66 KiB of
 * bytecode in Node 20's V8) 3 + bytecode length / 150 times with no inline-cache change in
 * between (--ticks-before-optimization, --bytecode-size-allowance-per-tick,
 * --reset-ticks-on-ic-update); runFast (6.7 KiB of bytecode) got marked after 6 of these
 * (measured with --trace-opt), 16 leave room for it to grow. Each costs ~0.2 ms.
 */
const SETTLE_ROUNDS = 16;

const BASE = 0x80000000;
const RAM = 16384;

/**
 * Where the data the program loads and stores lives: page 3, which holds no code (stores to a
 * code page never enter the write TLB, and the store fast path must run too).
 */
const DATA = BASE + 3 * 4096 + 256;
/** In page 1: a jump to the page's last halfword, where a 2-byte nop runs into page 2. */
const TRAMPOLINE = 4104;
/** An address outside the memslot: loads and stores there stop with an MMIO exit. */
const MMIO = 0x10000000;
/**
 * In page 1: the trap handler (stvec), which resumes 4 bytes after the trapping instruction,
 * and `jalr x0, 0(t5)`, run alone with t5 above the 2^53 range the loop's offsets cover.
 */
const HANDLER = 4608;
const FAR_JALR = 5120;
/** A memslot smaller than a page: the decode cache cannot hold its page (reference `step`). */
const SMALL = 0x90000000;

/**
 * Registers: t0 = data (upper word 0), t1/t2 = wide values, t3/t4 = shift amounts, s0 = data
 * (for RVC), s1 = MMIO address, s2/s3 = wide values with equal upper words, a0.. results.
 */
const T0 = 5;
const T1 = 6;
const T2 = 7;
const T3 = 28;
const T4 = 29;
const A0 = 10;
const S0 = 8;
const S1 = 9;
const S2 = 18;
const S3 = 19;
const T5 = 30;
const T6 = 31;

/** The program: every case of runFast once (taken and not-taken branches both). */
function program(): number[] {
  // To page 1 and back through page 2 first (jumps across pages, a run off a page's end).
  const p: number[] = [jal(TRAMPOLINE, 0), 0x800005b7, 0x00000617]; // lui a1, 0x80000; auipc a2, 0
  for (const [f3, imm] of [
    [0, -2048],
    [2, 5],
    [3, -1],
    [4, 0x7ff],
    [6, -16],
    [7, 0x5a5],
  ] as const) {
    p.push(i(imm, T1, f3, A0, 0x13), i(imm, T0, f3, A0, 0x13));
  }
  for (const sh of [0, 5, 40]) {
    p.push(i(sh, T1, 1, A0, 0x13), i(sh, T2, 5, A0, 0x13), i(0x400 | sh, T2, 5, A0, 0x13));
  }
  p.push(i(-7, T1, 0, A0, 0x1b), i(3, T1, 1, A0, 0x1b), i(3, T2, 5, A0, 0x1b));
  p.push(i(0x403, T2, 5, A0, 0x1b));
  for (const [f7, f3] of [
    [0, 0],
    [0x20, 0],
    [0, 2],
    [0, 3],
    [0, 4],
    [0, 6],
    [0, 7],
  ] as const) {
    p.push(r(f7, T2, T1, f3, A0, 0x33), r(f7, T1, T1, f3, A0, 0x33));
  }
  for (const sh of [0, T3, T4]) {
    p.push(r(0, sh, T1, 1, A0, 0x33), r(0, sh, T2, 5, A0, 0x33), r(0x20, sh, T2, 5, A0, 0x33));
    p.push(r(0, sh, T1, 1, A0, 0x3b), r(0, sh, T2, 5, A0, 0x3b), r(0x20, sh, T2, 5, A0, 0x3b));
  }
  p.push(r(0, T2, T1, 0, A0, 0x3b), r(0x20, T2, T1, 0, A0, 0x3b));
  for (let f3 = 0; f3 < 8; f3++) p.push(r(1, T2, T1, f3, A0, 0x33));
  for (const f3 of [0, 4, 5, 6, 7]) p.push(r(1, T2, T1, f3, A0, 0x3b));
  for (let f3 = 0; f3 < 4; f3++) p.push(s(8 * f3, T1, T0, f3));
  for (let f3 = 0; f3 < 7; f3++) p.push(i(8 * (f3 & 3), T0, f3, A0, 0x03));
  p.push(i(0, T0, 3, 0, 0x03)); // ld x0: a load whose value is dropped
  p.push(i(0, S1, 2, A0, 0x03), s(0, T1, S1, 2)); // MMIO load and store: stops
  p.push(0x0000a000 | (0x0001 << 16)); // c.fsd f8, 0(s0); c.nop (RVC raw bits in EXEC)
  p.push(r(0, T1, T0, 2, A0, 0x2f)); // amoadd.w a0, t1, (t0)
  // lr.w a0, (t0); sc.w a0, t1, (t0): the reservation address becomes a guest-physical one
  // (above 2^31, a double), as the first LR of a boot makes it.
  p.push(r(0x08, 0, T0, 2, A0, 0x2f), r(0x0c, T1, T0, 2, A0, 0x2f));
  // The doubleword forms: lr.d, sc.d, amoadd.d, amomaxu.d (amo.ts on int32 halves).
  p.push(r(0x08, 0, T0, 3, A0, 0x2f), r(0x0c, T1, T0, 3, A0, 0x2f));
  p.push(r(0, T1, T0, 3, A0, 0x2f), r(0x70, T1, T0, 3, A0, 0x2f));
  p.push(0x0ff0000f); // fence
  // fence.i: the running page must be re-checked, so the run ends after it (EXEC_END).
  p.push(0x0000100f);
  // sltiu whose upper words are equal, so the low words decide.
  p.push(i(0x7ff, T0, 3, A0, 0x13));
  // Rewrites its own page with the bytes already there (ld/sd, then fld/fsd through exec):
  // the running page is dropped, and the run ends after the store (self-modifying code).
  // a2 = the auipc's own address: decoded (marked as code) in the page that runs now.
  p.push(0x00000617, i(0, 12, 3, 13, 0x03), s(0, 13, 12, 3));
  p.push(0x00000617, i(0, 12, 3, 8, 0x07), s(0, 8, 12, 3) | 0x04);
  // Traps taken to the handler: an illegal instruction (exec) and c.ebreak; c.nop (EXEC_END).
  p.push(-1, 0x9002 | (0x0001 << 16));
  for (const f3 of [0, 1, 4, 5, 6, 7]) {
    p.push(br(8, T2, T1, f3), br(8, T1, T2, f3), 0x00000013);
    // Equal upper words: the low words decide (unsigned, above 2^31).
    p.push(br(8, S3, S2, f3), br(8, S2, S3, f3), 0x00000013);
  }
  p.push(br(8, T1, T1, 0), 0x00000013, br(8, T1, T1, 1));
  p.push(jal(8, 1), 0x00000013, jal(4, 0));
  p.push(0x00000717, i(12, 14, 0, 1, 0x67), 0x00000013, 0x00000717, i(12, 14, 0, 0, 0x67));
  p.push(0x00000013, 0x140027f3); // csrrs a5, sscratch, zero
  // Jump to the page's last halfword: a 4-byte instruction straddling into page 1, then ecall.
  p.push(jal(4094 - 4 * p.length, 0));
  return p;
}

/**
 * The priming run's hart state, kept for the life of the process (one scratch Core, its decode
 * cache and a few decoded pages). V8 holds maps only weakly from the transitions that lead to
 * them and from type feedback: once the primed objects died (primed before the VMM's modules
 * loaded, with GCs in between), a boot's Core and DecodedPage objects got fresh maps, the
 * feedback that named the old ones was cleared, and runFast deoptimized in the boot anyway
 * (measured on a Linux 6.1 boot with --trace-deopt: 3 deopts, e.g. an eager one at
 * `ops = q.op` for want of feedback and a lazy one when the first `DecodedPage.valid` write made
 * the fresh map's field mutable), each costing a recompile of ~100-200 ms of TurboFan.
 */
let primed: { core: Core; cache: DecodeCache; heat: Uint16Array } | null = null;

/** Runs the priming program through `runFast` (once per process; later calls do nothing). */
export function primeFastTier(): void {
  if (primed !== null) return;
  const ram = new Uint8Array(RAM);
  const dv = new DataView(ram.buffer);
  program().forEach((insn, k) => {
    dv.setInt32(4 * k, insn, true);
  });
  dv.setUint16(4094, 0x0013, true); // addi x0, x0, 0 across the page end
  dv.setUint16(4096, 0x0000, true);
  dv.setInt32(4098, 0x00000073, true); // ecall: the end
  dv.setInt32(TRAMPOLINE, jal(8190 - TRAMPOLINE, 0), true);
  dv.setUint16(8190, 0x0001, true); // c.nop, the last halfword of page 1
  dv.setInt32(8192, jal(4 - 8192, 0), true); // back to the program's second instruction
  // csrr t6, sepc; addi t6, t6, 4; csrw sepc, t6; sret
  [0x14102ff3, i(4, T6, 0, T6, 0x13), 0x141f9073, 0x10200073].forEach((insn, k) => {
    dv.setInt32(HANDLER + 4 * k, insn, true);
  });
  dv.setInt32(FAR_JALR, i(0, T5, 0, 0, 0x67), true);
  const c = new Core(0);
  const small = new Uint8Array(2048);
  small.set([0x13, 0, 0, 0]); // nop
  c.mem.set([
    { slot: 0, gpa: BASE, bytes: ram, readonly: false },
    { slot: 1, gpa: SMALL, bytes: small, readonly: false },
  ]);
  const dc = new DecodeCache(c);
  const heat = new Uint16Array(HEAT_SIZE);
  primed = { core: c, cache: dc, heat };
  // As the engine does (Engine.invalidatePage, Engine.syncCode), without the blocks.
  c.onCodeWrite = (slot, page) => {
    dc.drop((slot.gpa + page * 4096) / 4096);
    slot.clearCode(page);
  };
  c.onFenceI = () => {
    dc.sync();
  };
  c.csr[C64.STVEC] = BASE + HANDLER;
  c.csr[C64.STVEC + 1] = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // Odd rounds go on at every jump target (never hot), even ones return there (hot at 3
    // visits); rounds 4 and 5 end runs on a tiny budget (the slice end, after a jump too).
    runProgram(c, dc, heat, round % 2 === 1 ? 0xffff : 3, round === 4 || round === 5 ? 5 : 1000);
    rare(c, dc, heat);
    churn(c, dc, round);
  }
}

/** Whether heatFastTier ran. */
let heated = false;

/**
 * Runs the priming program again, with no state change between the runs, until V8 marks
 * runFast for optimization (once per process, after primeFastTier; later calls do nothing).
 *
 * Why: V8 then compiles runFast with TurboFan on a background thread (30-60 ms measured with
 * --trace-opt), so a caller that heats it before loading and building the machine has it
 * compiled by the guest's first instruction; otherwise it is marked in the guest's first slice,
 * which ran ~0.3 M instructions of a Linux boot in baseline code (~130 ns each) meanwhile. The
 * compiled code depends on the fields it reads keeping their representation and constness: a
 * first write to such a field after this throws it away (measured: the VM's first
 * `setMemslots`, with guest RAM in a wasm memory, moves the register file and writes `Core.x`;
 * "code dependencies" with --trace-deopt-verbose), so every such write must come first
 * (src/backends/soft/riscv/hart.ts `primeSetup`).
 */
export function heatFastTier(): void {
  if (primed === null || heated) return;
  heated = true;
  const { core: c, cache: dc, heat } = primed;
  for (let round = 0; round < SETTLE_ROUNDS; round++) {
    runProgram(c, dc, heat, round % 2 === 1 ? 0xffff : 3, 1000);
  }
}

/** One run of the program from its start to its final ecall, in runFast calls of `budget`. */
function runProgram(
  c: Core,
  dc: DecodeCache,
  heat: Uint16Array,
  hot: number,
  budget: number,
): void {
  c.pc = BASE;
  c.x.set([DATA, 0, 0x9abcdef0 | 0, 0x12345678, -0x7654321, -2], 2 * T0);
  c.x.set([5, 0, 40, 0], 2 * T3);
  c.x.set([DATA, 0, MMIO, 0], 2 * S0);
  c.x.set([0x9abcdef0 | 0, 7, 0x8bcdef01 | 0, 7], 2 * S2);
  c.sstatus |= SSTATUS.FS;
  for (let guard = 0; guard < 1000 && c.stop?.kind !== "ecall"; guard++) {
    // An MMIO access stopped with pc on it: go on after it.
    if (c.stop !== null) c.pc += 4;
    c.stop = null;
    c.exc = false;
    runFast(c, dc, budget, heat, hot);
  }
  c.stop = null;
  c.exc = false;
}

/**
 * The runs a guest makes rarely but a boot does make (a page-sized memslot's end, a misaligned
 * or far jump target), each one call: a path TurboFan compiled without feedback deoptimizes
 * runFast the first time it is taken.
 */
function rare(c: Core, dc: DecodeCache, heat: Uint16Array): void {
  c.pc = SMALL;
  runFast(c, dc, 1000, heat, 3);
  c.pc = BASE + 1; // misaligned: the reference step raises the fault (to the handler)
  runFast(c, dc, 1000, heat, 3);
  c.pc = BASE + FAR_JALR;
  c.x.set([0, 0x400000], 2 * T5);
  runFast(c, dc, 1000, heat, 3);
  runFast(c, dc, 1000, heat, 3); // the fetch there faults
  c.stop = null;
  c.exc = false;
}

/**
 * Between rounds, the state changes a boot makes later (fence.i re-checks, a dropped page, a
 * new map, a mode change): V8 treats a field no code has written since construction as a
 * constant and deoptimizes every function that relied on it at the first write (measured on a
 * Linux 6.1 boot: runFast and pageFor deoptimized 3 times, ~100-190 ms of TurboFan each time
 * while the loop ran unoptimized), so the writes must come before the loop is optimized.
 */
function churn(c: Core, dc: DecodeCache, round: number): void {
  if (round === 0) dc.sync();
  else if (round === 1) dc.clear();
  else if (round === 2) c.mapChanged();
  c.mode = 0;
  c.mode = 1;
}
