/**
 * Guest-virtual to guest-physical translation for a debugger, from `satp` (RISC-V privileged
 * spec, "Supervisor-Level ISA", §Sv32/Sv39/Sv48/Sv57 "Virtual Address Translation Process").
 *
 * satp (RV64): MODE bits 63:60 (0 Bare, 8 Sv39, 9 Sv48, 10 Sv57), ASID 59:44, PPN 43:0.
 * A PTE is 8 bytes: V bit 0, R 1, W 2, X 3, U 4, G 5, A 6, D 7, PPN bits 53:10. A PTE with
 * R or X set is a leaf; V clear, or W without R, is invalid; a superpage whose low PPN bits are
 * not zero is misaligned (a fault). The walk is the hardware's minus the permission, A/D and
 * privilege checks: a debugger reads kernel and user mappings alike and changes nothing.
 */

/** Reads 8 bytes of guest-physical memory, little-endian; undefined outside RAM. */
export type PhysRead64 = (address: bigint) => bigint | undefined;

const PAGE_SHIFT = 12n;
const PTE = { V: 1n, R: 2n, W: 4n, X: 8n } as const;

/** Paging levels per satp MODE (0 = Bare: no translation). */
const LEVELS: Readonly<Record<number, number>> = { 0: 0, 8: 3, 9: 4, 10: 5 };

/**
 * The guest-physical address of `va` under `satp`, or undefined when it is not mapped (invalid
 * or misaligned PTE, a non-canonical address, a page table outside RAM, an unknown MODE).
 */
export function translateRiscv(satp: bigint, va: bigint, read: PhysRead64): bigint | undefined {
  const levels = LEVELS[Number((satp >> 60n) & 0xfn)];
  if (levels === undefined) return undefined;
  if (levels === 0) return va;
  const vaBits = BigInt(12 + 9 * levels);
  // Bits above the VA width must all equal its top bit (canonical form).
  const top = va >> (vaBits - 1n);
  if (top !== 0n && top !== (1n << (64n - vaBits + 1n)) - 1n) return undefined;
  let table = (satp & ((1n << 44n) - 1n)) << PAGE_SHIFT;
  for (let level = levels - 1; level >= 0; level--) {
    const shift = PAGE_SHIFT + 9n * BigInt(level);
    const vpn = (va >> shift) & 0x1ffn;
    const pte = read(table + vpn * 8n);
    if (pte === undefined || (pte & PTE.V) === 0n) return undefined;
    if ((pte & (PTE.R | PTE.W)) === PTE.W) return undefined;
    const ppn = (pte >> 10n) & ((1n << 44n) - 1n);
    if ((pte & (PTE.R | PTE.X)) !== 0n) {
      const lowPages = (1n << (9n * BigInt(level))) - 1n;
      if ((ppn & lowPages) !== 0n) return undefined;
      return (ppn << PAGE_SHIFT) | (va & ((1n << shift) - 1n));
    }
    table = ppn << PAGE_SHIFT;
  }
  return undefined;
}
