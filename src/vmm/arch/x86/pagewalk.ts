/**
 * Linear to guest-physical translation for a debugger, from CR0/CR3/CR4/EFER (Intel SDM Vol. 3A
 * chapter 4 "Paging": §4.3 32-bit, §4.4 PAE, §4.5 4-level and 5-level paging).
 *
 * - CR0.PG clear: no paging, linear = physical (below 4 GiB: without long mode a linear address
 *   has 32 bits).
 * - CR4.PAE clear: 32-bit paging, 4-byte entries; a PDE with PS (and CR4.PSE) maps 4 MiB, its
 *   physical bits 39:32 in PDE bits 20:13 (PSE-36).
 * - PAE without EFER.LMA: CR3 bits 31:5 point at 4 PDPTEs; then PD (PS: 2 MiB) and PT.
 * - EFER.LMA: 4-level (CR4.LA57 clear, 48-bit linear) or 5-level (57-bit); a PDPTE with PS maps
 *   1 GiB, a PDE with PS 2 MiB. A non-canonical address is unmapped.
 *
 * Entries are 8 bytes except in 32-bit paging; P is bit 0, PS bit 7, the next table or page
 * frame is bits 51:12 (MAXPHYADDR at most 52). Like the RISC-V walk (../riscv/pagewalk.ts) this
 * is the hardware's walk minus the permission, reserved-bit, accessed and dirty handling: a
 * debugger reads supervisor and user mappings alike and changes nothing.
 *
 * Why a walk rather than KVM_TRANSLATE: it works the same on every backend, needs no ioctl on a
 * vCPU that may be running, and is tested without /dev/kvm. (KVM_TRANSLATE works on the kvm_pvm
 * host too: docs/kvm-guest-debug.md.)
 */
import { X86_PSEUDO, structFromPseudoValue } from "../../../abi/arch/x86/pseudo.js";
import { decodeKvmSregs } from "../../../abi/kvm/x86-structs.js";
import type { Vcpu } from "../../../backends/vcpu.js";

/** Reads 8 bytes of guest-physical memory, little-endian; undefined outside RAM. */
export type PhysRead64 = (address: bigint) => bigint | undefined;

/** The control registers that decide x86 paging. */
export interface X86Paging {
  readonly cr0: bigint;
  readonly cr3: bigint;
  readonly cr4: bigint;
  readonly efer: bigint;
}

const CR0_PG = 1n << 31n;
const CR4 = { PSE: 1n << 4n, PAE: 1n << 5n, LA57: 1n << 12n } as const;
const EFER_LMA = 1n << 10n;
const P = 1n;
const PS = 1n << 7n;
/** Bits 51:12 of an 8-byte entry: the next table or the page frame. */
const FRAME = ((1n << 52n) - 1n) & ~0xfffn;
const FOUR_GIB = 1n << 32n;

const low = (bits: bigint): bigint => (1n << bits) - 1n;

/**
 * The guest-physical address of linear address `va` under `paging`, or undefined when it is not
 * mapped (a non-present entry, a non-canonical address, a table outside RAM).
 */
export function translateX86(paging: X86Paging, va: bigint, read: PhysRead64): bigint | undefined {
  if (va < 0n || va >= 1n << 64n) return undefined;
  const long = (paging.efer & EFER_LMA) !== 0n;
  if ((paging.cr0 & CR0_PG) === 0n) return long || va < FOUR_GIB ? va : undefined;
  if ((paging.cr4 & CR4.PAE) === 0n) return va < FOUR_GIB ? walk32(paging, va, read) : undefined;
  if (!long) return va < FOUR_GIB ? walkPae(paging.cr3, va, read) : undefined;
  const levels = (paging.cr4 & CR4.LA57) !== 0n ? 5 : 4;
  const vaBits = BigInt(12 + 9 * levels);
  // Canonical: bits 63..vaBits-1 all equal (SDM Vol. 1 §3.3.7.1).
  const top = va >> (vaBits - 1n);
  if (top !== 0n && top !== low(64n - vaBits + 1n)) return undefined;
  return walkLong(paging.cr3 & FRAME, levels, va, read);
}

/** 4-level / 5-level walk from the top table at `table`. */
function walkLong(table: bigint, levels: number, va: bigint, read: PhysRead64): bigint | undefined {
  for (let level = levels - 1; level >= 0; level--) {
    const shift = 12n + 9n * BigInt(level);
    const entry = read(table + ((va >> shift) & 0x1ffn) * 8n);
    if (entry === undefined || (entry & P) === 0n) return undefined;
    // PS ends the walk in a PDPTE (1 GiB) or a PDE (2 MiB); in PML5E/PML4E it is reserved.
    if (level === 0 || ((level === 1 || level === 2) && (entry & PS) !== 0n)) {
      return (entry & FRAME & ~low(shift)) | (va & low(shift));
    }
    table = entry & FRAME;
  }
  return undefined;
}

/** PAE paging without long mode: PDPTE (4 of them, at CR3 bits 31:5), PD, PT. */
function walkPae(cr3: bigint, va: bigint, read: PhysRead64): bigint | undefined {
  const pdpte = read((cr3 & 0xffff_ffe0n) + ((va >> 30n) & 3n) * 8n);
  if (pdpte === undefined || (pdpte & P) === 0n) return undefined;
  const pde = read((pdpte & FRAME) + ((va >> 21n) & 0x1ffn) * 8n);
  if (pde === undefined || (pde & P) === 0n) return undefined;
  if ((pde & PS) !== 0n) return (pde & FRAME & ~low(21n)) | (va & low(21n));
  const pte = read((pde & FRAME) + ((va >> 12n) & 0x1ffn) * 8n);
  if (pte === undefined || (pte & P) === 0n) return undefined;
  return (pte & FRAME) | (va & 0xfffn);
}

/** 32-bit paging: 4-byte PDE and PTE (read as the low half of 8 bytes). */
function walk32(paging: X86Paging, va: bigint, read: PhysRead64): bigint | undefined {
  const read32 = (address: bigint): bigint | undefined => {
    const value = read(address);
    return value === undefined ? undefined : value & 0xffff_ffffn;
  };
  const pde = read32((paging.cr3 & 0xffff_f000n) + (va >> 22n) * 4n);
  if (pde === undefined || (pde & P) === 0n) return undefined;
  if ((pde & PS) !== 0n && (paging.cr4 & CR4.PSE) !== 0n) {
    // PSE-36: PDE bits 20:13 are physical address bits 39:32.
    const high = ((pde >> 13n) & 0xffn) << 32n;
    return high | (pde & 0xffc0_0000n) | (va & low(22n));
  }
  const pte = read32((pde & 0xffff_f000n) + ((va >> 12n) & 0x3ffn) * 4n);
  if (pte === undefined || (pte & P) === 0n) return undefined;
  return (pte & 0xffff_f000n) | (va & 0xfffn);
}

/**
 * The paging registers of an x86 vCPU, from its SREGS pseudo-register (struct kvm_sregs).
 * @throws what `getOneReg` throws (the vCPU is running, closed).
 */
export function x86Paging(vcpu: Pick<Vcpu, "getOneReg">): X86Paging {
  const { SREGS } = X86_PSEUDO;
  const sregs = decodeKvmSregs(structFromPseudoValue(SREGS, vcpu.getOneReg(SREGS.id)));
  return { cr0: sregs.cr0, cr3: sregs.cr3, cr4: sregs.cr4, efer: sregs.efer };
}

/**
 * A debugger's translation on an x86 vCPU: its paging registers, then `translateX86`. The same
 * shape as the RISC-V arch part's, so the machine's debug target calls either.
 */
export function translateVirtual(
  vcpu: Pick<Vcpu, "getOneReg">,
  va: bigint,
  read: PhysRead64,
): bigint | undefined {
  return translateX86(x86Paging(vcpu), va, read);
}
