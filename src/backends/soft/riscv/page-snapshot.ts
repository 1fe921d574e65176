/**
 * A copy of one guest-physical code page, for fence.i: whether any translated block decoded
 * from the page may have been changed behind this hart's back.
 *
 * This hart's own stores into decoded bytes are seen as they happen (the code bitmap,
 * access.ts) and the VMM's writes are reported (`Hart.invalidateCode`); only other vCPUs' stores
 * are not, so fence.i (and SBI remote fence.i) must compare what was decoded with memory. Linux
 * 6.1 runs ~220 of them per boot to /init (kernel text patching), and each compared every
 * translated block instruction by instruction (`Block.matches`: ~10 ms per boot, measured);
 * with a snapshot, a page whose span of block bytes still equals it costs one word loop over
 * that span (~4 ms). The decode cache's pages (predecode.ts) keep their own precise re-check:
 * their decoded words spread over the whole page, and comparing a whole page costs as much
 * (both are bound by the page's cache misses).
 *
 * Invariant (while not `mixed`): every block decoded from the page was decoded from the bytes
 * the snapshot holds at its place. `note` keeps it by checking, at each new block, that memory
 * still equals the snapshot under the block's words; if not (bytes changed since the copy,
 * unseen), the page is `mixed` and `intact` answers false until `retake`, which the caller calls
 * only after a precise check found every block equal to memory. So when the span equals the
 * snapshot, every block equals memory.
 */
import type { Slot } from "./memory.js";

/** Words (int32) in a 4 KiB page. */
const PAGE_WORDS = 1024;

/** The snapshot of one code page (see the module comment). */
export class PageSnapshot {
  private readonly slot: Slot;
  /** The page's first word in `slot.i32`. */
  private readonly base: number;
  private readonly words: Int32Array;
  /** Word span [lo, hi) holding every block's bytes. */
  private lo = PAGE_WORDS;
  private hi = 0;
  /** The slot has an int32 view holding the whole page (else every check is precise). */
  private readonly usable: boolean;
  /** The invariant is broken (or cannot hold: not `usable`): check precisely. */
  private mixed: boolean;

  /** Copies the page at offset `off` of `slot` (a page that starts or ends outside it: none). */
  constructor(slot: Slot, off: number) {
    this.slot = slot;
    this.base = off / 4;
    this.words = new Int32Array(PAGE_WORDS);
    this.usable = slot.i32 !== null && off >= 0 && off % 4 === 0 && off + 4096 <= slot.size;
    this.mixed = true;
    this.retake();
  }

  /**
   * Records that the bytes [at, at + len) of the page (offsets inside it) were just decoded
   * from memory (a new block): they join the span, and if memory no longer equals the copy there, the page
   * is checked precisely from now on.
   */
  note(at: number, len: number): void {
    if (this.mixed) return;
    const first = at >>> 2;
    const end = Math.min((at + len + 3) >>> 2, PAGE_WORDS);
    const mem = this.slot.i32;
    if (mem === null) return;
    for (let i = first; i < end; i++) {
      if (mem[this.base + i] !== this.words[i]) {
        this.mixed = true;
        return;
      }
    }
    if (first < this.lo) this.lo = first;
    if (end > this.hi) this.hi = end;
  }

  /** True if no block of the page can differ from memory (see the invariant). */
  intact(): boolean {
    if (this.mixed) return false;
    const mem = this.slot.i32;
    if (mem === null) return false;
    const words = this.words;
    const base = this.base;
    for (let i = this.lo; i < this.hi; i++) {
      if (mem[base + i] !== words[i]) return false;
    }
    return true;
  }

  /** Copies the page again: the caller found every block equal to memory. */
  retake(): void {
    const mem = this.slot.i32;
    if (!this.usable || mem === null) return;
    this.words.set(mem.subarray(this.base, this.base + PAGE_WORDS));
    this.mixed = false;
  }
}
