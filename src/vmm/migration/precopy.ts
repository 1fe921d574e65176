/**
 * Pre-copy of guest RAM over the dirty log (DESIGN.md §4), the algorithm QEMU's RAM migration
 * made standard: round 1 sends every page while the guest runs, each later round sends the pages
 * the guest wrote during the previous one (`Vm.getDirtyLog`: read and cleared, KVM_GET_DIRTY_LOG
 * semantics on both backends), until the pages still dirty could be sent within the downtime
 * limit at the bandwidth measured so far; then the caller pauses the vCPUs and `finish()` sends
 * the rest. A page is copied out of guest RAM only after the log that named it was read and
 * cleared, so a write racing with the copy marks the page again for the next round.
 *
 * All-zero pages travel as an 8-byte entry with the zero flag (the destination's RAM starts
 * zeroed, and a page the guest cleared must become zero there too). While the guest runs, data
 * pages are copied into the frame: a guest write after the CRC was computed would otherwise
 * corrupt the frame. The last pages, sent with every vCPU paused, are not copied at all
 * (`finish`).
 */
import { Buffer } from "node:buffer";
import type { GuestMemory } from "../../backends/vcpu.js";
import { encodeRoundFrame, MAX_PAGES_PER_FRAME, PAGE_BYTES, PagesFrame } from "./stream.js";
import type { RamSlot } from "./transport.js";

/** The part of a VM pre-copy reads: RAM regions and their dirty logs. */
export interface DirtyRam {
  readonly memory: readonly GuestMemory[];
  getDirtyLog(slot: number): Uint8Array;
}

/** Limits of a pre-copy. */
export interface PrecopyOptions {
  /** The pause the guest may see at switchover (`--downtime-limit`), ms. */
  readonly downtimeLimitMs: number;
  /** Bytes per second at most (`--max-bandwidth`); undefined: as fast as the peer takes them. */
  readonly maxBandwidth?: number;
  /**
   * Rounds after which the switchover happens even if the dirty set does not fit the limit (a
   * guest that dirties faster than the link carries would never converge).
   */
  readonly maxRounds: number;
  /**
   * Waits at the end of round `round` (its ROUND frame written) until the round has really
   * been delivered; the round's time, and so the bandwidth, includes the wait.
   */
  readonly settle?: (round: number) => Promise<void>;
  /** Called after every round. */
  readonly onRound?: (progress: PrecopyProgress) => void;
  /**
   * Which pages of `view` were ever touched (./native-io.ts `touchedPages`): round 1 sends a
   * page never touched as a zero page without reading it. False: unknown, every page is read.
   */
  readonly touched?: (view: Uint8Array, out: Uint8Array) => boolean;
}

/** Where a pre-copy is. */
export interface PrecopyProgress {
  readonly round: number;
  /** Stream bytes written so far. */
  readonly transferredBytes: number;
  /** Pages sent so far (zero pages included). */
  readonly pagesSent: number;
  readonly zeroPages: number;
  /** Pages of guest RAM in all. */
  readonly totalPages: number;
  /** Pages the guest dirtied during the last round. */
  readonly dirtyPages: number;
  /** Measured bytes per second of the last round. */
  readonly bandwidth: number;
  /**
   * Pages the guest dirtied during each round so far, in order: whether more rounds shrink
   * the set (a guest that rewrites its whole working set within one round never converges).
   */
  readonly dirtyByRound: readonly number[];
  /** What sending the dirty set would take at the measured bandwidth, ms (QEMU's "expected downtime"). */
  readonly expectedDowntimeMs: number;
  /**
   * Why the pre-copy stopped: "fits" (the dirty set fits the downtime limit at the measured
   * bandwidth), "no-progress" (rounds stopped shrinking it; the switchover is expected to take
   * up to twice the limit) or "max-rounds" (it did not converge within `maxRounds`).
   */
  readonly switchover?: "fits" | "no-progress" | "max-rounds";
}

/** Writes a frame's chunks; `sent` once the buffers may be reused (`Channel.write`). */
export type WriteChunks = (chunks: readonly Uint8Array[], sent?: () => void) => Promise<void>;

/** Where `finish()` sends its frames. */
export interface FrameSink {
  readonly write: WriteChunks;
  /**
   * The sink appends each frame's CRC32C trailer itself, checksumming as it sends: it gets
   * `PagesFrame.unchecked()` instead of `encode()` (./native-io.ts).
   */
  readonly unchecked?: boolean;
  /**
   * Sends the pages of `slot` set in `bitmap` as `finish` would frame them, all at once
   * (natively: ./native-io.ts). Used instead of `write` unless a bandwidth cap applies.
   */
  readonly sendDirty?: (slot: RamSlot, bitmap: Uint8Array) => Promise<DirtySent>;
}

/** What `FrameSink.sendDirty` sent. */
export interface DirtySent {
  readonly pages: number;
  readonly zeroPages: number;
  /** Bytes of the frames. */
  readonly written: number;
}

/** One bitmap per region, in `memory` order. */
type DirtySet = Uint8Array[];

/** How `#sendSet` sends. */
interface SendHow {
  /** Frames view guest RAM instead of copying it (`finish`, vCPUs paused). */
  readonly byReference?: boolean;
  readonly sink?: FrameSink;
  /** Round 1: look up which pages were never touched (`PrecopyOptions.touched`). */
  readonly fresh?: boolean;
}

/**
 * Zero pages are first looked for 256 at a time (1 MiB, 32 bitmap bytes): one memcmp per MiB
 * scans an untouched 256 MiB in ~6 ms here, against ~9 ms page by page and ~38 ms for a JS
 * loop over 64-bit words (measured on this host, Node 20).
 */
const GROUP_PAGES = 256;

/**
 * True when bytes [from, to) of `buf` are all zero: the first is zero and each equals the next
 * (memcmp of the range against itself one byte on). Both sides read the same cache lines, so
 * it moves half the memory of a compare with a zero buffer: 256 MiB in 12 ms instead of 18 here.
 */
function isZero(buf: Buffer, from: number, to: number): boolean {
  return buf[from] === 0 && buf.compare(buf, from, to - 1, from + 1, to) === 0;
}
/**
 * A frame goes out once it carries this much page data: the destination checks and stores one
 * while the next is built, instead of waiting for a 16 MiB frame to arrive whole.
 */
const FRAME_DATA_BYTES = 1024 * 1024;
/** A round whose dirty set is at least this share of the previous one made no progress. */
const STALLED_RATIO = 0.9;
/** "no-progress" switches over only while the expected switchover is within this × the limit. */
const STALLED_LIMIT_FACTOR = 2;
/** Guest RAM is scanned through windows of this size (a view is at most 2 GiB anywhere). */
const WINDOW_BYTES = 256 * 1024 * 1024;

/** True when the `n` bitmap bytes from `first` are all 0xff. */
function allSet(bitmap: Uint8Array, first: number, n: number): boolean {
  for (let i = first; i < first + n; i++) if (bitmap[i] !== 0xff) return false;
  return true;
}

/** True when the `n` bytes of `map` from `first` are all 0. */
function noneSet(map: Uint8Array, first: number, n: number): boolean {
  for (let i = first; i < first + n; i++) if (map[i] !== 0) return false;
  return true;
}

/** The whole 32-bit words at the start of `bitmap` (none when it is not 4-byte aligned). */
function words(bitmap: Uint8Array): Int32Array {
  if (bitmap.byteOffset % 4 !== 0) return new Int32Array(0);
  return new Int32Array(bitmap.buffer, bitmap.byteOffset, bitmap.length >> 2);
}

/** Bits set in the 32-bit `v` (the classic SWAR popcount). */
function bits32(v: number): number {
  let x = v - ((v >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** Bits set in `bitmaps`, 32 at a time, then the bytes after the last whole word. */
function popcount(bitmaps: DirtySet): number {
  let n = 0;
  for (const b of bitmaps) {
    const w = words(b);
    for (const word of w) if (word !== 0) n += bits32(word);
    for (let j = 4 * w.length; j < b.length; j++) n += bits32(b[j] ?? 0);
  }
  return n;
}

/** `region` as `FrameSink.sendDirty` takes it: views of `WINDOW_BYTES`. */
function ramSlot(region: GuestMemory): RamSlot {
  const windows: Uint8Array[] = [];
  for (let at = 0; at < region.size; at += WINDOW_BYTES) {
    windows.push(region.view(at, Math.min(WINDOW_BYTES, region.size - at)));
  }
  return {
    slot: region.slot,
    pages: region.size / PAGE_BYTES,
    windows,
    windowBytes: WINDOW_BYTES,
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** One migration's RAM transfer (module header). */
export class Precopy {
  #round = 0;
  #pagesSent = 0;
  #zeroPages = 0;
  #bytes = 0;
  #bandwidth = 0;
  #lastDirty = 0;
  readonly #dirtyByRound: number[] = [];
  #expectedMs = 0;
  #switchover: PrecopyProgress["switchover"];
  #started = 0;
  #pending: DirtySet | undefined;
  /**
   * Frame data buffers the socket is done with, for the next frames: a round then allocates no
   * memory outside the JS heap, whose growth made V8 collect garbage every 64 MiB or so.
   */
  readonly #pool: Uint8Array[] = [];

  constructor(
    private readonly ram: DirtyRam,
    private readonly write: WriteChunks,
    private readonly options: PrecopyOptions,
  ) {}

  /** Progress so far. */
  get progress(): PrecopyProgress {
    return {
      round: this.#round,
      transferredBytes: this.#bytes,
      pagesSent: this.#pagesSent,
      zeroPages: this.#zeroPages,
      totalPages: this.ram.memory.reduce((n, m) => n + m.size / PAGE_BYTES, 0),
      dirtyPages: this.#lastDirty,
      bandwidth: Math.round(this.#bandwidth),
      dirtyByRound: [...this.#dirtyByRound],
      expectedDowntimeMs: Math.round(this.#expectedMs * 10) / 10,
      ...(this.#switchover === undefined ? {} : { switchover: this.#switchover }),
    };
  }

  /**
   * Sends rounds while the guest runs, until the dirty set fits the downtime limit or
   * `maxRounds`; the last dirty set is kept for `finish()`.
   * @throws whatever `write` throws (the connection failed or stalled).
   */
  async iterate(): Promise<void> {
    this.#started = performance.now();
    // Round 1 sends everything: clear the logs first, so what the guest writes from here on is
    // in the next round.
    this.#readLogs();
    const all = this.ram.memory.map((m) =>
      new Uint8Array(Math.ceil(m.size / PAGE_BYTES / 8)).fill(0xff),
    );
    let dirty: DirtySet = all;
    for (;;) {
      const t0 = performance.now();
      const before = this.#bytes;
      const sending = this.#round === 0 ? this.progress.totalPages : this.#lastDirty;
      await this.#sendSet(dirty, { fresh: this.#round === 0 });
      this.#round++;
      await this.#emit(encodeRoundFrame(this.#round, BigInt(this.#pagesSent), BigInt(sending)));
      await this.options.settle?.(this.#round);
      const seconds = Math.max(performance.now() - t0, 0.05) / 1000;
      this.#bandwidth = (this.#bytes - before) / seconds;
      dirty = this.#readLogs();
      this.#lastDirty = popcount(dirty);
      this.#dirtyByRound.push(this.#lastDirty);
      // QEMU's rule (migration.c, threshold = bandwidth × downtime-limit): switch over once the
      // dirty set can be sent within the limit at the bandwidth of the last round.
      this.#expectedMs = ((this.#lastDirty * (PAGE_BYTES + 8)) / this.#effectiveBandwidth()) * 1000;
      const fits = this.#expectedMs <= this.options.downtimeLimitMs;
      if (fits) this.#switchover = "fits";
      else if (this.#stalled()) this.#switchover = "no-progress";
      else if (this.#round >= this.options.maxRounds) this.#switchover = "max-rounds";
      this.options.onRound?.(this.progress);
      if (this.#switchover !== undefined) {
        this.#pending = dirty;
        return;
      }
    }
  }

  /**
   * With every vCPU paused: sends the pages dirtied since the last round, to `sink` (the
   * constructor's `write` by default). Returns their count.
   * @throws whatever the sink's `write` throws.
   */
  async finish(sink: FrameSink = { write: this.write }): Promise<number> {
    const last = this.#readLogs();
    const pending = this.#pending;
    if (pending !== undefined) {
      last.forEach((bitmap, i) => {
        const old = pending[i];
        if (old === undefined) return;
        // 32 pages at a time where both are word-aligned (a dirty log is whole 64-bit words).
        const into = words(bitmap);
        const from = words(old);
        const n = Math.min(into.length, from.length);
        for (let j = 0; j < n; j++) into[j] = (into[j] ?? 0) | (from[j] ?? 0);
        for (let j = 4 * n; j < bitmap.length; j++) bitmap[j] = (bitmap[j] ?? 0) | (old[j] ?? 0);
      });
    }
    this.#pending = undefined;
    const count = popcount(last);
    // No copies: the frames' data are views of guest RAM, checksummed and written out in place
    // (runs of consecutive dirty pages as one piece of the writev). Safe only because the
    // vCPUs stay paused until those bytes are gone: on success the guest never runs here again,
    // and on failure the caller destroys the connection (dropping whatever is still queued)
    // before it resumes them. The device side writes no RAM while paused either (in-flight
    // disk requests were drained by the pause).
    const sendDirty = sink.sendDirty;
    if (sendDirty !== undefined && this.options.maxBandwidth === undefined) {
      for (const [i, region] of this.ram.memory.entries()) {
        const bitmap = last[i];
        if (bitmap === undefined) continue;
        const sent = await sendDirty(ramSlot(region), bitmap);
        this.#pagesSent += sent.pages;
        this.#zeroPages += sent.zeroPages;
        this.#bytes += sent.written;
      }
    } else await this.#sendSet(last, { byReference: true, sink });
    return count;
  }

  /**
   * The last round re-sent the previous dirty set and the guest dirtied as many pages again
   * (90 % or more) meanwhile: it rewrites its working set faster than a round moves it, so
   * more rounds add time and traffic but not a smaller switchover (the rule of Xen's pre-copy,
   * which stops when an iteration dirties as much as it sent). Taken only while the expected
   * switchover stays within twice the downtime limit; beyond that the rounds go on to
   * `maxRounds`, in case the guest slows down.
   */
  #stalled(): boolean {
    const d = this.#dirtyByRound;
    const [before, last] = [d[d.length - 2], d[d.length - 1]];
    return (
      before !== undefined &&
      last !== undefined &&
      last >= STALLED_RATIO * before &&
      this.#expectedMs <= STALLED_LIMIT_FACTOR * this.options.downtimeLimitMs
    );
  }

  #effectiveBandwidth(): number {
    const cap = this.options.maxBandwidth ?? Infinity;
    return Math.max(1, Math.min(this.#bandwidth, cap));
  }

  #readLogs(): DirtySet {
    return this.ram.memory.map((m) => {
      const bitmap = this.ram.getDirtyLog(m.slot);
      // Bits past the slot's last page (the bitmap is rounded up to 64 pages) are never set.
      return bitmap;
    });
  }

  async #sendSet(set: DirtySet, how: SendHow = {}): Promise<void> {
    for (const [i, region] of this.ram.memory.entries()) {
      const bitmap = set[i];
      if (bitmap !== undefined) await this.#sendRegion(region, bitmap, how);
    }
  }

  /** A frame's data buffer: a free one of the pool, else a new one. */
  #takeStore(): Uint8Array {
    return this.#pool.pop() ?? new Uint8Array(FRAME_DATA_BYTES);
  }

  async #sendRegion(region: GuestMemory, bitmap: Uint8Array, how: SendHow): Promise<void> {
    const byReference = how.byReference === true;
    const sink = how.sink ?? { write: this.write };
    const pages = region.size / PAGE_BYTES;
    const perWindow = WINDOW_BYTES / PAGE_BYTES;
    const maxDataPages = FRAME_DATA_BYTES / PAGE_BYTES;
    const open = (store: Uint8Array | undefined): PagesFrame =>
      new PagesFrame(region.slot, store === undefined ? { byReference } : { store });
    let store = byReference ? undefined : this.#takeStore();
    let frame = open(store);
    /** Data pages in `frame`, the pending run included. */
    let dataPages = 0;
    const flush = async (): Promise<void> => {
      if (frame.count === 0) return;
      const bytes = sink.unchecked === true ? frame.unchecked() : frame.encode();
      const used = store;
      store = byReference ? undefined : this.#takeStore();
      frame = open(store);
      dataPages = 0;
      // The buffer goes back to the pool once the socket took its bytes.
      await this.#emit(
        bytes,
        used === undefined ? undefined : () => this.#pool.push(used),
        sink.write,
        sink.unchecked === true ? 4 : 0,
      );
    };
    for (let w = 0; w < pages; w += perWindow) {
      const count = Math.min(perWindow, pages - w);
      const view = region.view(w * PAGE_BYTES, count * PAGE_BYTES);
      const buf = Buffer.from(view.buffer, view.byteOffset, view.length);
      // Round 1: the page tables say which pages were never touched (all zeros, unread).
      const touched = how.fresh === true ? this.#touched(view, count) : undefined;
      // A run of consecutive dirty data pages goes into the frame with one copy (or one view).
      let runFirst = 0;
      let runPages = 0;
      const addRun = (): void => {
        if (runPages === 0) return;
        frame.dataRun(
          w + runFirst,
          view.subarray(runFirst * PAGE_BYTES, (runFirst + runPages) * PAGE_BYTES),
        );
        runPages = 0;
      };
      for (let p = 0; p < count; p++) {
        const page = w + p;
        const byte = bitmap[page >> 3] ?? 0;
        if (byte === 0) {
          p += 7 - (page & 7);
          continue;
        }
        if (
          (page & (GROUP_PAGES - 1)) === 0 &&
          p + GROUP_PAGES <= count &&
          allSet(bitmap, page >> 3, GROUP_PAGES >> 3) &&
          ((touched !== undefined && noneSet(touched, p, GROUP_PAGES)) ||
            isZero(buf, p * PAGE_BYTES, (p + GROUP_PAGES) * PAGE_BYTES))
        ) {
          // A whole group dirty and all zero (most of a fresh guest's RAM in round 1): one
          // memcmp instead of one per page.
          addRun();
          for (let g = 0; g < GROUP_PAGES; g++) {
            if (frame.room === 0) await flush();
            frame.zero(page + g);
          }
          this.#zeroPages += GROUP_PAGES;
          this.#pagesSent += GROUP_PAGES;
          p += GROUP_PAGES - 1;
          continue;
        }
        if (((byte >> (page & 7)) & 1) === 0) continue;
        if (frame.count + runPages >= MAX_PAGES_PER_FRAME || dataPages >= maxDataPages) {
          addRun();
          await flush();
        }
        const at = p * PAGE_BYTES;
        // The last byte first: a data page nearly always fails there, without a memcmp.
        if (
          touched?.[p] === 0 ||
          (buf[at + PAGE_BYTES - 1] === 0 && isZero(buf, at, at + PAGE_BYTES))
        ) {
          addRun();
          frame.zero(page);
          this.#zeroPages++;
        } else {
          if (runPages === 0 || p !== runFirst + runPages) {
            addRun();
            runFirst = p;
          }
          runPages++;
          dataPages++;
        }
        this.#pagesSent++;
      }
      addRun();
    }
    await flush();
  }

  /** `touched` of the first `count` pages of `view`, or undefined when it cannot tell. */
  #touched(view: Uint8Array, count: number): Uint8Array | undefined {
    const touched = this.options.touched;
    if (touched === undefined) return undefined;
    const out = new Uint8Array(count);
    return touched(view, out) ? out : undefined;
  }

  /** Writes `chunks` (and counts `trailer` more bytes the writer appends). */
  async #emit(
    chunks: readonly Uint8Array[],
    sent?: () => void,
    write = this.write,
    trailer = 0,
  ): Promise<void> {
    this.#bytes += trailer;
    for (const c of chunks) this.#bytes += c.length;
    await write(chunks, sent);
    const cap = this.options.maxBandwidth;
    if (cap !== undefined) {
      // --max-bandwidth: hold the average at the cap (sleep what the bytes so far are ahead).
      const dueMs = (this.#bytes / cap) * 1000 - (performance.now() - this.#started);
      if (dueMs > 1) await sleep(dueMs);
    }
  }
}
