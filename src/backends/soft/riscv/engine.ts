/**
 * The run loop and the block cache.
 *
 * - Blocks are keyed by guest-physical address and virtual pc, and found through a
 *   direct-mapped virtual-pc cache per privilege mode whose entries carry the `mapGen` they
 *   were made under (satp writes and `sfence.vma x0` retire them all at once) and the size of
 *   the leaf PTE that mapped them (`sfence.vma addr` drops the entries inside that leaf, and
 *   skips the scan for a leaf no code look-up went through: code-leaves.ts).
 * - Two tiers (see `run`): cold code runs in the reference interpreter one instruction at a
 *   time; a pc reached `hot` times at a control-flow boundary (fewer when a long straight-line
 *   path starts there: `promote`) is decoded and its region compiled (translate.ts,
 *   wasm-tier.ts). At most MAX_BLOCKS blocks are kept.
 * - Self-modifying code: a block's bytes are marked in its slot's code bitmap; a store that
 *   hits marked bytes (access.ts) invalidates every block of that page, and if it rewrote the
 *   running block, that block ends right after the store (`Core.codeDirty`). fence.i (local,
 *   or SBI remote fence.i to this hart) re-checks the cached blocks against memory and drops
 *   only the pages whose bytes changed (writes this hart's stores did not see: other vCPUs;
 *   a page whose blocks' span still equals its snapshot is intact: page-snapshot.ts);
 *   a whole flush is left for memslot changes, restores and a full cache. Linux 6.1 patches
 *   kernel text ~226 times per boot with fence.i + remote fence.i: with whole flushes, every
 *   one of them re-decoded and re-compiled the whole working set.
 * - Interrupts are taken between instructions in the interpreter and between compiled blocks
 *   (blocks end before every CSR instruction, which runs alone in the interpreter, so an
 *   enable takes effect at the next instruction); the budget counts every attempted
 *   instruction, so trap storms cannot hang the host.
 */
import type { HartStop } from "./contract.js";
import { Block, blockSize, decodeBlock } from "./block.js";
import { Core } from "./core.js";
import { fetchPage } from "./access.js";
import { step } from "./interp.js";
import { fastEnd, runFast } from "./fast.js";
import { DecodeCache } from "./predecode.js";
import { CodeLeaves } from "./code-leaves.js";
import { PageSnapshot } from "./page-snapshot.js";
import type { Slot } from "./memory.js";
import {
  compileRegion,
  DEFAULT_REGION_BLOCKS,
  REGION_MAX_INSNS,
  staticTargets,
} from "./translate.js";
import { TWO32 } from "./i64.js";
import {
  compileWasmRegion,
  slowExitOf,
  ST,
  stepHelper,
  WASM_REGION_BLOCKS,
  WASM_REGION_MAX_INSNS,
  type WasmStats,
} from "./wasm-tier.js";
import { STEP_TIDX, WasmDispatch } from "./wasm-dispatch.js";
import { AREA } from "./wasm-memory.js";
import { MAX_BLOCK } from "./block.js";
import type { HartDebug } from "./contract.js";
import { engineDebug, runDebug, type EngineDebug } from "./debug.js";

/**
 * Default boundary visits of a pc before its region is compiled. Measured (Linux 6.1 boot to
 * /init, user CPU, loaded 2-core host): threshold 4 → 13.9 s, 64 → 5.9 s, 256 → 3.9 s,
 * 1024 → 2.3 s, 4096 → 1.9 s (the interpreter alone: 1.9 s); compute.elf 160–200 MIPS at every
 * threshold from 4 to 16384 (its loops run millions of times). Most boot code runs a few
 * hundred times at most, and compiling a region costs what interpreting it ~1000 times does.
 */
export const DEFAULT_HOT = 4096;
/**
 * Boundary visits after which the fast interpreter hands a pc to the engine, which weighs it
 * (`promote`): a pc with a long straight-line path is compiled before `hot` visits. Measured
 * (Linux 6.1 boot to /init): 6.9 M of the 16.9 M instructions the fast interpreter ran were in
 * one function, blake2s_compress_generic, a ~2350-instruction unrolled loop body entered 2956
 * times, never `hot`; most pcs under `hot` run a few instructions per visit.
 */
export const WARM = 256;
/**
 * A pc is compiled once its visits × the instructions on its straight-line path (`straight`,
 * capped at STRAIGHT_CAP) reach `hot` × HOT_PATH: a path of HOT_PATH instructions (about two
 * full blocks of boot code) needs `hot` visits, as before; one of 256 or more needs WARM.
 */
export const HOT_PATH = 16;
/** Longest straight-line path `straight` follows (WARM visits of it promote at the default). */
const STRAIGHT_CAP = 256;
/**
 * Most blocks kept; past this the whole cache is dropped and rebuilt from what runs next (as
 * QEMU flushes its translation buffer when full), bounding memory for big guests.
 */
export const MAX_BLOCKS = 16384;
/**
 * Most instructions a compiled region runs before it returns to the dispatcher while a word is
 * watched (a block that loops on itself otherwise runs up to the whole budget inside its
 * function): bounds how long a kick or interrupt from another thread waits, for one return to the
 * dispatcher per 256 instructions.
 */
export const WATCH_SLICE = 256;
/**
 * Most instructions the wasm dispatcher runs before it returns to the run loop while a word is
 * watched or a timer deadline is pending (WATCH_BLOCKS × WATCH_SLICE: the same latency as the
 * JS tier's); without either it may spend the whole budget in wasm.
 */
export const WASM_SLICE = 4096;
/** Block dispatches between two reads of the watched word. */
const WATCH_BLOCKS = 16;
/**
 * Dispatches (fast-interpreter runs of at most FAST_SLICE_TIMER instructions, or compiled-region
 * runs) between two looks at the Sstc deadline (one `performance.now()`, ~40 ns): a due
 * `stimecmp` raises STIP within 32 dispatches (compiled loops return every WATCH_SLICE
 * instructions while a deadline is pending), i.e. microseconds, not a whole run chunk.
 */
const TIMER_DISPATCHES = 32;
/**
 * Heat counters, hashed by pc bits 1..: pcs 2 × HEAT_SIZE bytes apart share one. Sharing does
 * not only promote early: the slot's visits restart at every weighing that does not promote,
 * whichever pc it weighed, and its path length is the first weighed pc's, so a warm pc that
 * collides with a colder one may never be promoted by its own path. Measured (Linux 6.1 boot
 * to /init): at 2^14 slots (32 KiB of code) the straight-line middle of
 * blake2s_compress_generic collided and ran in the fast interpreter on all ~2950 calls (3.5 M
 * instructions), and whether it did varied from boot to boot with timing; at 2^18 (512 KiB,
 * more than the kernel text a boot runs) every boot ran 15.3 M instructions in wasm with 61
 * regions (2^14: 12.5–15.6 M with 89–110 regions), in-process boot 603–657 ms against 622–699
 * ms. Three Uint16Arrays: 1.5 MiB per vCPU.
 */
const HEAT_SIZE = 1 << 18;
const VC_BITS = 12;
const VC_SIZE = 1 << VC_BITS;

/**
 * Engine.fenceVa's scan of the virtual-pc cache: drops the entries of map generation `gen`
 * whose pc lies in the leaf that maps `va`, by moving them to the previous generation, which
 * never hits again (compiledAt compares the current one). Linux fences single pages hundreds of
 * times per boot, so this is int32 work in a function of its own, with a store on every live
 * entry rather than only at a match: a path V8 had no type feedback for (the store at the
 * first match, the code after the loop in an on-stack-replaced loop) deoptimized the scan on
 * every fence (~400 per boot). Same leaf (at most 1 GiB, bits <= 30): equal high words, low
 * words equal above bit `bits`.
 */
function dropLeafLookups(
  gens: Int32Array,
  pcs: Float64Array,
  bits: Uint8Array,
  gen: number,
  va: number,
): void {
  const dead = (gen - 1) | 0;
  const vaLo = va | 0;
  const vaHi = Math.floor(va / TWO32) | 0;
  for (let i = 0; i < gens.length; i++) {
    // Older entries first: most are, and an empty one's pc is NaN, whose int32 conversion
    // takes V8's slow path.
    if (gens[i] !== gen) continue;
    const pc = pcs[i] ?? 0;
    const other = (((pc | 0) ^ vaLo) >>> (bits[i] ?? 12)) | ((Math.floor(pc / TWO32) | 0) ^ vaHi);
    gens[i] = other === 0 ? dead : gen;
  }
}

/** Runs a Core: dispatcher, block cache, translator. */
export class Engine {
  readonly core: Core;
  readonly translate: boolean;
  /** Boundary visits that promote any pc (a long straight-line path needs fewer: `promote`). */
  readonly hot: number;
  /** Most blocks compiled into one region function. */
  readonly regionBlocks: number;
  /** Most instructions in one region (the first block may exceed it alone). */
  readonly regionInsns: number;
  /** Blocks by guest-physical address of their first byte. */
  private readonly byPhys = new Map<number, Block>();
  /** Blocks by guest-physical page number (for invalidation). */
  private readonly byPage = new Map<number, Block[]>();
  /** The bytes of each page in `byPage` as its blocks were decoded from them (for fence.i). */
  private readonly snaps = new Map<number, PageSnapshot>();
  private readonly vcPc = new Float64Array(2 * VC_SIZE).fill(NaN);
  private readonly vcGen = new Int32Array(2 * VC_SIZE);
  /** log2 of the size of the leaf each entry's pc was translated through (Core.leafBits). */
  private readonly vcBits = new Uint8Array(2 * VC_SIZE);
  private readonly vcBlk: (Block | null)[] = new Array<Block | null>(2 * VC_SIZE).fill(null);
  /**
   * Boundary visits per hashed pc since its last weighing, up to `warm` (the fast interpreter
   * counts them too and returns to the engine at `warm`); `rounds` counts the weighings.
   * Collisions share all three, and none is reset (not on a flush either): as before, only
   * when a pc is promoted depends on them, never what runs.
   */
  private readonly heat = new Uint16Array(HEAT_SIZE);
  private readonly rounds = new Uint16Array(HEAT_SIZE);
  /** Straight-line path lengths per hashed pc (0: not measured yet), for `promote`. */
  private readonly paths = new Uint16Array(HEAT_SIZE);
  /** Visits between two weighings of a pc (`promote`): `hot` if that is smaller. */
  private readonly warm: number;
  /** The block being executed (its invalidation by a store ends it: `Core.codeDirty`). */
  private current: Block | null = null;
  /** The watched word (HartApi.watch): run() stops when it changes. */
  private watchArray: Int32Array | null = null;
  private watchIndex = 0;
  /** Guest debug forcing one-by-one interpretation (single-step, hw breakpoints): debug.ts. */
  private debug: EngineDebug | null = null;
  /** The fast interpreter's decode cache (fast.ts): cold code when translating; null: `step`. */
  readonly decoded: DecodeCache | null;
  /** The leaves the code look-ups of the current map went through (for `fenceVa`). */
  private readonly leaves = new CodeLeaves();
  /**
   * Statistics (for benchmarks and tests): regions compiled and the milliseconds it took,
   * blocks invalidated, whole flushes, fence.i re-checks; for the wasm tier, dispatcher entries
   * from the run loop, instructions retired in wasm, helper calls from wasm (TLB misses and
   * instructions run by the interpreter) and region calls from the wasm dispatcher.
   */
  readonly stats: WasmStats & {
    compiled: number;
    compileMs: number;
    invalidated: number;
    flushes: number;
    syncs: number;
    walks: number;
    wasmEntries: number;
    wasmInsns: number;
    wasmCalls: number;
  } = {
    compiled: 0,
    compileMs: 0,
    invalidated: 0,
    flushes: 0,
    syncs: 0,
    walks: 0,
    wasmEntries: 0,
    wasmInsns: 0,
    wasmHelpers: 0,
    wasmCalls: 0,
  };
  /** The wasm tier's dispatcher over the core's current area (null until first needed). */
  private wasm: WasmDispatch | null = null;
  /** `Core.mapGen` the wasm dispatch cache was filled under. */
  private wasmGen = 0;
  /** True while the wasm dispatcher runs (an invalidation then ends the running region). */
  private inWasm = false;

  /** What hot regions compile to: JS functions (translate.ts) or wasm (wasm-tier.ts). */
  readonly tier: "js" | "wasm";

  constructor(
    hartId: number,
    translate: boolean,
    hot = DEFAULT_HOT,
    regionBlocks?: number,
    tier: "js" | "wasm" = "js",
  ) {
    this.core = new Core(hartId);
    this.translate = translate;
    this.hot = hot;
    this.warm = Math.min(hot, WARM);
    this.tier = tier;
    this.regionBlocks =
      regionBlocks ?? (tier === "wasm" ? WASM_REGION_BLOCKS : DEFAULT_REGION_BLOCKS);
    this.regionInsns = tier === "wasm" ? WASM_REGION_MAX_INSNS : REGION_MAX_INSNS;
    this.decoded = translate ? new DecodeCache(this.core, this.leaves) : null;
    this.core.onFenceI = () => {
      this.syncCode();
    };
    this.core.onCodeWrite = (slot, page) => {
      this.invalidatePage(slot, page);
    };
    this.core.onFenceVa = (va) => {
      this.fenceVa(va);
    };
  }

  /**
   * `sfence.vma` of virtual address `va`: forgets the virtual-pc look-ups (this cache, the wasm
   * dispatch cache, the decode cache's page look-up) made through the leaf that mapped it; the
   * blocks stay (they are keyed by physical address and found again through a new walk). A
   * leaf no code look-up of the current map went through has none to forget (code-leaves.ts).
   */
  private fenceVa(va: number): void {
    if (!this.leaves.take(this.core.mapGen, va)) return;
    dropLeafLookups(this.vcGen, this.vcPc, this.vcBits, this.core.mapGen, va);
    this.wasm?.fenceVa(va);
    this.decoded?.fenceVa(va);
  }

  /** Drops every block (fence.i, flushCaches, memslot changes). */
  flushCode(): void {
    for (const b of this.byPhys.values()) b.valid = false;
    if (this.current !== null || this.inWasm) this.core.codeDirty = true;
    // A new area (memslots moved the registers) gets its own dispatcher on first use.
    if (this.wasm?.area === this.core.area) this.wasm.reset();
    else this.wasm = null;
    this.byPhys.clear();
    this.byPage.clear();
    this.snaps.clear();
    this.vcBlk.fill(null);
    for (const s of this.core.mem.slots) s.clearAllCode();
    this.decoded?.clear();
    this.stats.flushes++;
  }

  /**
   * fence.i: drops the blocks of every page where some block's bytes changed since it was
   * decoded (per page, as a store into code does); pages whose code is intact keep theirs.
   */
  syncCode(): void {
    for (const [key, list] of this.byPage) {
      // A page whose code span equals its snapshot holds the bytes every block was decoded
      // from (page-snapshot.ts); else each block compares its own bytes.
      const snap = this.snaps.get(key);
      if (snap?.intact() === true) continue;
      const stale = list.find((b) => !b.matches());
      if (stale === undefined) {
        snap?.retake();
        continue;
      }
      const slot = stale.slot;
      this.invalidatePage(slot, Math.floor((stale.pa - slot.gpa) / 4096));
    }
    this.decoded?.sync();
    this.stats.syncs++;
  }

  /** Watches `array[index]`: `run(budget, expect)` stops at a block boundary once it ≠ expect. */
  watch(array: Int32Array, index: number): void {
    this.watchArray = array;
    this.watchIndex = index;
  }

  /** Sets guest debug (debug.ts); `undefined` turns it off. */
  setDebug(debug: HartDebug | undefined): void {
    this.core.swBreak = debug?.swBreak ?? false;
    this.debug = engineDebug(debug);
  }

  /** Invalidates the blocks of page `page` of `slot` (a store or the VMM wrote their bytes). */
  invalidatePage(slot: Slot, page: number): void {
    const key = Math.floor((slot.gpa + page * 4096) / 4096);
    const list = this.byPage.get(key);
    if (list !== undefined) {
      if (this.inWasm) this.core.codeDirty = true;
      for (const b of list) {
        if (b === this.current) this.core.codeDirty = true;
        if (b.tidx >= 0) this.wasm?.drop(b.pc);
        b.valid = false;
        this.byPhys.delete(b.pa);
        this.stats.invalidated++;
      }
      this.byPage.delete(key);
      this.snaps.delete(key);
    }
    this.decoded?.drop(key);
    slot.clearCode(page);
  }

  /** Finds (or decodes) the block at c.pc; null if the fetch trapped or stopped. */
  private lookup(): Block | null {
    const c = this.core;
    const pc = c.pc;
    const i = (c.mode << VC_BITS) | (((pc | 0) >>> 1) & (VC_SIZE - 1));
    const b = this.vcBlk[i];
    if (b != null && this.vcPc[i] === pc && this.vcGen[i] === c.mapGen && b.valid) return b;
    if (Number.isNaN(pc) || (pc | 0) % 2 !== 0) return null; // step() raises the fault
    c.ipc = pc;
    const lo = pc | 0;
    const hi = Math.floor(pc / TWO32) | 0;
    const r = fetchPage(c, lo, hi);
    if (r === null) return null;
    let blk = this.byPhys.get(r.pa);
    // Generated code bakes in the virtual pc, so an alias at another address gets its own block.
    if (blk?.pc !== pc) {
      blk = decodeBlock(pc, r.pa, r.slot);
      this.register(blk);
    }
    this.vcPc[i] = pc;
    this.vcGen[i] = c.mapGen;
    this.vcBits[i] = c.leafBits;
    this.leaves.note(c.mapGen, pc, c.leafBits);
    this.vcBlk[i] = blk;
    return blk;
  }

  private register(b: Block): void {
    if (this.byPhys.size >= MAX_BLOCKS) this.flushCode();
    this.byPhys.set(b.pa, b);
    const key = Math.floor(b.pa / 4096);
    let list = this.byPage.get(key);
    if (list === undefined) {
      list = [];
      this.byPage.set(key, list);
    }
    list.push(b);
    let snap = this.snaps.get(key);
    if (snap === undefined) {
      snap = new PageSnapshot(b.slot, key * 4096 - b.slot.gpa);
      this.snaps.set(key, snap);
    }
    // A straddling block's instruction is fetched afresh every time it runs (Block.matches).
    if (!b.straddles) snap.note(b.pa - key * 4096, b.bytes);
    const off = b.pa - b.slot.gpa;
    const wasCode = b.slot.codePage[Math.floor(off / 4096)] === 1;
    b.slot.markCode(off, b.bytes);
    // Stores to a code page must take the slow path (access.ts checks the bitmap there).
    if (!wasCode) this.core.tw.flushPhys(key * 4096);
  }

  /**
   * Runs at most `budget` instruction attempts; with a watched word and `expect`, stops early
   * (as "budget") at the first block boundary where the word differs from `expect`.
   *
   * Tiering: cold code runs in the fast interpreter (fast.ts: decoded once per physical page,
   * run inline across cold jump targets; the reference `step` when not translating, the
   * oracle). Only at a control-flow boundary (a taken branch or jump, a trap, an interrupt, a
   * compiled region's exit) is compiled code looked for at the new pc and that pc's heat
   * counted (by `runFast` itself while the target stays cold, else here); every `warm` visits
   * a pc is weighed (`promote`), and once promoted it is decoded and its region compiled
   * (translate.ts, wasm-tier.ts).
   */
  run(budget: number, expect?: number): HartStop {
    const c = this.core;
    c.stop = null;
    let left = budget;
    const watched = expect === undefined ? null : this.watchArray;
    const at = this.watchIndex;
    if (this.debug !== null) return runDebug(c, this.debug, budget, watched, at, expect);
    // The word is read at once and then every WATCH_BLOCKS boundaries: a load per dispatch
    // measured ~10 % slower on a loop of 1-4 instruction blocks (noisy, shared 2-core host);
    // with compiled loops returning every WATCH_SLICE instructions, a change is still seen
    // within WATCH_BLOCKS × WATCH_SLICE = 4096 instructions.
    let countdown = 1;
    let timerCountdown = 1;
    let boundary = true;
    while (left > 0) {
      // A plain read is enough: the writer's Atomics.add is seen within a block or two, and
      // the kernel re-reads every request with Atomics once run() returns.
      if (boundary && watched !== null && --countdown === 0) {
        if (watched[at] !== expect) break;
        countdown = WATCH_BLOCKS;
      }
      if (--timerCountdown === 0) {
        timerCountdown = TIMER_DISPATCHES;
        if (c.timerDueAt !== Infinity && performance.now() >= c.timerDueAt) c.checkTimer();
      }
      if (c.irqReady) {
        c.takeInterrupt();
        boundary = true;
      }
      c.exc = false;
      if (boundary && this.translate) {
        const b = this.compiledAt(c.pc);
        if (c.trapped()) {
          // Promoting decoded the block, and its fetch faulted: that was this attempt.
          left--;
          if (c.stopped()) break;
          continue;
        }
        if (b !== null && b.tidx >= 0) {
          if (left >= MAX_BLOCK) {
            left = this.runWasm(b, left, watched !== null || c.timerDueAt !== Infinity);
            if (c.stopped()) break;
            // Look at the watched word and the timer right away: the dispatcher ran a slice.
            countdown = 1;
            timerCountdown = 1;
            continue;
          }
        } else if (b !== null && b.n <= left) {
          c.budget =
            watched === null && c.timerDueAt === Infinity ? left : Math.min(left, WATCH_SLICE);
          c.codeDirty = false;
          this.current = b;
          const fn = b.fn;
          const n = fn === null ? 0 : fn(c, b.entry);
          this.current = null;
          c.icount += n;
          left -= c.trapped() ? n + 1 : n;
          if (c.stopped()) break;
          continue;
        }
      }
      if (this.decoded !== null) {
        left -= runFast(c, this.decoded, left, this.heat, this.warm);
        if (c.stopped()) break;
        boundary = fastEnd.boundary;
        continue;
      }
      const pc = c.pc;
      step(c);
      left--;
      if (c.stopped()) break;
      // Sequential flow stays in the interpreter; anything else is a boundary.
      boundary = c.pc !== pc + 4 && c.pc !== pc + 2;
    }
    this.stats.walks = c.walks;
    return c.takeStop();
  }

  /** The wasm dispatcher over the core's current area (a new one for a new area). */
  private dispatcher(): WasmDispatch {
    const c = this.core;
    if (this.wasm?.area === c.area) return this.wasm;
    this.wasm = new WasmDispatch(c.area, stepHelper(c, this.stats));
    this.wasmGen = c.mapGen;
    return this.wasm;
  }

  /**
   * Runs the wasm dispatcher from compiled block `b` at c.pc with at most `left` instructions
   * (a WASM_SLICE while `sliced`); returns what is left of the budget, a trapping instruction
   * counted as attempted.
   */
  private runWasm(b: Block, left: number, sliced: boolean): number {
    const c = this.core;
    const area = c.area;
    const wd = this.dispatcher();
    if (this.wasmGen !== c.mapGen) {
      wd.clear();
      this.wasmGen = c.mapGen;
    }
    const pc = c.pc;
    // compiledAt just found or made b's virtual-pc entry: it holds the leaf size of pc.
    const vi = (c.mode << VC_BITS) | (((pc | 0) >>> 1) & (VC_SIZE - 1));
    wd.set(c.mode, pc, b.tidx, b.entry, this.vcBits[vi] ?? 12);
    // The budget word is an i32; 2^30 keeps every region's `budget - maxN` positive.
    const give = Math.min(sliced ? WASM_SLICE : left, left, 0x40000000);
    const w = area.i32;
    w[AREA.BUDGET / 4] = give;
    w[AREA.MODE / 4] = c.mode;
    w[AREA.PC / 4] = pc | 0;
    w[AREA.PC / 4 + 1] = Math.floor(pc / TWO32) | 0;
    c.codeDirty = false;
    this.inWasm = true;
    let status: number;
    try {
      status = wd.run();
    } finally {
      this.inWasm = false;
    }
    // A TLB-miss exit names its pc and the instructions its block retired before it (which the
    // region left uncharged): wasm-tier.ts `SlowExits`.
    const exit = slowExitOf(status);
    const n = give - (w[AREA.BUDGET / 4] ?? 0) + (exit < 0 ? 0 : (wd.slow.done[exit] ?? 0));
    c.icount += n;
    this.stats.wasmEntries++;
    this.stats.wasmInsns += n;
    this.stats.wasmCalls += w[AREA.CALLS / 4] ?? 0;
    w[AREA.CALLS / 4] = 0;
    if (status === ST.EXC) return left - n - 1; // pc and the trap state are set already
    if (exit < 0) c.setPcPair(w[AREA.PC / 4] ?? 0, w[AREA.PC / 4 + 1] ?? 0);
    else {
      const pc = wd.slow.pc[exit] ?? NaN;
      c.setPcPair(pc | 0, Math.floor(pc / TWO32) | 0);
    }
    if ((status & 3) === ST.SLOW) {
      // A load or store missed the TLB mirror: the interpreter runs it (refill, MMIO, trap,
      // code invalidation); entering wasm again at this pc would miss again.
      this.stats.wasmHelpers++;
      step(c);
      return left - n - 1;
    }
    return left - n;
  }

  /**
   * The compiled block at `pc` (null: none yet, or not compilable), promoting `pc` when its
   * weighing says so (`promote`). May raise a fetch fault while decoding (then `c.trapped()`).
   */
  private compiledAt(pc: number): Block | null {
    const c = this.core;
    const i = (c.mode << VC_BITS) | (((pc | 0) >>> 1) & (VC_SIZE - 1));
    const hit = this.vcBlk[i];
    const cached = hit != null && this.vcPc[i] === pc && this.vcGen[i] === c.mapGen && hit.valid;
    if (cached && (hit.fn !== null || hit.tidx >= 0)) return hit;
    // Heat stays at `warm` once promoted: a pc that was compiled goes straight back to its
    // block after the virtual-pc cache forgot it (a satp write or sfence.vma).
    const h = ((pc | 0) >>> 1) & (HEAT_SIZE - 1);
    const heat = this.heat[h] ?? 0;
    if (heat < this.warm) {
      this.heat[h] = heat + 1;
      if (heat + 1 < this.warm) return null;
    }
    const b = this.promote(pc, h) ? this.lookup() : null;
    if (b?.straddles === true && this.tier === "wasm") {
      // No block holds a page-straddling instruction: the dispatcher's step stub runs it
      // (fetched afresh every time), so regions on both sides of the page end chain in wasm;
      // the code it falls through to is as hot (as in `chain`).
      b.tidx = STEP_TIDX;
      this.markHot(pc + 4);
      return b;
    }
    if (b === null || b.interpOnly || b.straddles) {
      // Not now (or never: not compilable): the fast interpreter counts `warm` more visits
      // before it comes back here, rather than returning at every one.
      if (!c.trapped()) this.heat[h] = 0;
      return null;
    }
    if (b.fn === null && b.tidx < 0) this.compileFrom(b);
    return b;
  }

  /**
   * Weighs `pc` (heat slot `h`), which had another `warm` visits: true once its visits reach
   * `hot`, or visits × its straight-line path (measured at the first weighing) reach `hot` ×
   * HOT_PATH. May raise a fetch fault (then `c.trapped()`), as promoting would.
   */
  private promote(pc: number, h: number): boolean {
    const rounds = Math.min((this.rounds[h] ?? 0) + 1, 0xffff);
    this.rounds[h] = rounds;
    const visits = rounds * this.warm;
    if (visits >= this.hot) return true;
    let path = this.paths[h] ?? 0;
    if (path === 0) {
      path = this.straight(pc);
      this.paths[h] = path;
    }
    return visits * path >= this.hot * HOT_PATH;
  }

  /**
   * Instructions on the fall-through path from `pc` through full blocks (MAX_BLOCK long: a block
   * ends early at a jump, a SYSTEM instruction or the page end), at most STRAIGHT_CAP (1 if the
   * fetch faults). Measured, not decoded: registered blocks would cost every fence.i a
   * comparison, and unregistered ones their allocations.
   */
  private straight(pc: number): number {
    if (Number.isNaN(pc) || (pc | 0) % 2 !== 0) return 1; // step() raises the fault
    const c = this.core;
    c.ipc = pc;
    const r = fetchPage(c, pc | 0, Math.floor(pc / TWO32) | 0);
    if (r === null) return 1;
    const pageEnd = r.pa - (r.pa % 4096) + 4096;
    let n = 0;
    for (let pa = r.pa; pa < pageEnd;) {
      const size = blockSize(pa, r.slot);
      const count = size & 0xff;
      n += count;
      if (n >= STRAIGHT_CAP) return STRAIGHT_CAP;
      if (count < MAX_BLOCK) break;
      pa += size >>> 8;
    }
    return Math.max(n, 1);
  }

  /** The valid block at `pc` in the page of block `b` (decoded now if need be; null: cache full). */
  private sibling(pc: number, b: Block): Block | null {
    const pa = b.pa + (pc - b.pc);
    let tb = this.byPhys.get(pa);
    if (tb?.pc !== pc || !tb.valid) {
      if (this.byPhys.size >= MAX_BLOCKS - this.regionBlocks) return null;
      tb = decodeBlock(pc, pa, b.slot);
      this.register(tb);
    }
    return tb;
  }

  /**
   * Marks the straight-line continuations of `region` that it does not hold (after a full
   * block cut off by the region's size limits or the page end) for promotion at their first
   * visit: the code right after a hot full block is as hot (an unrolled loop body runs region
   * after region, across pages), and pcs reached only by falling through are never boundaries
   * in the fast interpreter, so they would never heat up.
   */
  private chain(region: readonly Block[]): void {
    const inRegion = new Set(region.map((rb) => rb.pc));
    for (const rb of region) {
      const next = rb.pc + rb.bytes;
      // A block also stops 2 bytes before the page end at an instruction straddling it
      // (decodeBlock), which the wasm tier runs in its step stub (compiledAt).
      const end = (rb.pa + rb.bytes) % 4096;
      const full = rb.n === MAX_BLOCK || end === 0 || end === 4094;
      const last = (rb.insns[rb.n - 1] ?? 0) & 0x7f;
      if (!full || last === 0x6f || last === 0x67 || rb.interpOnly || inRegion.has(next)) continue;
      this.markHot(next);
    }
  }

  /** Makes the next boundary visit of `pc` promote it (its heat at `warm`, one round short). */
  private markHot(pc: number): void {
    const h = ((pc | 0) >>> 1) & (HEAT_SIZE - 1);
    this.heat[h] = this.warm;
    this.rounds[h] = Math.max(this.rounds[h] ?? 0, Math.ceil(this.hot / this.warm) - 1);
  }

  /**
   * Compiles the region of hot block `b`: the blocks reachable from it through static targets
   * inside the same virtual page (hence the same physical page: they are invalidated together),
   * decoding the ones not seen yet, breadth first, within the region size limits.
   */
  private compileFrom(b: Block): void {
    const t0 = performance.now();
    const page = b.pc - (b.pc % 4096);
    const region = [b];
    const seen = new Set([b.pc]);
    let insns = b.n;
    for (let i = 0; i < region.length && region.length < this.regionBlocks; i++) {
      const from = region[i];
      if (from === undefined) break;
      for (const t of staticTargets(from)) {
        if (seen.has(t) || t - (t % 4096) !== page || region.length >= this.regionBlocks) continue;
        seen.add(t);
        const tb = this.sibling(t, b);
        if (tb === null) continue;
        if (tb.interpOnly || insns + tb.n > this.regionInsns) continue;
        insns += tb.n;
        region.push(tb);
      }
    }
    if (this.tier === "wasm") {
      const c = this.core;
      const wd = this.dispatcher();
      const tidx = wd.add(compileWasmRegion(region, c, this.stats, wd.slow));
      region.forEach((rb, i) => {
        rb.tidx = tidx;
        rb.entry = i;
      });
    } else {
      const fn = compileRegion(region, this.core);
      region.forEach((rb, i) => {
        rb.fn = fn;
        rb.entry = i;
      });
    }
    this.chain(region);
    this.stats.compiled++;
    this.stats.compileMs += performance.now() - t0;
  }
}
