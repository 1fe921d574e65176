/**
 * Guest RAM and hart state in one WebAssembly.Memory, so compiled regions reach registers, the
 * soft TLBs, the dispatch cache and guest RAM with plain wasm loads and stores (DESIGN.md §9).
 *
 * Layout of a guest memory (`allocWasmRam`), all offsets in bytes:
 *
 *     0                      HART_AREA × MAX_HARTS: one area per hart id (below)
 *     HEADER_BYTES (4 MiB)   guest RAM, `bytes` long (the Uint8Array the VMM gets)
 *
 * Layout of one hart area (64 KiB, `AREA`): x0..x31 as i64 (the same bytes as `Core.x`'s
 * lo/hi pairs), the next pc and a helper's loaded value (i64), the instruction budget the
 * dispatcher may spend, the privilege mode, the area's owner word, the dispatcher's count of
 * region calls (the engine takes and zeroes it after each run); then the read and write
 * TLB mirrors (tag lo, tag hi, i32 addend: wasm address = guest address low word + addend)
 * and the dispatch cache (per mode, pc lo, pc hi, table index, entry block).
 *
 * A hart whose memslots are not in such a memory (a caller's own Uint8Array, RAM above
 * `WASM_RAM_MAX`) keeps a private one-area memory: its compiled regions miss the wasm TLB
 * and take the JS slow path for every access, with the same results.
 */
import { isMemory, newMemory, WASM_MAX_PAGES, type WasmMemory } from "./wasm-api.js";

/** Byte offsets inside a hart area. */
export const AREA = {
  X: 0,
  PC: 256,
  VAL: 264,
  BUDGET: 272,
  MODE: 276,
  OWNER: 280,
  CALLS: 284,
  R_TAG: 0x1000,
  R_ADD: 0x1800,
  W_TAG: 0x2000,
  W_ADD: 0x2800,
  DC_LO: 0x8000,
  DC_HI: 0xa000,
  DC_TIDX: 0xc000,
  DC_ENTRY: 0xe000,
} as const;
/** Bytes per hart area: one wasm page. */
export const HART_AREA = 0x10000;
/** Dispatch cache entries per privilege mode (the cache holds 2 × this). */
export const DC_ENTRIES = 1024;
/** Hart ids with an area in a guest memory: the soft VM's MAX_VCPUS (shared.ts). */
export const MAX_HARTS = 64;
/** Bytes before guest RAM in a guest memory. */
export const HEADER_BYTES = HART_AREA * MAX_HARTS;
/** The most guest RAM one wasm memory holds: 4 GiB (Node 20's wasm32 limit) minus the header. */
export const WASM_RAM_MAX = WASM_MAX_PAGES * 65536 - HEADER_BYTES;

/** Memories of guest RAM by their buffer, so a hart finds the memory of a memslot's bytes. */
const registry = new WeakMap<object, WasmMemory>();

/**
 * Zeroed guest RAM of `bytes` (≤ WASM_RAM_MAX) inside a new shared wasm memory, after the
 * hart areas. The RAM's offset (HEADER_BYTES) keeps it page aligned.
 */
export function allocWasmRam(bytes: number): Uint8Array {
  const mem = newMemory(Math.ceil((HEADER_BYTES + bytes) / 65536));
  registerWasmMemory(mem);
  return new Uint8Array(mem.buffer, HEADER_BYTES, bytes);
}

/**
 * Makes `mem` findable from its buffer (a worker calls it for a memory it was posted);
 * returns it, or undefined if it is not a WebAssembly.Memory.
 */
export function registerWasmMemory(mem: unknown): WasmMemory | undefined {
  if (!isMemory(mem)) return undefined;
  registry.set(mem.buffer, mem);
  return mem;
}

/** The wasm memory whose buffer `bytes` views, if it is a guest memory. */
export function wasmMemoryOf(bytes: ArrayBufferView): WasmMemory | undefined {
  return registry.get(bytes.buffer);
}

/** A token no other live area holds (any non-zero value differing per Core works). */
let nextToken = 1;

/** One hart's area: the views the hart and its compiled code use. */
export class HartArea {
  readonly mem: WasmMemory;
  /** Offset of the area in `mem` (baked into compiled code as constant addresses). */
  readonly base: number;
  /** The whole area as words. */
  readonly i32: Int32Array;
  /** x0..x31 as (lo, hi) pairs. */
  readonly x: Int32Array;
  /** next pc (lo, hi), a helper's loaded value (lo, hi). */
  readonly xfer: Int32Array;
  private readonly token: number;

  private constructor(mem: WasmMemory, base: number, token: number) {
    this.mem = mem;
    this.base = base;
    this.token = token;
    this.i32 = new Int32Array(mem.buffer, base, HART_AREA / 4);
    this.x = new Int32Array(mem.buffer, base + AREA.X, 64);
    this.xfer = new Int32Array(mem.buffer, base + AREA.PC, 4);
  }

  /** A hart's own one-area memory (no guest RAM in it). */
  static private(): HartArea {
    return new HartArea(newMemory(1), 0, 0);
  }

  /**
   * Claims hart `hartId`'s area in guest memory `mem`; null if the id has no area or another
   * live hart holds it (two VMs given the same buffer), which then keeps its private area.
   */
  static claim(mem: WasmMemory, hartId: number): HartArea | null {
    if (!Number.isInteger(hartId) || hartId < 0 || hartId >= MAX_HARTS) return null;
    const base = hartId * HART_AREA;
    const token = nextToken++ & 0x7fffffff || 1;
    const words = new Int32Array(mem.buffer, base, HART_AREA / 4);
    if (Atomics.compareExchange(words, AREA.OWNER / 4, 0, token) !== 0) return null;
    return new HartArea(mem, base, token);
  }

  /** True if this area lives in a guest memory (rather than a private one). */
  get shared(): boolean {
    return this.token !== 0;
  }

  /** Gives the area back (its hart moved elsewhere). */
  release(): void {
    if (this.token !== 0) Atomics.compareExchange(this.i32, AREA.OWNER / 4, this.token, 0);
  }
}
