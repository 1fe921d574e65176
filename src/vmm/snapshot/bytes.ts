/**
 * Bounded little-endian reading and chunked writing for the snapshot codec.
 *
 * `Reader` checks every access against its window before touching the `DataView`, so a
 * decoder built on it can only throw `SnapshotFormatError` (STYLE.md: decoders of untrusted
 * bytes never leak a `RangeError` from a typed-array access).
 */
import { SnapshotFormatError, type SnapshotErrorCode } from "./errors.js";

/** A cursor over `bytes[start, end)` that throws a format error instead of overrunning. */
export class Reader {
  private readonly view: DataView;
  private position: number;

  /**
   * @param overrun code to throw when a read would pass `end` (TRUNCATED for the container,
   *   MALFORMED inside a section whose length is already known).
   * @param section section index for error messages, if any.
   */
  constructor(
    private readonly bytes: Uint8Array,
    start: number,
    readonly end: number,
    private readonly overrun: SnapshotErrorCode,
    private readonly section?: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.position = start;
  }

  /** Current absolute offset. */
  get pos(): number {
    return this.position;
  }

  /** Bytes left before `end`. */
  get remaining(): number {
    return this.end - this.position;
  }

  /** A format error located at the current offset (and section, if any). */
  fail(code: SnapshotErrorCode, detail: string, offset = this.position): SnapshotFormatError {
    return new SnapshotFormatError(code, detail, {
      offset,
      ...(this.section === undefined ? {} : { section: this.section }),
    });
  }

  /** Throws unless `n` more bytes are available; `what` names the field for the message. */
  need(n: number, what: string): void {
    if (n > this.remaining) {
      throw this.fail(
        this.overrun,
        `${what} needs ${n} bytes but only ${this.remaining} remain before offset ${this.end}`,
      );
    }
  }

  /** Reads a u8. */
  u8(what: string): number {
    this.need(1, what);
    return this.view.getUint8(this.position++);
  }

  /** Reads a little-endian u16. */
  u16(what: string): number {
    this.need(2, what);
    const v = this.view.getUint16(this.position, true);
    this.position += 2;
    return v;
  }

  /** Reads a little-endian u32. */
  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.position, true);
    this.position += 4;
    return v;
  }

  /** The little-endian u32 at `ahead` bytes past the cursor, without moving it. */
  peekU32(ahead: number, what: string): number {
    this.need(ahead + 4, what);
    return this.view.getUint32(this.position + ahead, true);
  }

  /** Reads a little-endian u64 as a bigint. */
  u64(what: string): bigint {
    this.need(8, what);
    const v = this.view.getBigUint64(this.position, true);
    this.position += 8;
    return v;
  }

  /** A view of the next `n` bytes (no copy); the caller copies what it keeps. */
  view8(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.bytes.subarray(this.position, this.position + n);
    this.position += n;
    return out;
  }

  /** Skips `n` bytes. */
  skip(n: number, what: string): void {
    this.need(n, what);
    this.position += n;
  }
}

/**
 * Converts a u64 length to a number after checking it against `limit` (≤ 2^53), so no
 * arithmetic ever runs on an unbounded value.
 */
export function boundedLength(
  r: Reader,
  value: bigint,
  limit: number,
  what: string,
  offset: number,
): number {
  if (value > BigInt(limit)) {
    throw r.fail("SNAPSHOT_LIMIT", `${what} ${value} exceeds the limit of ${limit}`, offset);
  }
  return Number(value);
}

/** Builds a little-endian byte string from fixed-size fields and byte chunks. */
export class Writer {
  private readonly chunks: Uint8Array[] = [];
  private readonly scratch = new DataView(new ArrayBuffer(8));

  /** Total bytes written so far. */
  length = 0;

  private fixed(n: number): void {
    this.chunks.push(new Uint8Array(this.scratch.buffer.slice(0, n)));
    this.length += n;
  }

  /** Appends a u8. */
  u8(v: number): this {
    this.scratch.setUint8(0, v);
    this.fixed(1);
    return this;
  }

  /** Appends a little-endian u16. */
  u16(v: number): this {
    this.scratch.setUint16(0, v, true);
    this.fixed(2);
    return this;
  }

  /** Appends a little-endian u32. */
  u32(v: number): this {
    this.scratch.setUint32(0, v, true);
    this.fixed(4);
    return this;
  }

  /** Appends a little-endian u64. */
  u64(v: bigint): this {
    this.scratch.setBigUint64(0, v, true);
    this.fixed(8);
    return this;
  }

  /** Appends bytes by reference (not copied until `parts()` is consumed). */
  bytes(b: Uint8Array): this {
    this.chunks.push(b);
    this.length += b.length;
    return this;
  }

  /** The chunks written, in order. */
  parts(): readonly Uint8Array[] {
    return this.chunks;
  }
}

/** Concatenates chunks into one array of exactly their total length. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
