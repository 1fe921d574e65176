/**
 * The WebAssembly tier: compiles a region (the blocks engine.ts gathers, as for the JS
 * translator) into one wasm function `run(entry) -> status` that the hart's wasm dispatcher
 * (wasm-dispatch.ts) calls through its table, so region-to-region control stays in wasm.
 *
 * - All state is in the hart's wasm memory (wasm-memory.ts) at constant addresses: the region
 *   loads the x-registers it uses into i64 locals at entry and stores them at its one exit.
 * - RV64I/M integer instructions, branches and jumps are native wasm; div/rem carry the
 *   RISC-V results for a zero divisor and overflow inline (wasm would trap).
 * - Loads and stores: the soft TLB's wasm mirror inline (tag compare, then a wasm load or
 *   store at address + addend). On a miss the region leaves with SLOW naming the access
 *   (`SlowExits`: its pc; nothing of it done), and the engine sets pc there and runs that one
 *   instruction in the interpreter (access.ts:
 *   page walk and refill, MMIO exit, misalignment, code invalidation). The miss path thus never
 *   joins the hit path again: with a call to JS there and a merge after it, TurboFan kept guest
 *   registers in stack slots across every loop that loads or stores (its register allocator spills
 *   values live across a call, also on the hot path), about half the moves of a loop body. A hart
 *   whose RAM is outside the wasm memory misses on every access, so its regions call one JS
 *   import instead (`inlineMiss`) and continue. Write entries never exist for code pages or
 *   unlogged dirty-tracked pages (tlb.ts, access.ts), so a hit needs no other check. Every other instruction (FP, AMO, mulh*, fence.i) goes to
 *   the interpreter's `exec` after the locals are written back, and they are reloaded after.
 * - Precise exceptions: a helper that traps or stops leaves pc and the trap CSRs as the
 *   interpreter would; the region writes back what retired instructions wrote, charges them to
 *   the budget word and returns EXC. A store (or fence.i) that invalidated code ends the
 *   region right after it with DIRTY and the next pc in the PC word.
 * - Control inside the region is a `br_table` over its blocks; a back edge continues only
 *   while the budget word allows another block, so the run loop sees interrupts, the timer
 *   and the watched word at the same points as with the JS tier.
 */
import type { Block } from "./block.js";
import type { Core } from "./core.js";
import { fetch, loadSlow, storeSlow } from "./access.js";
import { exec } from "./interp.js";
import { expandRvc } from "./rvc.js";
import { TWO32 } from "./i64.js";
import { bImm, iImm, jImm } from "./codegen.js";
import { MMIO_TAG } from "./access.js";
import { FnBuilder, OP, T, encodeModule, type FnType } from "./wasm-encode.js";
import { instantiate } from "./wasm-api.js";
import { EMPTY_VIEW, TLB_SIZE } from "./tlb.js";
import { AREA } from "./wasm-memory.js";

/** Default blocks per wasm region (the prototype measured 16 best: 1438 vs 1093 MIPS at 1). */
export const WASM_REGION_BLOCKS = 16;

/**
 * Most instructions per wasm region (the JS tier's REGION_MAX_INSNS is 600). V8 tiers a hot
 * region up to TurboFan on a background thread, and that compile grows faster than the region:
 * 14-22 KB bodies took 100-170 ms each, 500 ms over a Linux boot (--trace-wasm-compilation-times)
 * on a 2-core host the boot shares with it. Measured at 150 (loaded host, alternating runs):
 * TurboFan 137 ms per boot, boot to /init 2.27 s against 2.99 s at 600 (medians of 5), compute.elf
 * no slower (1030-1160 against 750-1000 CPU MIPS); 80 was slower on compute.elf.
 */
export const WASM_REGION_MAX_INSNS = 150;

/**
 * Helper and region results: the instruction completed (region: left with the next pc in the
 * PC word), trapped/stopped (pc set by the JS side), rewrote code (next pc in the PC word), or
 * (region only) a load or store missed the TLB mirror: the PC word holds its pc, the engine
 * runs it.
 */
export const ST = { OK: 0, EXC: 1, DIRTY: 2, SLOW: 3 } as const;

/**
 * The TLB-miss exits of a hart's regions (`WasmGen.exitSlow`): for exit id i, the pc of the
 * access (a signed double, as Block.pc) and the instructions of its block retired before it.
 * Ids are hart-wide, so a region's status names its exit without the engine knowing which
 * region returned; the table empties with the dispatch table (WasmDispatch.reset).
 */
export class SlowExits {
  readonly pc: number[] = [];
  readonly done: number[] = [];

  /** Forgets every exit (no region that names one is left). */
  clear(): void {
    this.pc.length = 0;
    this.done.length = 0;
  }
}

/** Exit ids at or above this leave the old way (pc in the PC word): the status is an int32. */
const SLOW_EXITS_MAX = 1 << 28;

/** The status of SlowExits entry `id`: SLOW in the low two bits, id + 1 above (plain SLOW: none). */
export function slowStatus(id: number): number {
  return ST.SLOW | ((id + 1) << 2);
}

/** The SlowExits id a region's status names, or -1 (not SLOW, or SLOW with pc in the PC word). */
export function slowExitOf(status: number): number {
  return (status & 3) === ST.SLOW ? (status >>> 2) - 1 : -1;
}

/** The region function's type (index 0 in every module of the tier). */
export const REGION_TYPE: FnType = [[T.i32], [T.i32]];

const TYPES: readonly FnType[] = [
  REGION_TYPE, // 0: run(entry) -> status
  [[T.i32, T.i32, T.i32], [T.i32]], // 1: ld(lo, hi, site) -> status
  [[T.i32, T.i32, T.i32, T.i32, T.i32], [T.i32]], // 2: st(lo, hi, vlo, vhi, site) -> status
  [[T.i32], [T.i32]], // 3: ex(site) -> status
];
const IMPORT_LD = { name: "ld", type: 1 } as const;
const IMPORT_ST = { name: "st", type: 2 } as const;
const IMPORT_EX = { name: "ex", type: 3 } as const;
/**
 * What a region imports: the load/store miss helpers only when misses stay in the region
 * (`inlineMiss`), `ex` only when some instruction goes to the interpreter. Every imported
 * function costs V8 a wrapper compile per module: with all three, compiling a small region
 * took 0.29 ms against 0.09 ms with none (Node 20, one module per region).
 */
const IMPORTS_MISS = [IMPORT_LD, IMPORT_ST, IMPORT_EX] as const;
const IMPORTS_EX = [IMPORT_EX] as const;
/** Function indices of the helpers under IMPORTS_MISS (`ex` is 0 under IMPORTS_EX). */
const F = { ld: 0, st: 1, ex: 2 } as const;

/** One helper call site: what the JS side needs to run the instruction there. */
interface Site {
  readonly insn: number;
  readonly raw: number;
  readonly pc: number;
  readonly len: number;
}

/** True if the wasm tier emits `insn` natively (anything else goes to `exec`). */
export function nativeInsn(insn: number): boolean {
  const op = insn & 0x7f;
  const f3 = (insn >>> 12) & 7;
  const f7 = insn >>> 25;
  switch (op) {
    case 0x37:
    case 0x17:
    case 0x6f:
      return true;
    case 0x67:
      return f3 === 0;
    case 0x63:
      return f3 !== 2 && f3 !== 3;
    case 0x03:
      return f3 !== 7;
    case 0x23:
      return f3 <= 3;
    case 0x13:
      if (f3 === 1) return insn >>> 26 === 0;
      if (f3 === 5) return insn >>> 26 === 0 || insn >>> 26 === 0x10;
      return true;
    case 0x1b:
      if (f3 === 0) return true;
      if (f3 === 1) return f7 === 0;
      return f3 === 5 && (f7 === 0 || f7 === 0x20);
    case 0x33:
      if (f7 === 0) return true;
      if (f7 === 1) return f3 === 0 || f3 >= 4;
      return f7 === 0x20 && (f3 === 0 || f3 === 5);
    case 0x3b:
      if (f7 === 1) return f3 === 0 || f3 >= 4;
      if (f7 === 0) return f3 === 0 || f3 === 1 || f3 === 5;
      return f7 === 0x20 && (f3 === 0 || f3 === 5);
    case 0x0f:
      return f3 === 0;
    default:
      return false;
  }
}

/** Loads by funct3 (LB, LH, LW, LD, LBU, LHU, LWU). */
const LOAD_OPS = [
  OP.i64Load8S,
  OP.i64Load16S,
  OP.i64Load32S,
  OP.i64Load,
  OP.i64Load8U,
  OP.i64Load16U,
  OP.i64Load32U,
];
/** Stores by funct3 (SB, SH, SW, SD). */
const STORE_OPS = [OP.i64Store8, OP.i64Store16, OP.i64Store32, OP.i64Store];

/** Code generator for one region of the hart whose area starts at `base`. */
class WasmGen {
  readonly f = new FnBuilder(1);
  readonly sites: Site[] = [];
  private readonly index: ReadonlyMap<number, number>;
  private readonly reg: number[] = new Array<number>(32).fill(-1);
  /** Registers some instruction of the region writes (from the first pass on). */
  private readonly written: boolean[];
  private readonly base: number;
  /**
   * Budget left (i32): the budget word minus the longest block, minus the instructions retired
   * so far; a block may start while it is >= 0. Counting down against 0 rather than comparing
   * a count with a limit saves a register (the limit was kept in a stack slot) and an
   * instruction per back edge.
   */
  private readonly rem: number;
  /** Instructions in the region's longest block. */
  private maxN = 0;
  private readonly a: number;
  private readonly b: number;
  private readonly w: number;
  private readonly v: number;
  private readonly t: number;
  private readonly st: number;
  /** Index of the block being emitted. */
  private cur = 0;
  /** pcs of the region's blocks that follow one of its calls (in-region `jalr` targets). */
  private readonly returnSites: readonly number[];
  /** A TLB miss calls the JS slow path and continues (RAM outside the wasm memory). */
  private readonly inlineMiss: boolean;
  /** Function index of the `ex` helper (see IMPORTS_MISS). */
  private readonly fEx: number;
  /**
   * The last access on the block's straight-line path (see `access`): its base register (-1:
   * none), rs1 + `recOff` was its address, `recWrite` if it hit the write TLB; its address's low
   * word and its wasm address are in locals `recW` and `recH`.
   */
  private recReg = -1;
  private recOff = 0;
  private recWrite = false;
  private readonly recW: number;
  private readonly recH: number;

  /** Where the region's TLB-miss exits go (see `exitSlow`). */
  private readonly slow: SlowExits;

  constructor(
    blocks: readonly Block[],
    base: number,
    inlineMiss: boolean,
    slow: SlowExits,
    written: readonly boolean[] = [],
  ) {
    this.inlineMiss = inlineMiss;
    this.slow = slow;
    this.fEx = inlineMiss ? F.ex : 0;
    this.written = [...written];
    this.index = new Map(blocks.map((blk, i) => [blk.pc, i]));
    this.returnSites = returnSites(blocks, this.index);
    this.base = base;
    const f = this.f;
    this.rem = f.local(T.i32);
    this.a = f.local(T.i64);
    this.b = f.local(T.i64);
    this.w = f.local(T.i32);
    this.v = f.local(T.i32);
    this.t = f.local(T.i32);
    this.st = f.local(T.i32);
    this.recW = f.local(T.i32);
    this.recH = f.local(T.i32);
  }

  /** Memory access `opcode` at constant area offset `off` (address operand 0 pushed here). */
  private at(opcode: number, align: number, off: number): void {
    this.f.mem(opcode, align, this.base + off);
  }

  /** Stores the i64 constant `pc` into the PC word. */
  private setPc(pc: number): void {
    this.f.i32(0).i64n(pc);
    this.at(OP.i64Store, 3, AREA.PC);
  }

  private local(r: number): number {
    let l = this.reg[r] ?? -1;
    if (l < 0) {
      l = this.f.local(T.i64);
      this.reg[r] = l;
    }
    return l;
  }

  /** Pushes x[r] (i64). */
  get(r: number): void {
    if (r === 0) this.f.i64n(0);
    else this.f.idx(OP.localGet, this.local(r));
  }

  /** Pops an i64 into x[r] (x0 discards it). */
  set(r: number): void {
    if (r === 0) this.f.op(OP.drop);
    else {
      this.f.idx(OP.localSet, this.local(r));
      this.written[r] = true;
    }
  }

  /** The registers the code emitted so far writes. */
  writes(): boolean[] {
    return this.written;
  }

  /** The registers the code emitted so far touches. */
  used(): number[] {
    const out: number[] = [];
    this.reg.forEach((l, r) => {
      if (l >= 0) out.push(r);
    });
    return out;
  }

  /**
   * Opens the function: declares the locals of `regs` (found by a first pass), loads them, sets
   * the budget limit and opens the dispatch structure (after it, block i's code follows the
   * i-th `end`).
   */
  prologue(regs: readonly number[], blocks: readonly Block[]): void {
    const f = this.f;
    for (const r of regs) this.local(r);
    this.reload();
    this.maxN = Math.max(...blocks.map((b) => b.n));
    f.i32(0);
    this.at(OP.i32Load, 2, AREA.BUDGET);
    f.i32(this.maxN).op(OP.i32Sub).idx(OP.localSet, this.rem);
    f.open(OP.block, "exit").open(OP.loop, "disp");
    const labels = blocks.map((_, i) => `b${i}`);
    for (let i = blocks.length - 1; i >= 0; i--) f.open(OP.block, labels[i] ?? "");
    f.open(OP.block, "bad").idx(OP.localGet, 0).brTable(labels, "bad").end();
    this.setPc(blocks[0]?.pc ?? 0);
    f.br("exit");
  }

  /** Closes the dispatch structure, writes the registers back, charges the budget, returns. */
  epilogue(): void {
    const f = this.f;
    f.end().end();
    this.writeBack();
    f.i32(0).idx(OP.localGet, this.rem).i32(this.maxN).op(OP.i32Add);
    this.at(OP.i32Store, 2, AREA.BUDGET);
    f.idx(OP.localGet, this.st);
  }

  /** Loads every register local from the register file. */
  reload(): void {
    this.reg.forEach((l, r) => {
      if (l < 0) return;
      this.f.i32(0);
      this.at(OP.i64Load, 3, AREA.X + 8 * r);
      this.f.idx(OP.localSet, l);
    });
  }

  /** Stores every register local back (a local only differs from memory once written). */
  writeBack(): void {
    this.reg.forEach((l, r) => {
      // Only written locals can differ from memory: a region returns every few hundred
      // instructions on compute.elf, and storing all ~25 locals each time was measurable.
      if (l < 0 || this.written[r] !== true) return;
      this.f.i32(0).idx(OP.localGet, l);
      this.at(OP.i64Store, 3, AREA.X + 8 * r);
    });
  }

  private addDone(k: number): void {
    if (k !== 0) this.f.idx(OP.localGet, this.rem).i32(k).op(OP.i32Sub).idx(OP.localSet, this.rem);
  }

  /** Leaves with k more instructions retired and pc already set by a helper (trap or stop). */
  private exitTrapped(k: number): void {
    this.addDone(k);
    this.f.i32(ST.EXC).idx(OP.localSet, this.st).br("exit");
  }

  /**
   * Control goes to static `target` after k more instructions of this block retired. Every
   * block ends in one or two of these (a Linux boot compiles ~1000), so the in-region case is
   * kept short: the charge tees `rem` for the budget test, and a branch needing no block index
   * is a `br_if` (5 bytes less than `if`, `br`, `end` after a `local.set`).
   */
  private goto(target: number, k: number): void {
    const f = this.f;
    const j = this.index.get(target);
    if (j === undefined) this.addDone(k);
    else {
      f.idx(OP.localGet, this.rem);
      if (k !== 0) f.i32(k).op(OP.i32Sub).idx(OP.localTee, this.rem);
      f.i32(0).op(OP.i32GeS);
      // A block looping on itself branches straight to its own start: through `disp` every
      // loop would merge all the region's register values at one header (measured slower).
      if (j === this.cur) f.br("self", true);
      // A later block's label is still open around this one: its code follows that label's
      // `end`, so a forward branch goes straight there (no trip through the br_table).
      else if (j > this.cur) f.br(`b${j}`, true);
      else f.open(OP.if).i32(j).idx(OP.localSet, 0).br("disp").end();
    }
    this.setPc(target);
    f.br("exit");
  }

  private site(insn: number, raw: number, pc: number, len: number): number {
    this.sites.push({ insn, raw, pc, len });
    return this.sites.length - 1;
  }

  /** Handles a helper status on the stack: trap → exit; rewritten code → exit after it. */
  private status(k: number, next: number): void {
    const f = this.f;
    f.idx(OP.localTee, this.st).open(OP.if);
    f.idx(OP.localGet, this.st).i32(ST.EXC).op(OP.i32Eq).open(OP.if);
    this.exitTrapped(k);
    f.end();
    this.addDone(k + 1);
    this.setPc(next);
    f.br("exit");
    f.end();
  }

  /**
   * Leaves with SLOW before the access at `pc`, k instructions of this block retired. The exit's
   * pc and k go to the hart's SlowExits table and the status carries the entry's id (`slowStatus`):
   * the engine sets pc and charges k from there. Storing the pc (an i64 constant and a store) and
   * charging k in wasm was ~20 of the ~95 bytes of every load and store (a Linux boot compiles
   * ~1300 of them), bytes that V8 validates and Liftoff compiles for a path taken ~4 K times per
   * boot in all.
   */
  private exitSlow(pc: number, k: number): void {
    const exits = this.slow;
    const id = exits.pc.length;
    if (id >= SLOW_EXITS_MAX) {
      this.addDone(k);
      this.setPc(pc);
      this.f.i32(ST.SLOW).idx(OP.localSet, this.st).br("exit");
      return;
    }
    exits.pc.push(pc);
    exits.done.push(k);
    this.f.i32(slowStatus(id)).idx(OP.localSet, this.st).br("exit");
  }

  /** Pushes rs1 + imm (i64) into local `a`. */
  private addr(insn: number, imm: number): void {
    this.get((insn >>> 15) & 31);
    this.f.i64n(imm).op(OP.i64Add).idx(OP.localSet, this.a);
  }

  /** Pushes the high word of address local `a`. */
  private pushAddrHi(): void {
    this.f.idx(OP.localGet, this.a).i64n(32).op(OP.i64ShrU, OP.i32WrapI64);
  }

  /**
   * Pushes "the TLB mirror at `tags` maps address `a` for an aligned access of `size`": sets
   * local `wl` (default `w`) = the address's low word and `t` = 8 × the entry's index (its tag's
   * byte offset).
   */
  private tlbHit(tags: number, size: number, wl = this.w): void {
    const f = this.f;
    f.idx(OP.localGet, this.a).op(OP.i32WrapI64).idx(OP.localTee, wl);
    f.i32(12 - 3)
      .op(OP.i32ShrU)
      .i32((TLB_SIZE - 1) << 3)
      .op(OP.i32And)
      .idx(OP.localTee, this.t);
    this.at(OP.i64Load, 3, tags);
    // The tag trick (tlb.ts) on the whole address: low bits of a misaligned one never match.
    f.idx(OP.localGet, this.a)
      .i64n(-4096 | (size - 1))
      .op(OP.i64And, OP.i64Eq);
  }

  /** Pushes the wasm address of the access (local `wl` + the entry's addend in array `add`). */
  private hostAddr(add: number, wl = this.w): void {
    this.f.idx(OP.localGet, wl).idx(OP.localGet, this.t).i32(1).op(OP.i32ShrU);
    this.at(OP.i32Load, 2, add);
    this.f.op(OP.i32Add);
  }

  /**
   * Pushes the wasm address of the `size`-byte access at rs1 + `imm` and keeps it in `recH` (and
   * the guest address's low word in `recW`), or leaves the region with SLOW at `pc` (k
   * instructions retired). The address stays on the stack for the access rather than going
   * through a local, and the probe writes `recW` directly: 6 of a load's or store's bytes.
   *
   * The TLB probe is ~10 x86 instructions per access, about a third of compute.elf's time. When
   * the block's previous access used the same base register, unchanged since (or moved by an
   * `addi` on itself), the new address is the old one plus a constant `d`: if the old page offset
   * plus `d` stays in the page and keeps the access aligned, it is the same page, and the old
   * wasm address plus `d` is the new one. A write hit also proves the page readable (no TLB
   * entry ever exists for a W-without-R mapping, which is reserved: privileged spec §4.3.1);
   * a read hit proves nothing for a write, so a store after a load probes. Nothing between
   * the two accesses can change the TLB: any instruction that could (or any helper call)
   * forgets the record, and the region runs no JS in between.
   */
  private access(
    insn: number,
    imm: number,
    size: number,
    write: boolean,
    pc: number,
    k: number,
  ): void {
    const f = this.f;
    const rs1 = (insn >>> 15) & 31;
    const reuse = rs1 !== 0 && rs1 === this.recReg && (this.recWrite || !write);
    if (reuse) {
      const d = imm - this.recOff;
      f.idx(OP.localGet, this.recW).i32(4095).op(OP.i32And).i32(d).op(OP.i32Add);
      f.i32(-4096 | (size - 1))
        .op(OP.i32And, OP.i32Eqz)
        .open(OP.if, null, T.i32);
      f.idx(OP.localGet, this.recW).i32(d).op(OP.i32Add).idx(OP.localSet, this.recW);
      f.idx(OP.localGet, this.recH).i32(d).op(OP.i32Add).idx(OP.localTee, this.recH);
      f.op(OP.else);
    }
    this.addr(insn, imm);
    this.tlbHit(write ? AREA.W_TAG : AREA.R_TAG, size, this.recW);
    f.open(OP.if, null, T.i32);
    this.hostAddr(write ? AREA.W_ADD : AREA.R_ADD, this.recW);
    f.idx(OP.localTee, this.recH);
    f.op(OP.else);
    this.exitSlow(pc, k);
    f.end();
    if (reuse) f.end();
    this.recReg = rs1;
    this.recOff = imm;
    this.recWrite = write;
  }

  private load(insn: number, raw: number, pc: number, len: number, k: number): void {
    const f = this.f;
    const f3 = (insn >>> 12) & 7;
    const ld = LOAD_OPS[f3] ?? OP.i64Load;
    if (!this.inlineMiss) {
      this.access(insn, iImm(insn), 1 << (f3 & 3), false, pc, k);
      f.mem(ld, 0, 0);
      this.set((insn >>> 7) & 31);
      return;
    }
    this.addr(insn, iImm(insn));
    this.tlbHit(AREA.R_TAG, 1 << (f3 & 3));
    f.open(OP.if, null, T.i64);
    this.hostAddr(AREA.R_ADD);
    f.mem(ld, 0, 0);
    f.op(OP.else);
    f.idx(OP.localGet, this.w);
    this.pushAddrHi();
    f.i32(this.site(insn, raw, pc, len)).idx(OP.call, F.ld);
    this.status(k, pc + len);
    f.i32(0);
    this.at(ld, 0, AREA.VAL);
    f.end();
    this.set((insn >>> 7) & 31);
  }

  private store(insn: number, raw: number, pc: number, len: number, k: number): void {
    const f = this.f;
    const f3 = (insn >>> 12) & 7;
    const imm = ((insn >> 20) & ~31) | ((insn >>> 7) & 31);
    const rs2 = (insn >>> 20) & 31;
    if (!this.inlineMiss) {
      this.access(insn, imm, 1 << f3, true, pc, k);
      this.get(rs2);
      f.mem(STORE_OPS[f3] ?? OP.i64Store, 0, 0);
      return;
    }
    this.addr(insn, imm);
    this.tlbHit(AREA.W_TAG, 1 << f3);
    f.open(OP.if);
    this.hostAddr(AREA.W_ADD);
    this.get(rs2);
    f.mem(STORE_OPS[f3] ?? OP.i64Store, 0, 0);
    f.op(OP.else);
    f.idx(OP.localGet, this.w);
    this.pushAddrHi();
    this.get(rs2);
    f.op(OP.i32WrapI64);
    this.get(rs2);
    f.i64n(32).op(OP.i64ShrU, OP.i32WrapI64);
    f.i32(this.site(insn, raw, pc, len)).idx(OP.call, F.st);
    this.status(k, pc + len);
    f.end();
  }

  private fallback(insn: number, raw: number, pc: number, len: number, k: number): void {
    const f = this.f;
    this.recReg = -1; // the interpreter may change the TLB (sfence.vma, satp, SUM)
    this.writeBack();
    f.i32(this.site(insn, raw, pc, len))
      .idx(OP.call, this.fEx)
      .idx(OP.localSet, this.v);
    // Reload first: on a DIRTY exit the epilogue stores the locals, which must hold what the
    // interpreter wrote (an AMO's rd), not the values from before the call.
    this.reload();
    f.idx(OP.localGet, this.v);
    this.status(k, pc + len);
  }

  /** RISC-V division semantics on i64 operands in locals a, b (spec "M", division table). */
  private div64(f3: number): void {
    const f = this.f;
    const a = this.a;
    const b = this.b;
    f.idx(OP.localGet, b).op(OP.i64Eqz).open(OP.if, null, T.i64);
    if (f3 >= 6) f.idx(OP.localGet, a);
    else f.i64n(-1);
    f.op(OP.else);
    if (f3 === 4 || f3 === 6) {
      f.idx(OP.localGet, b).i64n(-1).op(OP.i64Eq).open(OP.if, null, T.i64);
      if (f3 === 4) f.i64n(0).idx(OP.localGet, a).op(OP.i64Sub);
      else f.i64n(0);
      f.op(OP.else)
        .idx(OP.localGet, a)
        .idx(OP.localGet, b)
        .op(f3 === 4 ? OP.i64DivS : OP.i64RemS);
      f.end();
    } else {
      f.idx(OP.localGet, a)
        .idx(OP.localGet, b)
        .op(f3 === 5 ? OP.i64DivU : OP.i64RemU);
    }
    f.end();
  }

  /** The same on the low words (divw & co.), result sign-extended. */
  private div32(f3: number): void {
    const f = this.f;
    const wa = this.w;
    const wb = this.v;
    f.idx(OP.localGet, this.a).op(OP.i32WrapI64).idx(OP.localSet, wa);
    f.idx(OP.localGet, this.b).op(OP.i32WrapI64).idx(OP.localSet, wb);
    f.idx(OP.localGet, wb).op(OP.i32Eqz).open(OP.if, null, T.i32);
    if (f3 >= 6) f.idx(OP.localGet, wa);
    else f.i32(-1);
    f.op(OP.else);
    if (f3 === 4 || f3 === 6) {
      f.idx(OP.localGet, wb).i32(-1).op(OP.i32Eq).open(OP.if, null, T.i32);
      if (f3 === 4) f.i32(0).idx(OP.localGet, wa).op(OP.i32Sub);
      else f.i32(0);
      f.op(OP.else)
        .idx(OP.localGet, wa)
        .idx(OP.localGet, wb)
        .op(f3 === 4 ? OP.i32DivS : OP.i32RemS);
      f.end();
    } else {
      f.idx(OP.localGet, wa)
        .idx(OP.localGet, wb)
        .op(f3 === 5 ? OP.i32DivU : OP.i32RemU);
    }
    f.end();
    f.op(OP.i64ExtendI32S);
  }

  /** OP / OP-32 register-register arithmetic (nativeInsn said yes). */
  private alu(insn: number, word: boolean): void {
    const f = this.f;
    const f3 = (insn >>> 12) & 7;
    const f7 = insn >>> 25;
    const rs1 = (insn >>> 15) & 31;
    const rs2 = (insn >>> 20) & 31;
    if (f7 === 1 && f3 >= 4) {
      this.get(rs1);
      f.idx(OP.localSet, this.a);
      this.get(rs2);
      f.idx(OP.localSet, this.b);
      if (word) this.div32(f3);
      else this.div64(f3);
      return;
    }
    // Operands straight from their locals (fewer wasm ops: Liftoff's code follows them).
    this.get(rs1);
    if (word) f.op(OP.i32WrapI64);
    this.get(rs2);
    if (word) {
      f.op(OP.i32WrapI64);
      if (f7 === 1) f.op(OP.i32Mul);
      else if (f3 === 0) f.op(f7 === 0x20 ? OP.i32Sub : OP.i32Add);
      else if (f3 === 1) f.op(OP.i32Shl);
      else f.op(f7 === 0x20 ? OP.i32ShrS : OP.i32ShrU);
      f.op(OP.i64ExtendI32S);
      return;
    }
    if (f7 === 1) {
      f.op(OP.i64Mul);
      return;
    }
    const ops = [
      OP.i64Add,
      OP.i64Shl,
      OP.i64LtS,
      OP.i64LtU,
      OP.i64Xor,
      OP.i64ShrU,
      OP.i64Or,
      OP.i64And,
    ];
    if (f7 === 0x20) f.op(f3 === 0 ? OP.i64Sub : OP.i64ShrS);
    else f.op(ops[f3] ?? OP.i64Add);
    if (f3 === 2 || f3 === 3) f.op(OP.i64ExtendI32U);
  }

  /** OP-IMM / OP-IMM-32. */
  private aluImm(insn: number, word: boolean): void {
    const f = this.f;
    const f3 = (insn >>> 12) & 7;
    const imm = iImm(insn);
    this.get((insn >>> 15) & 31);
    if (word) {
      f.op(OP.i32WrapI64);
      if (f3 === 0) f.i32(imm).op(OP.i32Add);
      else if (f3 === 1) f.i32(imm & 31).op(OP.i32Shl);
      else f.i32(imm & 31).op(insn >>> 30 === 1 ? OP.i32ShrS : OP.i32ShrU);
      f.op(OP.i64ExtendI32S);
      return;
    }
    if (f3 === 1) f.i64n(imm & 63).op(OP.i64Shl);
    else if (f3 === 5) f.i64n(imm & 63).op(insn >>> 30 === 1 ? OP.i64ShrS : OP.i64ShrU);
    else {
      f.i64n(imm);
      const ops = [OP.i64Add, 0, OP.i64LtS, OP.i64LtU, OP.i64Xor, 0, OP.i64Or, OP.i64And];
      f.op(ops[f3] ?? OP.i64Add);
      if (f3 === 2 || f3 === 3) f.op(OP.i64ExtendI32U);
    }
  }

  /** Keeps the access record (`access`) true after `insn`, which may write its base register. */
  private track(insn: number): void {
    const rd = (insn >>> 7) & 31;
    if (rd === 0 || rd !== this.recReg) return;
    const op = insn & 0x7f;
    if (op === 0x23 || op === 0x63 || op === 0x0f) return; // no rd
    // addi rd, rd, c moves the base: the recorded address is now rd + (recOff - c).
    if (op === 0x13 && ((insn >>> 12) & 7) === 0 && ((insn >>> 15) & 31) === rd)
      this.recOff -= iImm(insn);
    else this.recReg = -1;
  }

  /** Emits block `i` of the region inside its own `self` loop. */
  blockAt(blk: Block, i: number): void {
    this.cur = i;
    this.f.open(OP.loop, "self");
    this.block(blk);
    this.f.end();
  }

  /** Emits block `blk`; every path ends in a branch to `self`, `disp` or `exit`. */
  private block(blk: Block): void {
    const f = this.f;
    let pc = blk.pc;
    this.recReg = -1; // a block starts at a join: no access of this path is known
    for (let k = 0; k < blk.n; k++) {
      const insn = blk.insns[k] ?? 0;
      const raw = blk.raws[k] ?? 0;
      const len = blk.lens[k] ?? 4;
      const op = insn & 0x7f;
      const rd = (insn >>> 7) & 31;
      if (!nativeInsn(insn) || (op === 0x0f && ((insn >>> 12) & 7) !== 0)) {
        this.fallback(insn, raw, pc, len, k);
        if (op === 0x0f) {
          this.goto(pc + len, k + 1); // fence.i ends its block
          return;
        }
      } else if (op === 0x37) {
        f.i64n((insn & 0xfffff000) | 0);
        this.set(rd);
      } else if (op === 0x17) {
        f.i64n(pc, (insn & 0xfffff000) | 0);
        this.set(rd);
      } else if (op === 0x6f) {
        f.i64n(pc, len);
        this.set(rd);
        this.goto(pc + jImm(insn), k + 1);
        return;
      } else if (op === 0x67) {
        this.get((insn >>> 15) & 31);
        f.i64n(iImm(insn)).op(OP.i64Add).i64n(-2).op(OP.i64And).idx(OP.localSet, this.a);
        f.i64n(pc, len);
        this.set(rd);
        // A return to a call site of this region stays in it: through the dispatcher it cost a
        // region exit and entry per call (heap sort's sift on compute.elf: ~20% of them).
        for (const site of this.returnSites) {
          f.idx(OP.localGet, this.a).i64n(site).op(OP.i64Eq).open(OP.if);
          this.goto(site, k + 1);
          f.end();
        }
        f.i32(0).idx(OP.localGet, this.a);
        this.at(OP.i64Store, 3, AREA.PC);
        this.addDone(k + 1);
        f.br("exit");
        return;
      } else if (op === 0x63) {
        const f3 = (insn >>> 12) & 7;
        this.get((insn >>> 15) & 31);
        this.get((insn >>> 20) & 31);
        f.op(
          [OP.i64Eq, OP.i64Ne, 0, 0, OP.i64LtS, OP.i64GeS, OP.i64LtU, OP.i64GeU][f3] ?? OP.i64Eq,
        );
        f.open(OP.if);
        this.goto(pc + bImm(insn), k + 1);
        f.end();
      } else if (op === 0x03) this.load(insn, raw, pc, len, k);
      else if (op === 0x23) this.store(insn, raw, pc, len, k);
      else if (op === 0x13 || op === 0x1b) {
        this.aluImm(insn, op === 0x1b);
        this.set(rd);
      } else if (op === 0x33 || op === 0x3b) {
        this.alu(insn, op === 0x3b);
        this.set(rd);
      } // else fence: nothing to do for one hart's view of memory
      this.track(insn);
      pc += len;
    }
    this.goto(pc, blk.n);
  }
}

/** Most return sites a `jalr` compares its target with (each is a compare on its path). */
const MAX_RETURN_SITES = 4;

/** pcs of blocks in `index` that follow a call (`jal`/`jalr` with a link register) in `blocks`. */
function returnSites(blocks: readonly Block[], index: ReadonlyMap<number, number>): number[] {
  const out: number[] = [];
  for (const blk of blocks) {
    let pc = blk.pc;
    for (let k = 0; k < blk.n; k++) {
      const insn = blk.insns[k] ?? 0;
      const len = blk.lens[k] ?? 4;
      const op = insn & 0x7f;
      const next = pc + len;
      const call = (op === 0x6f || op === 0x67) && ((insn >>> 7) & 31) !== 0;
      if (call && index.has(next) && !out.includes(next) && out.length < MAX_RETURN_SITES)
        out.push(next);
      pc = next;
    }
  }
  return out;
}

function generate(
  blocks: readonly Block[],
  regs: readonly number[],
  base: number,
  inlineMiss: boolean,
  slow: SlowExits,
  written?: readonly boolean[],
): WasmGen {
  const g = new WasmGen(blocks, base, inlineMiss, slow, written);
  g.prologue(regs, blocks);
  blocks.forEach((b, i) => {
    g.f.end(); // closes block b<i>: its code follows
    g.blockAt(b, i);
  });
  g.epilogue();
  return g;
}

/**
 * The x-registers the code of `blocks` reads or writes in wasm locals (`used`, ascending) and
 * those it writes (`written[r]`), as generating it would find: natively emitted instructions
 * only (the interpreter's `exec` works on the register file), x0 never.
 */
export function regionRegs(blocks: readonly Block[]): { used: number[]; written: boolean[] } {
  const touched: boolean[] = new Array<boolean>(32).fill(false);
  const written: boolean[] = [];
  for (const blk of blocks) {
    for (let k = 0; k < blk.n; k++) {
      const insn = blk.insns[k] ?? 0;
      const op = insn & 0x7f;
      if (op === 0x0f && ((insn >>> 12) & 7) !== 0) break; // ends the block's code (`block`)
      if (!nativeInsn(insn)) continue;
      const rd = (insn >>> 7) & 31;
      const rs1 = (insn >>> 15) & 31;
      const rs2 = (insn >>> 20) & 31;
      // Formats (unprivileged spec §2.3): U/J write rd; I reads rs1, writes rd; S/B read both.
      const reads1 = op !== 0x37 && op !== 0x17 && op !== 0x6f && op !== 0x0f;
      const reads2 = op === 0x23 || op === 0x63 || op === 0x33 || op === 0x3b;
      const writes = op !== 0x23 && op !== 0x63 && op !== 0x0f;
      if (reads1 && rs1 !== 0) touched[rs1] = true;
      if (reads2 && rs2 !== 0) touched[rs2] = true;
      if (writes && rd !== 0) {
        touched[rd] = true;
        written[rd] = true;
      }
    }
  }
  const used: number[] = [];
  touched.forEach((t, r) => {
    if (t) used.push(r);
  });
  return { used, written };
}

/**
 * The wasm module of `blocks` for the hart area at `base`, and its helper call sites;
 * `inlineMiss`: a TLB miss calls the JS slow path in place (else the region leaves with SLOW,
 * its exits added to `slow`).
 */
export function regionModule(
  blocks: readonly Block[],
  base = 0,
  inlineMiss = false,
  slow: SlowExits = new SlowExits(),
): { bytes: Uint8Array; sites: Site[] } {
  // The registers used and written are known before generating (a scan, not a second
  // generation pass), so the prologue loads them all and every exit (including ones emitted
  // before a later write) stores the written ones.
  const { used, written } = regionRegs(blocks);
  const g = generate(blocks, used, base, inlineMiss, slow, written);
  const imports = inlineMiss ? IMPORTS_MISS : g.sites.length > 0 ? IMPORTS_EX : [];
  return { bytes: encodeModule(TYPES, imports, 0, g.f), sites: g.sites };
}

/** What generating `blocks` without a register scan finds (regionRegs' oracle, for tests). */
export function generatedRegs(
  blocks: readonly Block[],
  inlineMiss = false,
): { used: number[]; written: boolean[] } {
  const g = generate(blocks, [], 0, inlineMiss, new SlowExits());
  return { used: g.used(), written: g.writes() };
}

/** A compiled region: `run(entry)` returns an ST status (see the module comment). */
export type WasmRegion = (entry: number) => number;

/** Counters the compiled code updates. */
export interface WasmStats {
  /** Calls from wasm to a JS helper (TLB misses, instructions the interpreter runs). */
  wasmHelpers: number;
}

/**
 * Compiles a region to a wasm function over this hart's area (for its dispatch table); its
 * TLB-miss exits go to `slow` (the dispatcher's).
 */
export function compileWasmRegion(
  blocks: readonly Block[],
  c: Core,
  stats: WasmStats,
  slow: SlowExits,
): WasmRegion {
  // A private area has no guest RAM in it: every access misses, so misses stay in the region.
  const { bytes, sites } = regionModule(blocks, c.area.base, !c.area.shared, slow);
  const xfer = c.xfer;
  const tr = c.tr;
  const tw = c.tw;
  const inst = instantiate(bytes, {
    mem: c.area.mem,
    ld: (lo: number, hi: number, i: number): number => {
      stats.wasmHelpers++;
      const s = sites[i];
      if (s === undefined) return ST.EXC;
      const f3 = (s.insn >>> 12) & 7;
      const size = 1 << (f3 & 3);
      // Entries of slots outside the wasm memory are only in the JS table.
      const t = (lo >>> 12) & (TLB_SIZE - 1);
      if (tr.tagLo[t] === (lo & (-4096 | (size - 1))) && tr.tagHi[t] === hi) {
        const dv = tr.dv[t] ?? EMPTY_VIEW;
        const o = (tr.off[t] ?? 0) + (lo & 4095);
        if (size === 8) {
          xfer[2] = dv.getInt32(o, true);
          xfer[3] = dv.getInt32(o + 4, true);
        } else
          xfer[2] =
            size === 4 ? dv.getInt32(o, true) : size === 2 ? dv.getUint16(o, true) : dv.getUint8(o);
        return ST.OK;
      }
      const tag = ((s.insn >>> 7) & 31) | (f3 >= 4 ? MMIO_TAG.UNSIGNED : 0);
      const v = loadSlow(c, lo, hi, size, s.pc, tag, s.len);
      if (c.exc) return ST.EXC;
      xfer[2] = v;
      xfer[3] = size === 8 ? c.rhi : 0;
      return ST.OK;
    },
    st: (lo: number, hi: number, vlo: number, vhi: number, i: number): number => {
      stats.wasmHelpers++;
      const s = sites[i];
      if (s === undefined) return ST.EXC;
      const size = 1 << ((s.insn >>> 12) & 3);
      const t = (lo >>> 12) & (TLB_SIZE - 1);
      if (tw.tagLo[t] === (lo & (-4096 | (size - 1))) && tw.tagHi[t] === hi) {
        const dv = tw.dv[t] ?? EMPTY_VIEW;
        const o = (tw.off[t] ?? 0) + (lo & 4095);
        if (size === 1) dv.setUint8(o, vlo & 255);
        else if (size === 2) dv.setUint16(o, vlo & 65535, true);
        else dv.setInt32(o, vlo, true);
        if (size === 8) dv.setInt32(o + 4, vhi, true);
        return ST.OK;
      }
      if (storeSlow(c, lo, hi, size, vlo, vhi, s.pc, s.len)) return ST.EXC;
      return c.codeDirty ? ST.DIRTY : ST.OK;
    },
    ex: (i: number): number => {
      stats.wasmHelpers++;
      const s = sites[i];
      if (s === undefined) return ST.EXC;
      exec(c, s.insn, s.raw, s.pc, s.len);
      if (c.exc) return ST.EXC;
      return c.codeDirty ? ST.DIRTY : ST.OK;
    },
  });
  const run = inst.exports.run;
  if (typeof run !== "function") throw new Error("wasm tier: compiled region exports no run()");
  return run as WasmRegion; // shape fixed by REGION_TYPE
}

/**
 * The step stub's helper (wasm-dispatch.ts STEP_TIDX) for hart `c` on its current area: runs
 * the instruction at the PC word as `step` would (fetched afresh, both halves of a
 * page-straddling one checked), charges it to the budget word and leaves its successor in the
 * PC word, so the dispatcher goes on there. SYSTEM instructions, fence.i and illegal encodings
 * are left to the run loop (SLOW, nothing done): a CSR read of instret must see the
 * instructions the dispatcher retired, an interrupt enable or a new address map must reach the
 * run loop before the next instruction. The region's registers are in the area already (a
 * region writes them back at its exit), which is where `exec` reads them.
 */
export function stepHelper(c: Core, stats: WasmStats): () => number {
  const w = c.area.i32;
  const pcAt = AREA.PC / 4;
  const budgetAt = AREA.BUDGET / 4;
  return (): number => {
    stats.wasmHelpers++;
    c.setPcPair(w[pcAt] ?? 0, w[pcAt + 1] ?? 0);
    const pc = c.pc;
    c.exc = false;
    const raw = fetch(c);
    if (c.trapped()) return ST.EXC;
    const len = (raw & 3) === 3 ? 4 : 2;
    const insn = len === 4 ? raw : expandRvc(raw);
    const op = insn & 0x7f;
    if (insn === 0 || op === 0x73 || (op === 0x0f && ((insn >>> 12) & 7) === 1)) return ST.SLOW;
    exec(c, insn, raw, pc, len);
    if (c.trapped()) return ST.EXC;
    w[budgetAt] = (w[budgetAt] ?? 0) - 1;
    const next = c.pc;
    // A jump beyond 53 bits leaves pc NaN and the value in pcBig (Core.setPcPair).
    w[pcAt] = Number.isNaN(next) ? Number(BigInt.asIntN(32, c.pcBig)) : next | 0;
    w[pcAt + 1] = Number.isNaN(next)
      ? Number(BigInt.asIntN(32, c.pcBig >> 32n))
      : Math.floor(next / TWO32) | 0;
    return c.codeDirty ? ST.DIRTY : ST.OK;
  };
}
