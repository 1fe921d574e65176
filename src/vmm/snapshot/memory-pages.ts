/**
 * Guest RAM of a snapshot page by page, at the cost of what the file holds: a decoded sparse
 * region (model.ts `SparsePages`) is read through its bitmap and stored pages, never expanded
 * to its declared length — a 131 KB file may declare 4 GiB of zero pages.
 */
import { Buffer } from "node:buffer";
import { sameBytes } from "./describe.js";
import { SNAPSHOT_PAGE_BYTES as PAGE, type MemoryRegion, type SparsePages } from "./model.js";

/** The region's length in bytes (without expanding a sparse region). */
export function regionLength(m: MemoryRegion): number {
  return m.sparse?.length ?? m.data.length;
}

/** The region's bytes, zero pages included: what `data` of a decoded sparse region holds. */
export function expandSparse(sparse: SparsePages): Uint8Array {
  const data = new Uint8Array(sparse.length);
  forEachStoredPage({ slot: 0, flags: 0, gpa: 0n, data, sparse }, (offset, bytes) => {
    data.set(bytes, offset);
  });
  return data;
}

/**
 * A decoded sparse region: `data` expanded on first access only (and kept), for callers that
 * want the bytes whole; `sparse` as stored, non-enumerable — how the file stored the pages
 * is not part of the value, so a decoded snapshot stays deep-equal to the one encoded.
 */
export function sparseRegion(
  slot: number,
  flags: number,
  gpa: bigint,
  sparse: SparsePages,
): MemoryRegion {
  let data: Uint8Array | undefined;
  const region = {
    slot,
    flags,
    gpa,
    get data(): Uint8Array {
      data ??= expandSparse(sparse);
      return data;
    },
  };
  return Object.defineProperty(region, "sparse", { value: sparse, enumerable: false });
}

/** Pages of the region (the last one may be short). */
export function regionPages(m: MemoryRegion): number {
  return Math.ceil(regionLength(m) / PAGE);
}

const bitSet = (bitmap: Uint8Array, p: number): boolean =>
  (((bitmap[p >> 3] ?? 0) >> (p & 7)) & 1) !== 0;

/**
 * Calls `visit` with each page the region holds bytes for, in order: a sparse region's stored
 * pages, every page of a raw one. Pages not visited are all zero.
 */
export function forEachStoredPage(
  m: MemoryRegion,
  visit: (offset: number, bytes: Uint8Array) => void,
): void {
  const sparse = m.sparse;
  if (sparse === undefined) {
    const data = m.data;
    for (let at = 0; at < data.length; at += PAGE) visit(at, data.subarray(at, at + PAGE));
    return;
  }
  const { bitmap, stored, length } = sparse;
  let from = 0;
  for (let byte = 0; byte < bitmap.length; byte++) {
    if (bitmap[byte] === 0) continue; // eight zero pages at once
    for (let p = byte * 8; p < byte * 8 + 8; p++) {
      if (!bitSet(bitmap, p)) continue;
      const size = Math.min(PAGE, length - p * PAGE);
      visit(p * PAGE, stored.subarray(from, from + size));
      from += size;
    }
  }
}

const ZERO_PAGE = new Uint8Array(PAGE);

/** True when the page (at most one page of bytes) is all zero: a memcmp, not a byte loop. */
export function isZeroPage(bytes: Uint8Array): boolean {
  return Buffer.compare(bytes, ZERO_PAGE.subarray(0, bytes.length)) === 0;
}

/** All-zero pages of the region: the pages not stored, plus stored pages that are zero. */
export function zeroPageCount(m: MemoryRegion): number {
  let nonZero = 0;
  forEachStoredPage(m, (_, bytes) => {
    if (!isZeroPage(bytes)) nonZero++;
  });
  return regionPages(m) - nonZero;
}

/** Non-zero pages by page number (the region's content, sparse). */
function nonZeroPages(m: MemoryRegion): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  forEachStoredPage(m, (offset, bytes) => {
    if (!isZeroPage(bytes)) out.set(offset / PAGE, bytes);
  });
  return out;
}

/**
 * Pages that differ between two regions of the same length, visiting only the pages either
 * file holds: a page absent on one side is zero there.
 */
export function changedPageCount(a: MemoryRegion, b: MemoryRegion): number {
  const pa = nonZeroPages(a);
  const pb = nonZeroPages(b);
  let n = 0;
  for (const [p, bytes] of pa) {
    const other = pb.get(p);
    if (other === undefined || !sameBytes(bytes, other)) n++;
  }
  for (const p of pb.keys()) if (!pa.has(p)) n++;
  return n;
}
