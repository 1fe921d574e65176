/**
 * The soft TLB: three direct-mapped tables (read, write, execute) from a 4 KiB virtual page to a
 * RAM page (the slot's DataView and the page's offset in it). MMIO pages are never entered, and
 * write entries are never made for pages holding translated code, so the fast paths need no
 * further checks (docs/soft-riscv-notes.md §2.3 item 4).
 *
 * Each table keeps a mirror in the hart's wasm area (wasm-memory.ts) for compiled regions: the
 * same tags, and an i32 addend from the guest address's low word to the page's bytes in the
 * wasm memory. Entries of slots outside that memory stay empty in the mirror (the region then
 * calls the JS slow path, which finds them here).
 *
 * Tag trick (as in QEMU's softmmu): the tag is the page-aligned low word of the address, so an
 * access of size n compares `(lo & (-4096 | (n - 1)))` with the tag; a misaligned address has
 * low bits set, misses, and takes the slow path, which handles misalignment and page crossing.
 */
import type { Slot } from "./memory.js";

/** log2 of the number of entries per table. */
export const TLB_BITS = 8;
/** Entries per table. */
export const TLB_SIZE = 1 << TLB_BITS;
/**
 * The tag of an empty entry: bit 11 set. Masked addresses `lo & (-4096 | (n - 1))` with n ≤ 8
 * always have bits 3..11 clear, so no access, aligned or not, can match it.
 */
export const TLB_EMPTY = 0x800;
/** Placeholder view of empty entries (never read: their tags cannot match). */
export const EMPTY_VIEW = new DataView(new ArrayBuffer(8));

/** One direct-mapped table. */
export class TlbTable {
  readonly tagLo = new Int32Array(TLB_SIZE).fill(TLB_EMPTY);
  readonly tagHi = new Int32Array(TLB_SIZE);
  /** The RAM view of the entry's slot. */
  /** Offset of the page's first byte inside the slot. */
  readonly off = new Float64Array(TLB_SIZE);
  /** Guest-physical page address (for invalidating write entries of a code page). */
  readonly phys = new Float64Array(TLB_SIZE);
  /** The slot of each entry (for the slow paths). */
  readonly slot: (Slot | null)[] = new Array<Slot | null>(TLB_SIZE).fill(null);

  readonly dv = new Array<DataView>(TLB_SIZE).fill(EMPTY_VIEW);

  /**
   * The wasm mirror (views into the hart's area): i64 tags as (lo, hi) word pairs, so wasm
   * compares a whole address with one i64 load; addends.
   */
  private wTag: Int32Array = new Int32Array(2 * TLB_SIZE).fill(TLB_EMPTY);
  private wAdd: Int32Array = new Int32Array(TLB_SIZE);

  /** Moves the wasm mirror to `area` words at byte offsets `tag` and `add`; empties it. */
  bindWasm(area: Int32Array, tag: number, add: number): void {
    this.wTag = area.subarray(tag / 4, tag / 4 + 2 * TLB_SIZE);
    this.wAdd = area.subarray(add / 4, add / 4 + TLB_SIZE);
    this.flush();
  }

  /**
   * Enters virtual page (lo, hi) → physical page `pa` in `slot`; pages not wholly inside the
   * slot (a slot size that is not a page multiple) stay on the slow path, which bounds-checks.
   */
  fill(lo: number, hi: number, pa: number, slot: Slot): void {
    const i = (lo >>> 12) & (TLB_SIZE - 1);
    const page = pa - (pa % 4096);
    if (page < slot.gpa || page + 4096 > slot.end) return;
    this.tagLo[i] = lo & -4096;
    this.tagHi[i] = hi;
    this.dv[i] = slot.dv;
    this.off[i] = page - slot.gpa;
    this.phys[i] = page;
    this.slot[i] = slot;
    if (slot.wasmBase < 0) {
      this.wTag[2 * i] = TLB_EMPTY;
      return;
    }
    this.wTag[2 * i] = lo & -4096;
    this.wTag[2 * i + 1] = hi;
    // i32 wrap-around is intended: (lo + addend) mod 2^32 is the byte's wasm address.
    this.wAdd[i] = (slot.wasmBase + (page - slot.gpa) - (lo & -4096)) | 0;
  }

  /** Empties every entry. */
  flush(): void {
    this.tagLo.fill(TLB_EMPTY);
    this.wTag.fill(TLB_EMPTY); // high words too: a low word of 0x800 never matches anyway
  }

  /** Empties the entries that map guest-physical page `page`. */
  flushPhys(page: number): void {
    for (let i = 0; i < TLB_SIZE; i++) {
      if (this.phys[i] === page) {
        this.tagLo[i] = TLB_EMPTY;
        this.wTag[2 * i] = TLB_EMPTY;
      }
    }
  }
}
