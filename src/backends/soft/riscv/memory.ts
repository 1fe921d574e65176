/**
 * Guest-physical memory as the hart sees it: the kernel's memslots, each with the typed views
 * the access paths need, plus per-page "contains translated code" bits for self-modifying-code
 * detection (a store into a code chunk invalidates the page's translated blocks).
 */
import type { Memslot } from "./contract.js";

/** Code-tracking granularity inside a page: one bit per 32-byte chunk, 128 bits per page. */
export const CODE_CHUNK_SHIFT = 5;
const WORDS_PER_PAGE = 4;

/** One memslot with its views. */
export class Slot {
  readonly gpa: number;
  readonly end: number;
  readonly size: number;
  readonly readonly: boolean;
  readonly dv: DataView;
  /** Views for Atomics (LR/SC, AMOs, A/D updates); null when the bytes are not 8-aligned. */
  readonly i32: Int32Array | null;
  readonly i64: BigInt64Array | null;
  /** Per page: bitmap of 32-byte chunks covered by translated blocks. */
  readonly code: Uint32Array;
  /** Per page: 1 if any chunk bit is set (fast test). */
  readonly codePage: Uint8Array;
  /** KVM_MEM_LOG_DIRTY_PAGES: one byte per page, shared with the VM (null: not logged). */
  readonly dirty: Uint8Array | null;
  /** Offset of the slot's bytes in its hart's wasm memory, or -1 (not in it: slow path only). */
  wasmBase = -1;

  constructor(m: Memslot) {
    this.gpa = m.gpa;
    this.size = m.bytes.byteLength;
    this.end = m.gpa + this.size;
    this.readonly = m.readonly;
    const b = m.bytes;
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const aligned = b.byteOffset % 8 === 0 && b.byteLength % 8 === 0;
    // Element counts by division, not `>>`: a slot may be up to 4 GiB, and `>>` works on
    // int32 (a 2 GiB slot would give a negative count, a 4 GiB one a count of 0).
    this.i32 = aligned ? new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4) : null;
    this.i64 = aligned ? new BigInt64Array(b.buffer, b.byteOffset, b.byteLength / 8) : null;
    const pages = Math.ceil(this.size / 4096);
    this.code = new Uint32Array(pages * WORDS_PER_PAGE);
    this.codePage = new Uint8Array(pages);
    this.dirty = m.dirty ?? null;
  }

  /**
   * Logs a guest store at slot offset `off`. Called where a store takes the slow path: a
   * write-TLB refill (later fast-path stores to the page then need no mark, until the VM reads
   * the log and makes every hart drop its write-TLB entries), page-crossing stores, AMOs and
   * page-table A/D updates.
   */
  markDirty(off: number): void {
    const d = this.dirty;
    if (d !== null) Atomics.store(d, Math.floor(off / 4096), 1);
  }

  /** Marks bytes [off, off+len) of this slot as holding translated code. */
  markCode(off: number, len: number): void {
    const page = Math.floor(off / 4096);
    this.codePage[page] = 1;
    const first = (off & 4095) >>> CODE_CHUNK_SHIFT;
    const last = ((off & 4095) + len - 1) >>> CODE_CHUNK_SHIFT;
    for (let k = first; k <= Math.min(last, 127); k++) {
      const w = page * WORDS_PER_PAGE + (k >>> 5);
      this.code[w] = (this.code[w] ?? 0) | (1 << (k & 31));
    }
  }

  /** True if a store to [off, off+len) (within one page) touches a code chunk. */
  hitsCode(off: number, len: number): boolean {
    const page = Math.floor(off / 4096);
    if (this.codePage[page] === 0) return false;
    const first = (off & 4095) >>> CODE_CHUNK_SHIFT;
    const last = Math.min(((off & 4095) + len - 1) >>> CODE_CHUNK_SHIFT, 127);
    for (let k = first; k <= last; k++) {
      if ((((this.code[page * WORDS_PER_PAGE + (k >>> 5)] ?? 0) >>> (k & 31)) & 1) !== 0)
        return true;
    }
    return false;
  }

  /** Clears the code bits of one page. */
  clearCode(page: number): void {
    this.codePage[page] = 0;
    this.code.fill(0, page * WORDS_PER_PAGE, (page + 1) * WORDS_PER_PAGE);
  }

  /** Clears every code bit. */
  clearAllCode(): void {
    this.codePage.fill(0);
    this.code.fill(0);
  }
}

/** The memslot set, with a one-entry lookup cache. */
export class PhysMemory {
  slots: Slot[] = [];
  private last: Slot | null = null;
  /** Called with the new slots on every `set` (the Core places its wasm area: core.ts). */
  onSet: (slots: readonly Slot[]) => void = () => undefined;

  /** Replaces the slots. */
  set(slots: readonly Memslot[]): void {
    this.slots = slots.map((m) => new Slot(m));
    this.last = null;
    this.onSet(this.slots);
  }

  /** The slot holding guest-physical address pa (a double), or null. */
  find(pa: number): Slot | null {
    const l = this.last;
    if (l !== null && pa >= l.gpa && pa < l.end) return l;
    for (const s of this.slots) {
      if (pa >= s.gpa && pa < s.end) {
        this.last = s;
        return s;
      }
    }
    return null;
  }
}
