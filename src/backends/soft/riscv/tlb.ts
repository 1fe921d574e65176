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
 * Precise invalidation (privileged spec "Supervisor Memory-Management Fence Instruction"): each
 * entry records the size of the leaf PTE it came from (`bits`: 12, 21 or 30) and whether that leaf
 * is a U page, so `sfence.vma addr` drops only the entries of the fenced leaf, and SUM and mode
 * changes drop only the entries the new state forbids (Core.setMode, csr.ts writeSstatus).
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
  /** log2 of the size of the leaf each entry was made from (12, 21, 30). */
  readonly bits = new Uint8Array(TLB_SIZE);
  /** 1 if the entry's leaf PTE has U set. */
  readonly user = new Uint8Array(TLB_SIZE);
  /** Entries of U pages / of other pages / of superpages may be present (cleared by a scan). */
  private anyUser = false;
  private anySuper = false;
  private anyBig = false;

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
   * Enters virtual page (lo, hi) → physical page `pa` in `slot`, made from a leaf of 2^`bits`
   * bytes with U = `user`; pages not wholly inside the slot (a slot size that is not a page
   * multiple) stay on the slow path, which bounds-checks.
   */
  fill(lo: number, hi: number, pa: number, slot: Slot, bits: number, user: boolean): void {
    const i = (lo >>> 12) & (TLB_SIZE - 1);
    const page = pa - (pa % 4096);
    if (page < slot.gpa || page + 4096 > slot.end) return;
    this.bits[i] = bits;
    this.user[i] = user ? 1 : 0;
    if (user) this.anyUser = true;
    else this.anySuper = true;
    if (bits > 12) this.anyBig = true;
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
    this.anyUser = false;
    this.anySuper = false;
    this.anyBig = false;
  }

  private drop(i: number): void {
    this.tagLo[i] = TLB_EMPTY;
    this.wTag[2 * i] = TLB_EMPTY;
  }

  /**
   * `sfence.vma` of virtual address (lo, hi): empties every entry made from the leaf that maps
   * it, i.e. every entry inside the 4 KiB/2 MiB/1 GiB range its own `bits` say its leaf covers.
   */
  flushVa(lo: number, hi: number): void {
    if (!this.anyBig) {
      // Only 4 KiB leaves: the one entry the page indexes is the only candidate.
      const i = (lo >>> 12) & (TLB_SIZE - 1);
      if (this.tagLo[i] !== TLB_EMPTY && (this.tagLo[i] ?? 0) >>> 12 === lo >>> 12) {
        if (this.tagHi[i] === hi) this.drop(i);
      }
      return;
    }
    for (let i = 0; i < TLB_SIZE; i++) {
      const t = this.tagLo[i] ?? 0;
      if (t === TLB_EMPTY || this.tagHi[i] !== hi) continue;
      if ((t ^ lo) >>> (this.bits[i] ?? 12) === 0) this.drop(i);
    }
  }

  /** Empties the entries of U pages (none made since the last call: nothing to scan). */
  flushUser(): void {
    if (!this.anyUser) return;
    for (let i = 0; i < TLB_SIZE; i++) if (this.user[i] === 1) this.drop(i);
    this.anyUser = false;
  }

  /** Empties the entries of non-U pages (none made since the last call: nothing to scan). */
  flushSupervisor(): void {
    if (!this.anySuper) return;
    for (let i = 0; i < TLB_SIZE; i++) if (this.user[i] === 0) this.drop(i);
    this.anySuper = false;
  }

  /** Empties the entries that map guest-physical page `page`. */
  flushPhys(page: number): void {
    for (let i = 0; i < TLB_SIZE; i++) {
      if (this.phys[i] === page) this.drop(i);
    }
  }
}
