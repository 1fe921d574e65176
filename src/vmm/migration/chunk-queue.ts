/**
 * The bytes a migration decoder has received and not yet decoded, kept as the chunks they
 * arrived in (no copy into one growing buffer): a frame's CRC is checked over the chunks in
 * place and its pages are handed out as views of them, so a page's bytes are copied once, from
 * the socket's chunk into guest RAM. Only small pieces (frame headers, PAGES entry tables,
 * non-PAGES payloads, a page cut by a chunk boundary) are copied out.
 *
 * The queue keeps references to what `push` gave it until `consume` passes them: the caller
 * must not change pushed bytes afterwards (socket chunks are fresh per read).
 */
import { crc32c } from "../snapshot/crc32c.js";

/** Unconsumed bytes as a queue of the chunks they arrived in. */
export class ChunkQueue {
  readonly #chunks: Uint8Array[] = [];
  /** Bytes of `#chunks[0]` already consumed. */
  #head = 0;
  #length = 0;

  /** Bytes queued. */
  get length(): number {
    return this.#length;
  }

  /** Queues `bytes` (by reference). */
  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#chunks.push(bytes);
    this.#length += bytes.length;
  }

  /**
   * Calls `visit` with views covering bytes [offset, offset + n) in order (no copy).
   * @throws RangeError when fewer bytes are queued.
   */
  forEach(offset: number, n: number, visit: (piece: Uint8Array) => void): void {
    if (offset < 0 || n < 0 || offset + n > this.#length) {
      throw new RangeError(`ChunkQueue: bytes ${offset}+${n} are not all queued`);
    }
    let skip = this.#head + offset;
    let left = n;
    for (let i = 0; left > 0; i++) {
      const chunk = this.#chunks[i];
      if (chunk === undefined) break;
      if (skip >= chunk.length) {
        skip -= chunk.length;
        continue;
      }
      const take = Math.min(chunk.length - skip, left);
      visit(chunk.subarray(skip, skip + take));
      left -= take;
      skip = 0;
    }
  }

  /** A copy of bytes [offset, offset + n) (into `into` when given). */
  copy(offset: number, n: number, into = new Uint8Array(n)): Uint8Array {
    let at = 0;
    this.forEach(offset, n, (piece) => {
      into.set(piece, at);
      at += piece.length;
    });
    return into;
  }

  /**
   * Bytes [offset, offset + n): a view of the chunk that holds them all, else a copy.
   */
  view(offset: number, n: number): Uint8Array {
    let found: Uint8Array | undefined;
    let pieces = 0;
    this.forEach(offset, n, (piece) => {
      found = piece;
      pieces++;
    });
    return pieces === 1 && found !== undefined ? found : this.copy(offset, n);
  }

  /** CRC32C of bytes [offset, offset + n), checked over the chunks in place. */
  crc32c(offset: number, n: number): number {
    let crc = 0;
    this.forEach(offset, n, (piece) => {
      crc = crc32c(piece, crc);
    });
    return crc;
  }

  /** Drops the first `n` bytes (the chunks they used are released). */
  consume(n: number): void {
    if (n < 0 || n > this.#length) throw new RangeError(`ChunkQueue: cannot consume ${n} bytes`);
    this.#length -= n;
    let left = n + this.#head;
    let drop = 0;
    for (const chunk of this.#chunks) {
      if (left < chunk.length) break;
      left -= chunk.length;
      drop++;
    }
    this.#chunks.splice(0, drop);
    this.#head = left;
  }
}
