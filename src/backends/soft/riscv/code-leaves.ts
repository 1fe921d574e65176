/**
 * The leaves (4 KiB pages, 2 MiB and 1 GiB superpages) that the current address map's code
 * look-ups were made through: the engine's virtual-pc cache, the decode cache's virtual-page
 * look-up and the wasm dispatch cache (whose entries are made from virtual-pc cache hits).
 *
 * `sfence.vma addr` must drop every look-up made through the leaf that maps `addr` (privileged
 * spec "Supervisor Memory-Management Fence Instruction"); those caches are direct-mapped by pc,
 * so finding them is a scan of each cache (~7 K entries). Linux 6.1 fences single pages ~400
 * times per boot to /init, nearly all of them page-table, fixmap and vmalloc pages no code was
 * fetched from: measured ~11 ms of scans per boot. With the leaves recorded here a fence of a
 * leaf without code look-ups scans nothing, and one of a code leaf scans as before.
 *
 * Conservative by construction: every fill of those caches notes its leaf here (a superset:
 * entries evicted since stay noted), a leaf is forgotten only when a fence of it scanned them
 * all (`take`), and everything is forgotten when the map generation (`Core.mapGen`) changes,
 * which retires every look-up of the old one.
 */

/** Code look-up leaves of one map generation (see the module comment). */
export class CodeLeaves {
  /** The map generation the recorded leaves belong to. */
  private gen = 0;
  /** Per leaf size (log2 bytes: 12, 21, 30): the leaf numbers (address / size) noted. */
  private readonly bySize = new Map<number, Set<number>>();
  /** The last leaf noted (repeat notes of one leaf, the common case, cost two compares). */
  private lastBits = -1;
  private lastLeaf = Number.NaN;

  /** Notes that a code look-up of map generation `gen` translated `pc` through a 2^`bits` leaf. */
  note(gen: number, pc: number, bits: number): void {
    if (gen !== this.gen) this.reset(gen);
    const leaf = Math.floor(pc / 2 ** bits);
    if (leaf === this.lastLeaf && bits === this.lastBits) return;
    let set = this.bySize.get(bits);
    if (set === undefined) {
      set = new Set();
      this.bySize.set(bits, set);
    }
    set.add(leaf);
    this.lastBits = bits;
    this.lastLeaf = leaf;
  }

  /**
   * True if a code look-up of map generation `gen` may have been made through a leaf holding
   * virtual address `va`; those leaves are forgotten (the caller drops their look-ups now).
   */
  take(gen: number, va: number): boolean {
    if (gen !== this.gen) {
      this.reset(gen);
      return false;
    }
    let hit = false;
    for (const [bits, set] of this.bySize) {
      if (set.delete(Math.floor(va / 2 ** bits))) hit = true;
    }
    if (hit) {
      this.lastBits = -1;
      this.lastLeaf = Number.NaN;
    }
    return hit;
  }

  /** Forgets every leaf; look-ups are made under generation `gen` from now on. */
  private reset(gen: number): void {
    this.gen = gen;
    for (const set of this.bySize.values()) set.clear();
    this.lastBits = -1;
    this.lastLeaf = Number.NaN;
  }
}
