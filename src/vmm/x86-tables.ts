/**
 * Bytes of the x86 descriptor and page tables the VMM writes for protected- and long-mode
 * guests (Intel SDM Vol. 3A §3.4.5 "Segment Descriptors", §7.2.3 "TSS Descriptor in 64-bit
 * Mode", §4.5 "4-Level Paging"), and the segment values a CPU caches after loading them.
 *
 * Descriptor bit layout (u64, little-endian in memory): limit[15:0] 0–15, base[23:0] 16–39,
 * type 40–43, S 44, DPL 45–46, P 47, limit[19:16] 48–51, AVL 52, L 53, D/B 54, G 55,
 * base[31:24] 56–63. A 64-bit system descriptor (TSS) takes two slots, base[63:32] in the
 * low half of the second.
 */

/** `struct kvm_segment` as a plain object (arch/x86/include/uapi/asm/kvm.h; abi §5.2). */
export interface KvmSegment {
  readonly base: bigint;
  readonly limit: number;
  readonly selector: number;
  readonly type: number;
  readonly present: number;
  readonly dpl: number;
  readonly db: number;
  readonly s: number;
  readonly l: number;
  readonly g: number;
  readonly avl: number;
  readonly unusable: number;
}

/** Segment types (SDM Table 3-1/3-2), all with the accessed bit set as VMX requires. */
export const SEG_TYPE = {
  DATA_RW: 0x3,
  CODE_XR: 0xb,
  LDT: 0x2,
  TSS_BUSY_16: 0x3,
  TSS_BUSY: 0xb,
} as const;

/** Encodes one 8-byte segment descriptor from the cached fields (only the low 32 base bits). */
export function encodeDescriptor(seg: KvmSegment): bigint {
  // The 20-bit limit field holds limit >> 12 when G is set (SDM §3.4.5).
  const raw = BigInt(seg.g === 1 ? seg.limit >>> 12 : seg.limit);
  const base = seg.base & 0xffff_ffffn;
  return (
    (raw & 0xffffn) |
    ((base & 0xff_ffffn) << 16n) |
    (BigInt(seg.type & 0xf) << 40n) |
    (BigInt(seg.s & 1) << 44n) |
    (BigInt(seg.dpl & 3) << 45n) |
    (BigInt(seg.present & 1) << 47n) |
    (((raw >> 16n) & 0xfn) << 48n) |
    (BigInt(seg.avl & 1) << 52n) |
    (BigInt(seg.l & 1) << 53n) |
    (BigInt(seg.db & 1) << 54n) |
    (BigInt(seg.g & 1) << 55n) |
    ((base >> 24n) << 56n)
  );
}

/** Decodes an 8-byte descriptor into the fields a CPU caches (selector left 0). */
export function decodeDescriptor(desc: bigint): KvmSegment {
  const bit = (n: bigint): number => Number((desc >> n) & 1n);
  const g = bit(55n);
  const raw = Number((desc & 0xffffn) | (((desc >> 48n) & 0xfn) << 16n));
  return {
    base: ((desc >> 16n) & 0xff_ffffn) | (((desc >> 56n) & 0xffn) << 24n),
    limit: g === 1 ? ((raw << 12) | 0xfff) >>> 0 : raw,
    selector: 0,
    type: Number((desc >> 40n) & 0xfn),
    present: bit(47n),
    dpl: Number((desc >> 45n) & 3n),
    db: bit(54n),
    s: bit(44n),
    l: bit(53n),
    g,
    avl: bit(52n),
    unusable: 0,
  };
}

/**
 * GDT bytes: slot 0 null, then each segment's descriptor at `selector / 8`. A system segment
 * (s = 0) with `wide` set takes two slots (64-bit TSS), carrying base[63:32].
 */
export function buildGdt(entries: readonly { seg: KvmSegment; wide: boolean }[]): Uint8Array {
  const slots = Math.max(1, ...entries.map((e) => (e.seg.selector >> 3) + (e.wide ? 2 : 1)));
  const out = new Uint8Array(8 * slots);
  const view = new DataView(out.buffer);
  for (const { seg, wide } of entries) {
    const at = seg.selector & ~7;
    view.setBigUint64(at, encodeDescriptor(seg), true);
    if (wide) view.setBigUint64(at + 8, seg.base >> 32n, true);
  }
  return out;
}

/** Page-table entry flags (SDM §4.5, Table 4-15..4-18). */
export const PTE = { P: 1n, RW: 2n, PS: 0x80n } as const;

const PAGE = 0x1000;
const TWO_MIB = 1n << 21n;
const ONE_GIB = 1n << 30n;

/**
 * Identity-mapping 4-level page tables at `base` (4 KiB aligned): PML4, one PDPT, then one
 * page directory per GiB with 2 MiB pages (PS=1), so virtual == physical for `[0, gib GiB)`.
 * Entries are present + writable, supervisor, cacheable. Layout: PML4 at base, PDPT at
 * base + 4 KiB, PD for GiB i at base + (2 + i) × 4 KiB.
 * @throws RangeError when `gib` is not 1..512 (one PDPT) or `base` is not page aligned.
 */
export function buildIdentityPageTables(base: bigint, gib: number): Uint8Array {
  if (!Number.isInteger(gib) || gib < 1 || gib > 512)
    throw new RangeError(`gib must be 1..512, got ${gib}`);
  if (base % BigInt(PAGE) !== 0n) throw new RangeError("page tables must be 4 KiB aligned");
  const out = new Uint8Array(PAGE * (2 + gib));
  const view = new DataView(out.buffer);
  const table = (i: number): bigint => base + BigInt(PAGE * i);
  view.setBigUint64(0, table(1) | PTE.P | PTE.RW, true);
  for (let g = 0; g < gib; g++) {
    view.setBigUint64(PAGE + 8 * g, table(2 + g) | PTE.P | PTE.RW, true);
    for (let e = 0; e < 512; e++) {
      const phys = BigInt(g) * ONE_GIB + BigInt(e) * TWO_MIB;
      view.setBigUint64(PAGE * (2 + g) + 8 * e, phys | PTE.P | PTE.RW | PTE.PS, true);
    }
  }
  return out;
}
