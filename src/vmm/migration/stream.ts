/**
 * The live-migration stream, version 1.3: the snapshot format's CRC-framed, length-bounded
 * sections (src/vmm/snapshot/format.ts), written one frame at a time as the migration goes, so
 * no side ever holds the whole guest RAM in one buffer. All integers little-endian.
 *
 * Stream header (28 bytes):
 *
 * | offset | size | field |
 * | --- | --- | --- |
 * | 0 | 8 | magic `"RGVMIGR\0"` (52 47 56 4d 49 47 52 00) |
 * | 8 | 2 | major (1): another major is refused |
 * | 10 | 2 | minor (3) |
 * | 12 | 1 | arch: the KVM register-id arch byte (0x20 x86, 0x80 riscv, ...) |
 * | 13 | 1 | source backend (the snapshot format's codes: 1 kvm, 2 soft-inline, 3 soft-threaded) |
 * | 14 | 2 | reserved, 0 |
 * | 16 | 4 | flags: bits 0..15 must be understood (none defined), 16..31 advisory (below) |
 * | 20 | 4 | reserved, 0 |
 * | 24 | 4 | CRC32C of bytes 0..23 |
 *
 * Then frames exactly as in a snapshot (u32 type, u32 flags, u64 length L, L payload bytes,
 * CRC32C of the frame's first 16 + L bytes), in this order: META, LAYOUT, PAGES/ROUND repeated
 * (pre-copy rounds), then the switchover: SWITCHOVER (1.2, only to a destination that asked for
 * it), the last PAGES, one VCPU_STATE per vCPU, one DEVICE per device, and END; or from 1.3, to
 * a destination that asked for it, SWITCHOVER with the count of state frames, those VCPU_STATE
 * and DEVICE frames, the last PAGES, and END. Nothing follows END.
 *
 * | type | name | payload |
 * | --- | --- | --- |
 * | 1 | META | as in a snapshot: a UTF-8 JSON object (the machine: guest, spec, …) |
 * | 2 | VCPU_STATE | as in a snapshot: u32 index, u32 count, count × (u64 id, value) |
 * | 4 | DEVICE | as in a snapshot: u16 name length, name, the device's state |
 * | 16 | LAYOUT | u32 count, count × (u32 slot, u32 memslot flags, u64 gpa, u64 length) |
 * | 17 | PAGES | u32 slot, u32 count, count × (u32 page index, u32 kind: 0 zero page, 1 data), then the 4 KiB of every data page in entry order |
 * | 18 | ROUND | u32 round number, u64 pages sent so far, u64 pages of the dirty set it sent (progress only) |
 * | 19 | END | empty |
 * | 20 | SWITCHOVER | the source paused the guest: empty, the last PAGES follow (1.2); or u32 count of the VCPU_STATE and DEVICE frames that follow before the last PAGES (1.3) |
 *
 * Advisory header flag bit 16 (1.1), `HEADER_FLAG_ROUND_ACKS`: the source asks the destination to
 * answer each ROUND frame, once every page before it is stored, with a `round` reply
 * (./handshake.ts); it pauses the guest only when the destination has caught up, so the downtime
 * does not include the backlog of the pre-copy. A 1.0 destination ignores the bit (the source
 * then stops waiting for acknowledgements after the first one does not come).
 *
 * SWITCHOVER (1.2) tells the destination that the guest is paused and the next PAGES frames are
 * the last ones: it reads them without Node's socket machinery (./native-io.ts) in one go,
 * not in the time slices it reads the pre-copy in (which keep its event loop turning). A 1.2
 * destination says it understands the frame in its round acknowledgements (./handshake.ts); the
 * source sends it to no other (a 1.1 reader refuses unknown frame types).
 *
 * SWITCHOVER with a count (1.3) moves the state ahead of the last pages: the destination checks
 * and applies the vCPUs' registers as soon as the announced frames are in, while the pages are
 * still in flight, and the devices (which check their queues against guest RAM) at END. A
 * destination asks for it with `stateFirst` in its round acknowledgements (./handshake.ts); the
 * count is bounded by the snapshot's section limit, and a PAGES frame before the announced state
 * is complete, a state frame beyond it or an END without all of it is refused.
 *
 * The decoder is incremental (`push` whatever arrives), never buffers more than one frame,
 * bounds every length before allocating, and lets only `MigrationStreamError` escape.
 */
import { ARCH_CODES, ARCH_NAMES, type ArchName } from "../../abi/regid.js";
import { RegvisorError } from "../../errors.js";
import { Reader, Writer, concatBytes } from "../snapshot/bytes.js";
import { ChunkQueue } from "./chunk-queue.js";
import { encodeFrame, FRAME_BYTES } from "../snapshot/container.js";
import { crc32c } from "../snapshot/crc32c.js";
import { SnapshotFormatError } from "../snapshot/errors.js";
import {
  BACKEND_CODES,
  DEFAULT_LIMITS,
  type DeviceState,
  type SnapshotBackend,
  type SnapshotLimits,
  type SnapshotMeta,
  type VcpuState,
} from "../snapshot/model.js";
import {
  decodeDevice,
  decodeMeta,
  decodeVcpu,
  encodeDevice,
  encodeMeta,
  encodeVcpu,
} from "../snapshot/sections.js";

/** "RGVMIGR\0". */
export const STREAM_MAGIC = new Uint8Array([0x52, 0x47, 0x56, 0x4d, 0x49, 0x47, 0x52, 0x00]);
export const STREAM_MAJOR = 1;
export const STREAM_MINOR = 3;
/** Header flag (advisory): answer every ROUND frame with a `round` reply (module header). */
export const HEADER_FLAG_ROUND_ACKS = 1 << 16;
export const STREAM_HEADER_BYTES = 28;
/** Guest page size the stream counts in. */
export const PAGE_BYTES = 4096;

/** Frame types of the stream (META, VCPU_STATE and DEVICE are the snapshot's). */
export const FRAME_TYPES = {
  META: 1,
  VCPU_STATE: 2,
  DEVICE: 4,
  LAYOUT: 16,
  PAGES: 17,
  ROUND: 18,
  END: 19,
  SWITCHOVER: 20,
} as const;

/** Largest PAGES frame a writer makes and a reader accepts (entries). */
export const MAX_PAGES_PER_FRAME = 4096;

/** The stream is not a valid migration stream; `offset` is where the decoder stopped. */
export class MigrationStreamError extends RegvisorError {
  readonly offset: number;

  constructor(message: string, offset: number, options?: ErrorOptions) {
    super("MIGRATION_STREAM", `${message} (stream offset ${offset})`, options);
    this.offset = offset;
  }
}

/** One guest RAM region of the source. */
export interface LayoutSlot {
  readonly slot: number;
  readonly flags: number;
  readonly guestPhysAddr: bigint;
  readonly length: number;
}

/** A page in a PAGES frame: `data` undefined for a zero page. */
export interface PageOut {
  readonly index: number;
  readonly data: Uint8Array | undefined;
}

/**
 * A decoded PAGES frame. Its data pages come as `data`: the bytes of every data page in entry
 * order, as views of the received chunks that hold them (a piece per chunk, cut wherever the
 * chunks were cut, a page boundary or not), so a consumer stores a run of pages with one copy
 * per piece and the decoder copies no page and makes no object per page.
 */
export interface PagesItem {
  readonly kind: "pages";
  readonly slot: number;
  /** Entry i: page index `entries[2i]`, kind `entries[2i + 1]` (0 zero page, 1 data). */
  readonly entries: Uint32Array;
  /** The data pages' bytes in entry order, in pieces of any length (views of the chunks). */
  readonly data: readonly Uint8Array[];
  /** The same page by page (built on each access; for tests and small consumers). */
  readonly pages: readonly { readonly index: number; readonly data: Uint8Array | undefined }[];
}

/** What the decoder yields, in stream order. */
export type StreamItem =
  | {
      readonly kind: "header";
      readonly arch: ArchName;
      readonly backend: SnapshotBackend;
      readonly minor: number;
      readonly flags: number;
    }
  | { readonly kind: "meta"; readonly meta: SnapshotMeta }
  | { readonly kind: "layout"; readonly slots: readonly LayoutSlot[] }
  | PagesItem
  | { readonly kind: "round"; readonly round: number; readonly sent: bigint; readonly left: bigint }
  | { readonly kind: "vcpu"; readonly state: VcpuState }
  | { readonly kind: "device"; readonly state: DeviceState }
  | {
      readonly kind: "switchover";
      /** 1.3: VCPU_STATE and DEVICE frames that come next, before the last PAGES. */
      readonly stateFrames?: number;
    }
  | { readonly kind: "end" };

// ---------------------------------------------------------------- writing

/** The stream header for a source of `arch` on `backend` (header `flags`: advisory bits). */
export function encodeStreamHeader(
  arch: ArchName,
  backend: SnapshotBackend,
  flags = 0,
): Uint8Array {
  const w = new Writer()
    .bytes(STREAM_MAGIC)
    .u16(STREAM_MAJOR)
    .u16(STREAM_MINOR)
    .u8(ARCH_CODES[arch])
    .u8(BACKEND_CODES[backend])
    .u16(0)
    .u32(flags)
    .u32(0);
  const head = concatBytes(w.parts());
  return concatBytes([head, concatBytes(new Writer().u32(crc32c(head)).parts())]);
}

const frame = (type: number, payload: readonly Uint8Array[]): Uint8Array[] =>
  encodeFrame({ type, flags: 0, payload });

/** META frame. */
export function encodeMetaFrame(meta: SnapshotMeta): Uint8Array[] {
  return frame(FRAME_TYPES.META, [encodeMeta(meta, DEFAULT_LIMITS)]);
}

/** LAYOUT frame. */
export function encodeLayoutFrame(slots: readonly LayoutSlot[]): Uint8Array[] {
  const w = new Writer().u32(slots.length);
  for (const s of slots) w.u32(s.slot).u32(s.flags).u64(s.guestPhysAddr).u64(BigInt(s.length));
  return frame(FRAME_TYPES.LAYOUT, w.parts());
}

/** Data pages of a copying `PagesFrame` are copied into buffers of this many pages. */
const COPY_CHUNK_PAGES = 64;

/** How a `PagesFrame` holds its data pages. */
export interface PagesFrameOptions {
  /**
   * Do not copy data pages: the frame's parts are views of the caller's bytes (pages adjacent
   * in memory and in the frame share one view, so a run of dirty pages leaves in one piece of
   * the writev). Only for bytes that cannot change until the frame has been written out or
   * thrown away (RAM of paused vCPUs: see `Precopy.finish`).
   */
  readonly byReference?: boolean;
  /** Copy data pages into this buffer first (a whole number of pages; reused by the caller). */
  readonly store?: Uint8Array;
}

/**
 * One PAGES frame built page by page: the entry table is written in place and, by default, data
 * pages are copied into the frame's own buffers (`store`, then chunks of `COPY_CHUNK_PAGES`),
 * so a round costs no object per page and the frame never aliases guest RAM (a guest write after
 * the CRC was computed would corrupt it). A frame holds at most `MAX_PAGES_PER_FRAME` pages.
 */
export class PagesFrame {
  /** The entry table, grown as pages come (a full one is 32 KiB, most frames need far less). */
  #table = new Uint8Array(8 + 8 * 256);
  #entries = new DataView(this.#table.buffer);
  readonly #chunks: Uint8Array[] = [];
  readonly #byReference: boolean;
  #chunk: Uint8Array = new Uint8Array(0);
  #used = 0;
  #count = 0;
  #dataBytes = 0;

  constructor(
    readonly slot: number,
    options: PagesFrameOptions = {},
  ) {
    this.#byReference = options.byReference === true;
    const store = options.store;
    if (store !== undefined && !this.#byReference && store.length >= PAGE_BYTES) {
      this.#chunk = store.subarray(0, store.length - (store.length % PAGE_BYTES));
      this.#chunks.push(this.#chunk);
    }
  }

  /** Pages in the frame so far. */
  get count(): number {
    return this.#count;
  }

  /** Bytes of page data in the frame so far. */
  get dataBytes(): number {
    return this.#dataBytes;
  }

  /** Pages that still fit. */
  get room(): number {
    return MAX_PAGES_PER_FRAME - this.#count;
  }

  /**
   * Adds page `index` as a zero page (8 bytes in the stream).
   * @throws RangeError when the frame is full.
   */
  zero(index: number): void {
    if (this.#count >= MAX_PAGES_PER_FRAME) throw this.#full();
    this.#entry(index, 0);
  }

  /**
   * Adds page `index` with its 4 KiB `data` (a copy, or the view itself `byReference`).
   * @throws RangeError when the frame is full or `data` is not 4 KiB.
   */
  data(index: number, data: Uint8Array): void {
    if (data.length !== PAGE_BYTES) throw new RangeError("a data page must be 4096 bytes");
    this.dataRun(index, data);
  }

  /**
   * Adds the pages `first`, `first + 1`, … whose bytes follow one another in `data` (a whole
   * number of pages): one copy, or one view `byReference`, for the whole run.
   * @throws RangeError when they do not fit or `data` is not a whole number of pages.
   */
  dataRun(first: number, data: Uint8Array): void {
    const pages = data.length / PAGE_BYTES;
    if (!Number.isInteger(pages) || pages === 0) {
      throw new RangeError("a run of data pages must be a whole number of 4096-byte pages");
    }
    if (this.#count + pages > MAX_PAGES_PER_FRAME) throw this.#full();
    for (let i = 0; i < pages; i++) this.#entry(first + i, 1);
    this.#dataBytes += data.length;
    if (this.#byReference) {
      const last = this.#chunks[this.#chunks.length - 1];
      if (last?.buffer === data.buffer && last.byteOffset + last.length === data.byteOffset) {
        this.#chunks[this.#chunks.length - 1] = new Uint8Array(
          last.buffer,
          last.byteOffset,
          last.length + data.length,
        );
      } else this.#chunks.push(data);
      return;
    }
    for (let done = 0; done < data.length;) {
      if (this.#used === this.#chunk.length) {
        this.#chunk = new Uint8Array(COPY_CHUNK_PAGES * PAGE_BYTES);
        this.#chunks.push(this.#chunk);
        this.#used = 0;
      }
      const take = Math.min(this.#chunk.length - this.#used, data.length - done);
      this.#chunk.set(data.subarray(done, done + take), this.#used);
      this.#used += take;
      done += take;
    }
  }

  #full(): RangeError {
    return new RangeError(`a PAGES frame holds at most ${MAX_PAGES_PER_FRAME} pages`);
  }

  #entry(index: number, kind: number): void {
    if (16 + 8 * this.#count > this.#table.length) {
      const grown = new Uint8Array(8 + 8 * Math.min(MAX_PAGES_PER_FRAME, 2 * this.#count));
      grown.set(this.#table);
      this.#table = grown;
      this.#entries = new DataView(grown.buffer);
    }
    this.#entries.setUint32(8 + 8 * this.#count, index, true);
    this.#entries.setUint32(12 + 8 * this.#count, kind, true);
    this.#count++;
  }

  /** The frame's bytes (header, payload parts, CRC). */
  encode(): Uint8Array[] {
    return frame(FRAME_TYPES.PAGES, this.#payload());
  }

  /**
   * The frame's bytes without the CRC trailer (header, payload parts), for a writer that
   * checksums the parts as it sends them and appends the CRC itself (./native-io.ts).
   */
  unchecked(): Uint8Array[] {
    const payload = this.#payload();
    const head = new Uint8Array(16);
    const view = new DataView(head.buffer);
    view.setUint32(0, FRAME_TYPES.PAGES, true);
    view.setUint32(4, 0, true);
    view.setBigUint64(8, BigInt(payload.reduce((n, p) => n + p.length, 0)), true);
    return [head, ...payload];
  }

  #payload(): Uint8Array[] {
    this.#entries.setUint32(0, this.slot, true);
    this.#entries.setUint32(4, this.#count, true);
    const data = this.#byReference
      ? this.#chunks
      : this.#chunks
          .map((c) => (c === this.#chunk ? c.subarray(0, this.#used) : c))
          .filter((c) => c.length > 0);
    return [this.#table.subarray(0, 8 + 8 * this.#count), ...data];
  }
}

/**
 * PAGES frame of at most `MAX_PAGES_PER_FRAME` pages (copies the data pages; zero pages cost 8
 * bytes).
 * @throws RangeError on too many pages or a data page that is not 4 KiB.
 */
export function encodePagesFrame(slot: number, pages: readonly PageOut[]): Uint8Array[] {
  if (pages.length > MAX_PAGES_PER_FRAME) {
    throw new RangeError(`a PAGES frame holds at most ${MAX_PAGES_PER_FRAME} pages`);
  }
  const out = new PagesFrame(slot);
  for (const p of pages) {
    if (p.data === undefined) out.zero(p.index);
    else out.data(p.index, p.data);
  }
  return out.encode();
}

/** ROUND frame (progress). */
export function encodeRoundFrame(round: number, sent: bigint, left: bigint): Uint8Array[] {
  return frame(FRAME_TYPES.ROUND, new Writer().u32(round).u64(sent).u64(left).parts());
}

/** VCPU_STATE frame. */
export function encodeVcpuFrame(state: VcpuState, arch: ArchName): Uint8Array[] {
  return frame(FRAME_TYPES.VCPU_STATE, [encodeVcpu(state, ARCH_CODES[arch], DEFAULT_LIMITS)]);
}

/** DEVICE frame. */
export function encodeDeviceFrame(state: DeviceState): Uint8Array[] {
  return frame(FRAME_TYPES.DEVICE, encodeDevice(state, DEFAULT_LIMITS));
}

/** END frame. */
export function encodeEndFrame(): Uint8Array[] {
  return frame(FRAME_TYPES.END, []);
}

/**
 * SWITCHOVER frame (module header): empty (1.2, the state follows the last pages), or with
 * `stateFrames` (1.3) the number of VCPU_STATE and DEVICE frames that come before the last pages.
 */
export function encodeSwitchoverFrame(stateFrames?: number): Uint8Array[] {
  return frame(
    FRAME_TYPES.SWITCHOVER,
    stateFrames === undefined ? [] : new Writer().u32(stateFrames).parts(),
  );
}

/**
 * Encodes `vcpus` and `devices` as a switchover's frames and decodes them again, keeping
 * nothing: runs the state's frame codec once ahead of a switchover, so that the first-call cost
 * of its functions (V8 compiles each lazily) is not paid while the guest is paused.
 */
export function rehearseState(
  arch: ArchName,
  backend: SnapshotBackend,
  vcpus: readonly VcpuState[],
  devices: readonly DeviceState[],
): void {
  const frames = [
    encodeStreamHeader(arch, backend),
    ...encodeSwitchoverFrame(vcpus.length + devices.length),
  ];
  for (const vcpu of vcpus) frames.push(...encodeVcpuFrame(vcpu, arch));
  for (const device of devices) frames.push(...encodeDeviceFrame(device));
  new StreamDecoder().push(concatBytes(frames));
}

// ---------------------------------------------------------------- reading

/**
 * A PAGES item's pages one by one: index and data (undefined for a zero page), a view of the
 * piece that holds the page, or a copy of a page two pieces share.
 */
function pageList(
  entries: Uint32Array,
  data: readonly Uint8Array[],
): { index: number; data: Uint8Array | undefined }[] {
  const out: { index: number; data: Uint8Array | undefined }[] = [];
  let piece = 0;
  let at = 0;
  for (let i = 0; i < entries.length; i += 2) {
    const index = entries[i] ?? 0;
    if (entries[i + 1] === 0) {
      out.push({ index, data: undefined });
      continue;
    }
    const bytes = data[piece];
    if (bytes !== undefined && at + PAGE_BYTES <= bytes.length) {
      out.push({ index, data: bytes.subarray(at, at + PAGE_BYTES) });
      at += PAGE_BYTES;
    } else {
      const page = new Uint8Array(PAGE_BYTES);
      for (let filled = 0; filled < PAGE_BYTES;) {
        const from = data[piece];
        if (from === undefined) break;
        const take = Math.min(from.length - at, PAGE_BYTES - filled);
        page.set(from.subarray(at, at + take), filled);
        filled += take;
        at += take;
        if (at === from.length) {
          piece++;
          at = 0;
        }
      }
      out.push({ index, data: page });
    }
    if (at === data[piece]?.length) {
      piece++;
      at = 0;
    }
  }
  return out;
}

/** Bounds of the decoder; the defaults follow the snapshot's. */
export interface StreamLimits {
  /** Largest frame payload (a full PAGES frame is ~16.8 MiB). */
  readonly maxFrameBytes: number;
  readonly maxSlots: number;
  readonly snapshot: SnapshotLimits;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = {
  maxFrameBytes: 8 + MAX_PAGES_PER_FRAME * (8 + PAGE_BYTES),
  maxSlots: 512,
  snapshot: DEFAULT_LIMITS,
};

/** Incremental decoder of a migration stream (module header). */
export class StreamDecoder {
  readonly #limits: StreamLimits;
  /** Received, not yet decoded: the chunks as pushed (./chunk-queue.ts). */
  readonly #q = new ChunkQueue();
  readonly #scratch = new DataView(new ArrayBuffer(16));
  readonly #scratchBytes = new Uint8Array(this.#scratch.buffer);
  /** Stream offset of the queue's first byte. */
  #base = 0;
  /** Bytes the next frame needs queued before decoding is worth a try (its header, then all). */
  #need = 16;
  #arch: ArchName | undefined;
  #ended = false;
  #failed: MigrationStreamError | undefined;

  constructor(limits: StreamLimits = DEFAULT_STREAM_LIMITS) {
    this.#limits = limits;
  }

  /** True once END was decoded. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#base;
  }

  /**
   * Consumes `bytes`; returns every item they complete. The decoder keeps a reference to
   * `bytes` until the frame they carry is decoded (no copy): do not change them after the call.
   * @throws MigrationStreamError on any violation; the decoder then stays failed.
   */
  push(bytes: Uint8Array): StreamItem[] {
    if (this.#failed !== undefined) throw this.#failed;
    try {
      if (this.#ended && bytes.length > 0) {
        throw new MigrationStreamError("bytes follow the END frame", this.#base + this.#q.length);
      }
      this.#q.push(bytes);
      const items: StreamItem[] = [];
      for (;;) {
        const item = this.#next();
        if (item === undefined) break;
        items.push(item);
      }
      return items;
    } catch (error) {
      this.#failed =
        error instanceof MigrationStreamError
          ? error
          : new MigrationStreamError(
              error instanceof SnapshotFormatError
                ? error.message
                : `malformed frame: ${String(error)}`,
              this.#base,
              { cause: error },
            );
      throw this.#failed;
    }
  }

  /**
   * Takes the bytes received and not decoded yet out of the decoder (the start of the next
   * frame: `push` decodes every complete one), for a reader that continues the stream from
   * there; `skip` then says how far that reader got.
   * @throws MigrationStreamError when the decoder failed, ended or has not read the header.
   */
  takeQueued(): Uint8Array[] {
    if (this.#failed !== undefined) throw this.#failed;
    if (this.#ended || this.#arch === undefined) {
      throw new MigrationStreamError("the stream cannot be handed over here", this.#base);
    }
    const out: Uint8Array[] = [];
    this.#q.forEach(0, this.#q.length, (piece) => out.push(piece));
    this.#q.consume(this.#q.length);
    this.#need = 16;
    return out;
  }

  /** Counts `n` bytes another reader decoded after `takeQueued()` (frames it checked whole). */
  skip(n: number): void {
    if (this.#q.length !== 0 || !Number.isSafeInteger(n) || n < 0) {
      throw new RangeError(`StreamDecoder.skip(${n}): only right after takeQueued()`);
    }
    this.#base += n;
  }

  /** Call when the connection ends: throws unless the stream ended with END. */
  finish(): void {
    if (this.#failed !== undefined) throw this.#failed;
    if (!this.#ended) {
      throw new MigrationStreamError(
        "the stream ended before its END frame",
        this.#base + this.#q.length,
      );
    }
  }

  #consume(n: number): void {
    this.#q.consume(n);
    this.#base += n;
  }

  #fail(message: string, at = 0): MigrationStreamError {
    return new MigrationStreamError(message, this.#base + at);
  }

  #next(): StreamItem | undefined {
    if (this.#ended) {
      if (this.#q.length > 0) throw this.#fail("bytes follow the END frame");
      return undefined;
    }
    if (this.#arch === undefined) return this.#header();
    // A frame whose header was read and bounded waits for its last bytes: one comparison per
    // received chunk (a 1 MiB frame arrives in ~16), not a header copy each.
    if (this.#q.length < this.#need) return undefined;
    // Into a scratch buffer made once: `.buffer` of a fresh small typed array moves it off the
    // heap, which cost more than the rest of the decoder when done per received chunk.
    const head = this.#scratch;
    this.#q.copy(0, 16, this.#scratchBytes);
    const type = head.getUint32(0, true);
    const flags = head.getUint32(4, true);
    const length = head.getBigUint64(8, true);
    if (length > BigInt(this.#limits.maxFrameBytes)) {
      throw this.#fail(
        `frame length ${length} exceeds the limit of ${this.#limits.maxFrameBytes}`,
        8,
      );
    }
    const n = Number(length);
    const total = FRAME_BYTES + n;
    if (this.#q.length < total) {
      this.#need = total;
      return undefined;
    }
    this.#need = 16;
    this.#q.copy(16 + n, 4, this.#scratchBytes);
    const stored = head.getUint32(0, true);
    // Checked over the received chunks in place (no copy of the frame first).
    if (stored !== this.#q.crc32c(0, 16 + n)) throw this.#fail(`frame CRC32C mismatch`, 16 + n);
    if (flags !== 0) throw this.#fail(`frame flags 0x${flags.toString(16)} are not defined`, 4);
    // PAGES: data pages are views of the received chunks; other frames decode from a copy.
    // Either way the item stays valid after `#consume` (the chunks are not reused).
    const item =
      type === FRAME_TYPES.PAGES ? this.#pages(n) : this.#frame(type, this.#q.copy(16, n));
    this.#consume(total);
    if (item.kind === "end") this.#ended = true;
    return item;
  }

  #header(): StreamItem | undefined {
    const have = Math.min(this.#q.length, STREAM_MAGIC.length);
    const magic = this.#q.copy(0, have);
    for (let i = 0; i < have; i++) {
      if (magic[i] !== STREAM_MAGIC[i]) {
        throw this.#fail(
          'the stream does not start with "RGVMIGR\\0" (not a regvisor migration)',
          i,
        );
      }
    }
    if (this.#q.length < STREAM_HEADER_BYTES) return undefined;
    const bytes = this.#q.copy(0, STREAM_HEADER_BYTES);
    const view = new DataView(bytes.buffer);
    if (view.getUint32(24, true) !== crc32c(bytes.subarray(0, 24))) {
      throw this.#fail("stream header CRC32C mismatch", 24);
    }
    const major = view.getUint16(8, true);
    if (major !== STREAM_MAJOR) {
      throw this.#fail(
        `stream major version ${major} is not supported (this regvisor reads ${STREAM_MAJOR}.x)`,
        8,
      );
    }
    const archCode = view.getUint8(12);
    const arch = ARCH_NAMES.find((name) => ARCH_CODES[name] === archCode);
    if (arch === undefined)
      throw this.#fail(`unknown arch code 0x${view.getUint8(12).toString(16)}`, 12);
    const code = view.getUint8(13);
    const backend = (Object.keys(BACKEND_CODES) as SnapshotBackend[]).find(
      (b) => BACKEND_CODES[b] === code,
    );
    if (backend === undefined) throw this.#fail(`unknown backend code ${code}`, 13);
    if ((view.getUint32(16, true) & 0xffff) !== 0)
      throw this.#fail("required header flags this reader does not know", 16);
    const item = {
      kind: "header",
      arch,
      backend,
      minor: view.getUint16(10, true),
      flags: view.getUint32(16, true),
    } as const;
    this.#arch = arch;
    this.#consume(STREAM_HEADER_BYTES);
    return item;
  }

  #frame(type: number, payload: Uint8Array): StreamItem {
    const r = new Reader(payload, 0, payload.length, "SNAPSHOT_MALFORMED");
    const limits = this.#limits.snapshot;
    switch (type) {
      case FRAME_TYPES.META:
        return { kind: "meta", meta: decodeMeta(r, limits) };
      case FRAME_TYPES.VCPU_STATE:
        return { kind: "vcpu", state: decodeVcpu(r, ARCH_CODES[this.#arch ?? "generic"], limits) };
      case FRAME_TYPES.DEVICE:
        return { kind: "device", state: decodeDevice(r, limits) };
      case FRAME_TYPES.LAYOUT:
        return this.#layout(r);
      case FRAME_TYPES.ROUND:
        return this.#round(r);
      case FRAME_TYPES.END:
        if (payload.length !== 0) throw this.#fail("the END frame has a payload");
        return { kind: "end" };
      case FRAME_TYPES.SWITCHOVER:
        return this.#switchover(r, payload.length);
      default:
        throw this.#fail(`unknown frame type ${type}`);
    }
  }

  #layout(r: Reader): StreamItem {
    const count = r.u32("slot count");
    if (count > this.#limits.maxSlots)
      throw this.#fail(`${count} slots exceed the limit of ${this.#limits.maxSlots}`);
    const slots: LayoutSlot[] = [];
    for (let i = 0; i < count; i++) {
      const slot = r.u32("slot");
      const flags = r.u32("slot flags");
      const guestPhysAddr = r.u64("slot address");
      const length = r.u64("slot length");
      if (
        length === 0n ||
        length % BigInt(PAGE_BYTES) !== 0n ||
        length > BigInt(this.#limits.snapshot.maxRegionBytes)
      ) {
        throw this.#fail(
          `slot ${slot} length ${length} is not a whole number of pages within the region limit`,
        );
      }
      slots.push({ slot, flags, guestPhysAddr, length: Number(length) });
    }
    if (r.remaining !== 0) throw this.#fail("bytes follow the LAYOUT entries");
    return { kind: "layout", slots };
  }

  /**
   * The PAGES frame of payload length `n` at the head of the queue (CRC already checked): the
   * entry table is copied out (8 bytes a page), every data page is a view of the chunk it
   * arrived in, or a copy when a chunk boundary cuts it.
   */
  #pages(n: number): StreamItem {
    const PAYLOAD = 16;
    const fixed = new Reader(
      this.#q.copy(PAYLOAD, Math.min(n, 8), this.#scratchBytes),
      0,
      Math.min(n, 8),
      "SNAPSHOT_MALFORMED",
    );
    const slot = fixed.u32("slot");
    const count = fixed.u32("page count");
    if (count > MAX_PAGES_PER_FRAME)
      throw this.#fail(`${count} pages exceed the limit of ${MAX_PAGES_PER_FRAME}`);
    const tableBytes = Math.min(count * 8, n - 8);
    const raw = new Reader(
      this.#q.copy(PAYLOAD + 8, tableBytes),
      0,
      tableBytes,
      "SNAPSHOT_MALFORMED",
    ).view8(count * 8, "page entries");
    const table = new DataView(raw.buffer, raw.byteOffset, raw.length);
    let dataPages = 0;
    for (let i = 0; i < count; i++) {
      const kind = table.getUint32(8 * i + 4, true);
      if (kind > 1) throw this.#fail(`page kind ${kind} is not 0 (zero) or 1 (data)`);
      dataPages += kind;
    }
    const dataBytes = n - 8 - count * 8;
    if (dataBytes !== dataPages * PAGE_BYTES) {
      throw this.#fail(`PAGES frame carries ${dataBytes} data bytes for ${dataPages} data pages`);
    }
    const entries = new Uint32Array(2 * count);
    for (let i = 0; i < 2 * count; i++) entries[i] = table.getUint32(4 * i, true);
    const data = this.#pageData(PAYLOAD + 8 + count * 8, dataPages);
    return {
      kind: "pages",
      slot,
      entries,
      data,
      get pages() {
        return pageList(entries, data);
      },
    };
  }

  /**
   * `count` 4 KiB pages from queue offset `at` as views of the chunks that hold them, cut
   * wherever the chunks are (no copy, not even of a page a chunk boundary splits: a consumer
   * copies the bytes into place from both pieces).
   */
  #pageData(at: number, count: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    this.#q.forEach(at, count * PAGE_BYTES, (piece) => out.push(piece));
    return out;
  }

  /** SWITCHOVER: empty (1.2) or u32 count of the state frames that follow (1.3), bounded. */
  #switchover(r: Reader, length: number): StreamItem {
    if (length === 0) return { kind: "switchover" };
    if (length !== 4) throw this.#fail(`the SWITCHOVER frame has ${length} bytes, not 0 or 4`);
    const stateFrames = r.u32("state frames");
    const max = this.#limits.snapshot.maxSections;
    if (stateFrames > max)
      throw this.#fail(`${stateFrames} state frames exceed the limit of ${max}`);
    return { kind: "switchover", stateFrames };
  }

  #round(r: Reader): StreamItem {
    const round = r.u32("round");
    const sent = r.u64("pages sent");
    const left = r.u64("pages left");
    if (r.remaining !== 0) throw this.#fail("bytes follow the ROUND fields");
    return { kind: "round", round, sent, left };
  }
}
