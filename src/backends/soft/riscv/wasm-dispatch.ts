/**
 * The wasm dispatcher of one hart: a loop in wasm that checks the budget word, looks the PC
 * word up in the dispatch cache (direct-mapped per privilege mode, in the hart's area) and
 * calls the region found there through the hart's table (`call_indirect`), so control goes
 * from region to region without returning to JS (a return to a JS dispatcher measured ~34 ns
 * per block: prototypes/wasm-jit). It returns to the run loop (engine.ts) on a cache miss, at
 * the budget's end, or with a region's EXC/DIRTY status.
 *
 * The cache holds virtual pcs; the engine fills an entry when it finds a compiled block at a
 * pc, drops the entries of invalidated blocks and those inside a leaf fenced by `sfence.vma addr`
 * (each entry records its leaf's size), and empties it when the address map changes
 * (`Core.mapGen`) or the code is flushed. The privilege mode picks the half, so a region is
 * never entered in a mode it was not looked up (and fetch-checked) in.
 *
 * Table entry STEP_TIDX is not a region but a stub that calls the engine's step helper
 * (wasm-tier.ts `stepHelper`): the interpreter runs the one instruction at the PC word, fetched
 * afresh. The engine sends page-straddling instructions there, which no block holds: from the
 * end of one page's region the dispatcher then goes on to the next page's without a return to
 * the run loop (Linux 6.1 boot: 5.1 K of 57.5 K returns were the two straddling instructions in
 * blake2s_compress_generic's unrolled body).
 */
import { MAX_BLOCK } from "./block.js";
import { TWO32 } from "./i64.js";
import { FnBuilder, OP, T, encodeModule } from "./wasm-encode.js";
import { instantiate, newTable, type WasmInstance, type WasmTable } from "./wasm-api.js";
import { AREA, DC_ENTRIES, type HartArea } from "./wasm-memory.js";
import { REGION_TYPE, SlowExits, type WasmRegion } from "./wasm-tier.js";

/** log2 of DC_ENTRIES: the mode's half of the cache starts at mode << DC_BITS. */
const DC_BITS = Math.log2(DC_ENTRIES);
/**
 * The cache index of a pc is the top DC_BITS bits of (pc bits 1..32) × DC_MUL (Fibonacci
 * hashing: 2^32 / the golden ratio, odd). Indexing by pc bits 1..10 mapped every pc to the same
 * entry as the pcs 2 KiB and 4 KiB away: in a Linux 6.1 boot the unrolled body of
 * blake2s_compress_generic has its regions at the same offsets of consecutive pages, and
 * their entries evicted each other on every iteration.
 */
const DC_MUL = 0x9e3779b1;

/** The cache entry of low pc word `lo` in privilege mode `mode` (the dispatcher's hash). */
function dcIndex(mode: number, lo: number): number {
  return (mode << DC_BITS) | (Math.imul(lo >>> 1, DC_MUL) >>> (32 - DC_BITS));
}
/** A pc tag no instruction has (odd), for empty entries. */
const DC_EMPTY = 1;
/** First table size; it doubles as regions are added. */
const TABLE_START = 256;
/** Table index of the step stub (see the module comment); regions follow it. */
export const STEP_TIDX = 0;

/** The step stub: a region-typed function that returns what the imported helper `sx` does. */
function stubModule(): Uint8Array {
  const f = new FnBuilder(1);
  f.idx(OP.call, 0);
  return encodeModule([REGION_TYPE, [[], [T.i32]]], [{ name: "sx", type: 1 }], 0, f);
}

/** The exported `run` of `inst`, a function by construction of its module. */
function runOf(inst: WasmInstance, what: string): (...args: number[]) => number {
  const run = inst.exports.run;
  if (typeof run !== "function") throw new Error(`wasm tier: the ${what} exports no run()`);
  return run as (...args: number[]) => number; // shape fixed by the module's type
}

/** The dispatcher's code for the area at `base`. */
function dispatcherModule(base: number): Uint8Array {
  const f = new FnBuilder(0);
  const lo = f.local(T.i32);
  const h = f.local(T.i32);
  const st = f.local(T.i32);
  const at = (opcode: number, off: number): void => {
    f.mem(opcode, 2, base + off);
  };
  f.open(OP.loop, "next");
  // A region's first block runs before it compares done with the budget: keep MAX_BLOCK.
  f.i32(0);
  at(OP.i32Load, AREA.BUDGET);
  f.i32(MAX_BLOCK).op(OP.i32LtS).open(OP.if).i32(0).op(OP.ret).end();
  f.i32(0);
  at(OP.i32Load, AREA.PC);
  f.idx(OP.localTee, lo)
    .i32(1)
    .op(OP.i32ShrU)
    .i32(DC_MUL)
    .op(OP.i32Mul)
    .i32(32 - DC_BITS)
    .op(OP.i32ShrU);
  f.i32(0);
  at(OP.i32Load, AREA.MODE);
  f.i32(DC_BITS).op(OP.i32Shl, OP.i32Or).i32(2).op(OP.i32Shl).idx(OP.localTee, h);
  at(OP.i32Load, AREA.DC_LO);
  f.idx(OP.localGet, lo).op(OP.i32Ne).open(OP.if).i32(0).op(OP.ret).end();
  f.idx(OP.localGet, h);
  at(OP.i32Load, AREA.DC_HI);
  f.i32(0);
  at(OP.i32Load, AREA.PC + 4);
  f.op(OP.i32Ne).open(OP.if).i32(0).op(OP.ret).end();
  // Region calls, for the engine's statistics (a region's own loops and in-region returns
  // never come back here).
  f.i32(0).i32(0);
  at(OP.i32Load, AREA.CALLS);
  f.i32(1).op(OP.i32Add);
  at(OP.i32Store, AREA.CALLS);
  f.idx(OP.localGet, h);
  at(OP.i32Load, AREA.DC_ENTRY);
  f.idx(OP.localGet, h);
  at(OP.i32Load, AREA.DC_TIDX);
  f.callIndirect(0).idx(OP.localTee, st);
  f.open(OP.if).idx(OP.localGet, st).op(OP.ret).end();
  f.br("next");
  f.end();
  f.i32(0);
  return encodeModule([REGION_TYPE, [[], [T.i32]]], [], 1, f, true);
}

/** One hart's dispatcher, table and dispatch cache. */
export class WasmDispatch {
  readonly area: HartArea;
  /** Runs regions from the PC word until a miss, the budget's end or a status. */
  readonly run: () => number;
  /** The TLB-miss exits of the regions in the table (wasm-tier.ts `SlowExits`). */
  readonly slow = new SlowExits();
  private readonly table: WasmTable;
  private used = 0;
  private readonly lo: Int32Array;
  private readonly hi: Int32Array;
  private readonly tidx: Int32Array;
  private readonly entry: Int32Array;
  /** log2 of the size of the leaf each entry's pc was translated through (JS side only). */
  private readonly bits = new Uint8Array(2 * DC_ENTRIES);

  /**
   * `step` runs the instruction at the PC word for the step stub and returns an ST status
   * (wasm-tier.ts `stepHelper`).
   */
  constructor(area: HartArea, step: () => number) {
    this.area = area;
    this.table = newTable(TABLE_START);
    const inst = instantiate(dispatcherModule(area.base), { mem: area.mem, tbl: this.table });
    this.run = runOf(inst, "dispatcher");
    this.table.set(
      STEP_TIDX,
      runOf(instantiate(stubModule(), { mem: area.mem, sx: step }), "stub"),
    );
    this.used = STEP_TIDX + 1;
    const n = 2 * DC_ENTRIES;
    this.lo = area.i32.subarray(AREA.DC_LO / 4, AREA.DC_LO / 4 + n);
    this.hi = area.i32.subarray(AREA.DC_HI / 4, AREA.DC_HI / 4 + n);
    this.tidx = area.i32.subarray(AREA.DC_TIDX / 4, AREA.DC_TIDX / 4 + n);
    this.entry = area.i32.subarray(AREA.DC_ENTRY / 4, AREA.DC_ENTRY / 4 + n);
    this.clear();
  }

  /** Regions in the table. */
  get regions(): number {
    return this.used - STEP_TIDX - 1;
  }

  /** Adds a region to the table; returns its index. */
  add(fn: WasmRegion): number {
    if (this.used === this.table.length) this.table.grow(this.table.length);
    this.table.set(this.used, fn);
    return this.used++;
  }

  /**
   * Sends pc (a signed double) in `mode` to entry block `entry` of region `tidx`; pc was
   * translated through a leaf of 2^`bits` bytes.
   */
  set(mode: number, pc: number, tidx: number, entry: number, bits: number): void {
    const lo = pc | 0;
    const i = dcIndex(mode, lo);
    this.bits[i] = bits;
    this.lo[i] = lo;
    this.hi[i] = Math.floor(pc / TWO32) | 0;
    this.tidx[i] = tidx;
    this.entry[i] = entry;
  }

  /** Forgets pc in both modes (its block was invalidated). */
  drop(pc: number): void {
    const lo = pc | 0;
    const hi = Math.floor(pc / TWO32) | 0;
    for (const mode of [0, 1]) {
      const i = dcIndex(mode, lo);
      if (this.lo[i] === lo && this.hi[i] === hi) this.lo[i] = DC_EMPTY;
    }
  }

  /** Forgets the pcs inside the leaf that mapped virtual address `va` (sfence.vma addr). */
  fenceVa(va: number): void {
    for (let i = 0; i < 2 * DC_ENTRIES; i++) {
      const lo = this.lo[i] ?? DC_EMPTY;
      if (lo === DC_EMPTY) continue;
      const size = 2 ** (this.bits[i] ?? 12);
      const pc = (this.hi[i] ?? 0) * TWO32 + (lo >>> 0);
      if (Math.floor(pc / size) === Math.floor(va / size)) this.lo[i] = DC_EMPTY;
    }
  }

  /** Empties the cache (the address map changed). */
  clear(): void {
    this.lo.fill(DC_EMPTY);
  }

  /** Empties the cache and the table of regions (every region was dropped); keeps the stub. */
  reset(): void {
    this.clear();
    for (let i = STEP_TIDX + 1; i < this.used; i++) this.table.set(i, null); // let the old modules go
    this.used = STEP_TIDX + 1;
    this.slow.clear();
  }
}
