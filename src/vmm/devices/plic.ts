/**
 * The RISC-V Platform-Level Interrupt Controller (`riscv,plic0` / `sifive,plic-1.0.0`), with
 * one context per hart: that hart's S-mode external interrupt (context n = hart n; the device
 * tree's `interrupts-extended` lists <&cpuN_intc 9> in hart order).
 *
 * Register map (RISC-V PLIC Specification 1.0.0, §3–§8), 32-bit registers:
 *   0x000000 + 4·i          priority of source i (source 0 does not exist: reads 0)
 *   0x001000 + 4·w          pending bits, sources 32w … 32w+31 (read-only)
 *   0x002000 + 0x80·c + 4·w enable bits of context c
 *   0x200000 + 0x1000·c     priority threshold of context c
 *   0x200004 + 0x1000·c     claim (read) / complete (write) of context c
 * Other offsets read 0 and ignore writes; 8-byte accesses act as two 32-bit ones, narrower
 * ones read 0 and are ignored (the spec allows only 32-bit accesses).
 *
 * Gateways are level-triggered (spec §5): a source whose line is high becomes pending unless
 * it is already pending or claimed; a claim clears its pending bit and marks it in flight;
 * a completion ends the flight and, if the line is still high, makes it pending again. A
 * completion for a source not enabled in that context is ignored (§9). A claim takes the
 * pending, enabled source with the highest priority above the threshold, ties to the lowest
 * id (§6), or returns 0. A context's output is high while such a source exists.
 *
 * Sources: `sources` (default 95, as QEMU virt's `riscv,ndev`; kvmtool uses 1023) numbered
 * 1 … sources. Priorities have 3 bits (1 … 7, as QEMU virt; 0 = never interrupts).
 */
import { StateWriter, stateReader } from "./state.js";
import type { Device, DeviceState, IrqLine, MmioDevice } from "./types.js";

/** Size of the PLIC's MMIO window on QEMU virt (0x0c000000 … 0x0c5fffff): 1024 contexts. */
export const PLIC_MMIO_SIZE = 0x600000;
/** Default number of interrupt sources (QEMU virt's `riscv,ndev`). */
export const PLIC_DEFAULT_SOURCES = 95;
/** Highest priority a source can have (3 priority bits, as QEMU virt). */
export const PLIC_MAX_PRIORITY = 7;

const PENDING_BASE = 0x1000;
const ENABLE_BASE = 0x2000;
const ENABLE_STRIDE = 0x80;
const CONTEXT_BASE = 0x200000;
const CONTEXT_STRIDE = 0x1000;
/** Spec §1: at most 1023 sources and 15872 contexts; our window holds 1024 contexts. */
const MAX_SOURCES = 1023;
const MAX_CONTEXTS = (PLIC_MMIO_SIZE - CONTEXT_BASE) / CONTEXT_STRIDE;
const STATE_VERSION = 1;

/** Options of a PLIC. */
export interface PlicOptions {
  /** Device name in snapshots (default "plic"). */
  readonly name?: string;
  /** Number of sources, 1 … 1023 (default 95). */
  readonly sources?: number;
  /** One output per context (hart order): the machine wires each to a hart's external interrupt. */
  readonly outputs: readonly IrqLine[];
}

/** A level-triggered PLIC; see the module header. */
export class Plic implements MmioDevice, Device {
  readonly name: string;
  /** Number of sources (ids 1 … sources). */
  readonly sources: number;
  /** Number of contexts. */
  readonly contexts: number;
  private readonly outputs: readonly IrqLine[];
  private readonly words: number;
  /** Index = source id; entry 0 unused. */
  private priority: Uint8Array;
  private level: Uint8Array;
  private pending: Uint8Array;
  private claimed: Uint8Array;
  /** contexts × words enable words. */
  private enable: Uint32Array;
  private threshold: Uint8Array;
  private outputLevel: boolean[];

  /** @throws RangeError when `sources` or the number of outputs is out of range. */
  constructor(options: PlicOptions) {
    const sources = options.sources ?? PLIC_DEFAULT_SOURCES;
    if (!Number.isInteger(sources) || sources < 1 || sources > MAX_SOURCES)
      throw new RangeError(`Cannot create a PLIC with ${sources} sources: use 1 … ${MAX_SOURCES}`);
    const contexts = options.outputs.length;
    if (contexts < 1 || contexts > MAX_CONTEXTS)
      throw new RangeError(
        `Cannot create a PLIC with ${contexts} contexts: use 1 … ${MAX_CONTEXTS}`,
      );
    this.name = options.name ?? "plic";
    this.sources = sources;
    this.contexts = contexts;
    this.outputs = options.outputs;
    this.words = Math.ceil((sources + 1) / 32);
    this.priority = new Uint8Array(sources + 1);
    this.level = new Uint8Array(sources + 1);
    this.pending = new Uint8Array(sources + 1);
    this.claimed = new Uint8Array(sources + 1);
    this.enable = new Uint32Array(contexts * this.words);
    this.threshold = new Uint8Array(contexts);
    this.outputLevel = new Array<boolean>(contexts).fill(false);
  }

  /**
   * The interrupt line of `source` for a device to drive.
   * @throws RangeError when `source` is not 1 … sources.
   */
  irqLine(source: number): IrqLine {
    if (!Number.isInteger(source) || source < 1 || source > this.sources)
      throw new RangeError(`PLIC source ${source} does not exist: use 1 … ${this.sources}`);
    return {
      set: (level: boolean) => {
        this.setSource(source, level);
      },
    };
  }

  /** Whether context `ctx`'s output is asserted. */
  outputAsserted(ctx: number): boolean {
    return this.outputLevel[ctx] ?? false;
  }

  private setSource(source: number, level: boolean): void {
    this.level[source] = level ? 1 : 0;
    if (level && this.claimed[source] === 0 && this.pending[source] === 0) {
      this.pending[source] = 1;
      this.update();
    }
    // A level gateway forgets a request whose line drops before it was claimed (as QEMU's
    // sifive_plic and kvmtool do), so a deasserted device raises no stale interrupt.
    if (!level && this.pending[source] === 1) {
      this.pending[source] = 0;
      this.update();
    }
  }

  private enabled(ctx: number, source: number): boolean {
    const word = this.enable[ctx * this.words + (source >>> 5)] ?? 0;
    return ((word >>> (source & 31)) & 1) === 1;
  }

  /** The source a claim by `ctx` would take, or 0. */
  private best(ctx: number): number {
    const threshold = this.threshold[ctx] ?? 0;
    let best = 0;
    let bestPriority = threshold;
    for (let s = 1; s <= this.sources; s++) {
      if (this.pending[s] !== 1 || !this.enabled(ctx, s)) continue;
      const p = this.priority[s] ?? 0;
      if (p > bestPriority) {
        best = s;
        bestPriority = p;
      }
    }
    return best;
  }

  private update(): void {
    for (let ctx = 0; ctx < this.contexts; ctx++) {
      const level = this.best(ctx) !== 0;
      if (level !== this.outputLevel[ctx]) {
        this.outputLevel[ctx] = level;
        this.outputs[ctx]?.set(level);
      }
    }
  }

  private claim(ctx: number): number {
    const source = this.best(ctx);
    if (source !== 0) {
      this.pending[source] = 0;
      this.claimed[source] = 1;
      this.update();
    }
    return source;
  }

  private complete(ctx: number, source: number): void {
    if (source < 1 || source > this.sources || !this.enabled(ctx, source)) return;
    if (this.claimed[source] !== 1) return;
    this.claimed[source] = 0;
    if (this.level[source] === 1) this.pending[source] = 1;
    this.update();
  }

  private read32(offset: number): number {
    if (offset < PENDING_BASE) {
      const source = offset >>> 2;
      return source <= this.sources ? (this.priority[source] ?? 0) : 0;
    }
    if (offset < ENABLE_BASE) {
      const word = (offset - PENDING_BASE) >>> 2;
      return word < this.words ? this.bits(this.pending, word) : 0;
    }
    if (offset < CONTEXT_BASE) {
      const ctx = Math.floor((offset - ENABLE_BASE) / ENABLE_STRIDE);
      const word = ((offset - ENABLE_BASE) % ENABLE_STRIDE) >>> 2;
      if (ctx >= this.contexts || word >= this.words) return 0;
      return this.enable[ctx * this.words + word] ?? 0;
    }
    const ctx = Math.floor((offset - CONTEXT_BASE) / CONTEXT_STRIDE);
    if (ctx >= this.contexts) return 0;
    const reg = (offset - CONTEXT_BASE) % CONTEXT_STRIDE;
    if (reg === 0) return this.threshold[ctx] ?? 0;
    if (reg === 4) return this.claim(ctx);
    return 0;
  }

  private write32(offset: number, value: number): void {
    if (offset < PENDING_BASE) {
      const source = offset >>> 2;
      if (source >= 1 && source <= this.sources) {
        this.priority[source] = Math.min(value >>> 0, PLIC_MAX_PRIORITY);
        this.update();
      }
      return;
    }
    if (offset < ENABLE_BASE) return; // pending bits are read-only
    if (offset < CONTEXT_BASE) {
      const ctx = Math.floor((offset - ENABLE_BASE) / ENABLE_STRIDE);
      const word = ((offset - ENABLE_BASE) % ENABLE_STRIDE) >>> 2;
      if (ctx >= this.contexts || word >= this.words) return;
      this.enable[ctx * this.words + word] = (value & this.enableMask(word)) >>> 0;
      this.update();
      return;
    }
    const ctx = Math.floor((offset - CONTEXT_BASE) / CONTEXT_STRIDE);
    if (ctx >= this.contexts) return;
    const reg = (offset - CONTEXT_BASE) % CONTEXT_STRIDE;
    if (reg === 0) {
      this.threshold[ctx] = Math.min(value >>> 0, PLIC_MAX_PRIORITY);
      this.update();
    } else if (reg === 4) {
      this.complete(ctx, value >>> 0);
    }
  }

  /** Enable bits that exist in `word`: source 0 and ids above `sources` are hard-wired to 0. */
  private enableMask(word: number): number {
    let mask = 0xffffffff;
    if (word === 0) mask &= ~1;
    const top = this.sources - word * 32;
    if (top < 31) mask &= 2 ** (top + 1) - 1;
    return mask >>> 0;
  }

  private bits(flags: Uint8Array, word: number): number {
    let v = 0;
    for (let b = 0; b < 32; b++) if (flags[word * 32 + b] === 1) v |= 1 << b;
    return v >>> 0;
  }

  /** MMIO read: 32-bit registers; 8 bytes read two of them; other sizes read 0. */
  mmioRead(offset: number, data: Uint8Array): void {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    data.fill(0);
    if ((offset & 3) !== 0 || (data.length !== 4 && data.length !== 8)) return;
    for (let i = 0; i < data.length; i += 4) view.setUint32(i, this.read32(offset + i), true);
  }

  /** MMIO write: 32-bit registers; 8 bytes write two of them; other sizes are ignored. */
  mmioWrite(offset: number, data: Uint8Array): void {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if ((offset & 3) !== 0 || (data.length !== 4 && data.length !== 8)) return;
    for (let i = 0; i < data.length; i += 4) this.write32(offset + i, view.getUint32(i, true));
  }

  /** The PLIC's whole state: priorities, levels, pending and claimed bits, enables, thresholds. */
  save(): DeviceState {
    const w = new StateWriter().u32(this.sources).u32(this.contexts);
    w.bytes(this.priority).bytes(this.level).bytes(this.pending).bytes(this.claimed);
    for (const word of this.enable) w.u32(word);
    w.bytes(this.threshold);
    return { version: STATE_VERSION, bytes: w.finish() };
  }

  /**
   * Replaces the PLIC's state and drives every context output to match it.
   * @throws DeviceStateError on an unknown version, malformed bytes or a state saved from a
   *   PLIC with other source/context counts (the PLIC is then unchanged).
   */
  restore(state: DeviceState): void {
    const r = stateReader(this.name, state, STATE_VERSION);
    const sources = r.u32("the number of sources");
    const contexts = r.u32("the number of contexts");
    if (sources !== this.sources || contexts !== this.contexts) {
      throw r.fail(
        `it was saved with ${sources} sources and ${contexts} contexts, this PLIC has ` +
          `${this.sources} and ${this.contexts}`,
      );
    }
    const n = sources + 1;
    const flags = (what: string, max: number): Uint8Array => {
      const v = r.bytes(what, n);
      if (v.length !== n) throw r.fail(`${what} has ${v.length} entries, not ${n}`);
      if (v[0] !== 0) throw r.fail(`${what} sets source 0`);
      if (v.some((x) => x > max)) throw r.fail(`${what} holds a value above ${max}`);
      return v;
    };
    const priority = flags("priorities", PLIC_MAX_PRIORITY);
    const level = flags("line levels", 1);
    const pending = flags("pending bits", 1);
    const claimed = flags("claimed bits", 1);
    const enable = new Uint32Array(this.enable.length);
    for (let i = 0; i < enable.length; i++) enable[i] = r.u32("enable bits");
    const threshold = r.bytes("thresholds", contexts);
    r.end();
    if (threshold.length !== contexts || threshold.some((t) => t > PLIC_MAX_PRIORITY))
      throw r.fail("thresholds are malformed");
    if (pending.some((p, i) => p === 1 && claimed[i] === 1))
      throw r.fail("a source is both pending and claimed");
    if (enable.some((e, i) => (e & ~this.enableMask(i % this.words)) !== 0))
      throw r.fail("enable bits are set for sources that do not exist");
    this.priority = priority;
    this.level = level;
    this.pending = pending;
    this.claimed = claimed;
    this.enable = enable;
    this.threshold = threshold;
    for (let ctx = 0; ctx < contexts; ctx++) {
      const lvl = this.best(ctx) !== 0;
      this.outputLevel[ctx] = lvl;
      this.outputs[ctx]?.set(lvl);
    }
  }
}
