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
 */
import { MAX_BLOCK } from "./block.js";
import { TWO32 } from "./i64.js";
import { FnBuilder, OP, T, encodeModule } from "./wasm-encode.js";
import { instantiate, newTable, type WasmTable } from "./wasm-api.js";
import { AREA, DC_ENTRIES, type HartArea } from "./wasm-memory.js";
import { REGION_TYPE, type WasmRegion } from "./wasm-tier.js";

/** log2 of DC_ENTRIES: the mode's half of the cache starts at mode << DC_BITS. */
const DC_BITS = Math.log2(DC_ENTRIES);
/** A pc tag no instruction has (odd), for empty entries. */
const DC_EMPTY = 1;
/** First table size; it doubles as regions are added. */
const TABLE_START = 256;

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
    .i32(DC_ENTRIES - 1)
    .op(OP.i32And);
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
  private readonly table: WasmTable;
  private used = 0;
  private readonly lo: Int32Array;
  private readonly hi: Int32Array;
  private readonly tidx: Int32Array;
  private readonly entry: Int32Array;
  /** log2 of the size of the leaf each entry's pc was translated through (JS side only). */
  private readonly bits = new Uint8Array(2 * DC_ENTRIES);

  constructor(area: HartArea) {
    this.area = area;
    this.table = newTable(TABLE_START);
    const inst = instantiate(dispatcherModule(area.base), { mem: area.mem, tbl: this.table });
    const run = inst.exports.run;
    if (typeof run !== "function") throw new Error("wasm tier: the dispatcher exports no run()");
    this.run = run as () => number; // shape fixed by dispatcherModule's type 1
    const n = 2 * DC_ENTRIES;
    this.lo = area.i32.subarray(AREA.DC_LO / 4, AREA.DC_LO / 4 + n);
    this.hi = area.i32.subarray(AREA.DC_HI / 4, AREA.DC_HI / 4 + n);
    this.tidx = area.i32.subarray(AREA.DC_TIDX / 4, AREA.DC_TIDX / 4 + n);
    this.entry = area.i32.subarray(AREA.DC_ENTRY / 4, AREA.DC_ENTRY / 4 + n);
    this.clear();
  }

  /** Regions in the table. */
  get regions(): number {
    return this.used;
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
    const i = (mode << DC_BITS) | ((lo >>> 1) & (DC_ENTRIES - 1));
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
      const i = (mode << DC_BITS) | ((lo >>> 1) & (DC_ENTRIES - 1));
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

  /** Empties the cache and the table (every region was dropped). */
  reset(): void {
    this.clear();
    for (let i = 0; i < this.used; i++) this.table.set(i, null); // let the old modules go
    this.used = 0;
  }
}
