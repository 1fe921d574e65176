/**
 * Sv39 address translation (privileged spec "Sv39: Page-Based 39-bit Virtual-Memory System"
 * and the "Virtual Address Translation Process" algorithm), as the guest's VS-stage sees it.
 *
 * Choices:
 * - A/D bits are updated by the walker (Svadu-style hardware update, what QEMU does by default
 *   and what riscv-tests' `v` environment expects), atomically on shared RAM: the PTE's low
 *   word is compare-exchanged and the walk restarts if another hart changed it.
 * - Reserved PTE bits 63:54 (Svpbmt/Svnapot not offered) and misaligned superpages fault.
 * - A page-table walk that leaves RAM raises an access fault of the access type.
 * - satp modes other than Bare and Sv39 never get in (csr.ts leaves satp unchanged).
 */
import { ACC, C64, EXC, SSTATUS, type Core } from "./core.js";
import { TWO32 } from "./i64.js";

const PAGE_FAULT = [EXC.LOAD_PAGE, EXC.STORE_PAGE, EXC.FETCH_PAGE] as const;
const ACCESS_FAULT = [EXC.LOAD_ACCESS, EXC.STORE_ACCESS, EXC.FETCH_ACCESS] as const;

const PTE_V = 1;
const PTE_R = 2;
const PTE_W = 4;
const PTE_X = 8;
const PTE_U = 16;
const PTE_A = 64;
const PTE_D = 128;

/**
 * Translates virtual address (lo, hi) for access `acc` (ACC.R/W/X) in the current mode.
 * Returns the guest-physical address (a double ≥ 0), or -1 after raising the exception
 * (at `c.ipc`) with stval = the virtual address. On success `c.leafBits` and `c.leafUser` say
 * which leaf mapped it (its size, its U bit), for the TLB entry made from it.
 */
export function translate(c: Core, lo: number, hi: number, acc: number): number {
  if (!c.paging()) {
    // Bare: the address is physical; RV64 physical addresses have 56 bits.
    c.leafBits = 12;
    c.leafUser = false;
    if (hi >= 0 && hi < 0x1000000) return hi * TWO32 + (lo >>> 0);
    c.raise(ACCESS_FAULT[acc] ?? EXC.LOAD_ACCESS, lo, hi);
    return -1;
  }
  for (let attempt = 0; attempt < 4; attempt++) {
    const r = walk(c, lo, hi, acc);
    if (r !== -2) return r;
  }
  c.raise(PAGE_FAULT[acc] ?? EXC.LOAD_PAGE, lo, hi);
  return -1;
}

/** One walk; -1 = exception raised, -2 = a concurrent PTE change, retry. */
function walk(c: Core, lo: number, hi: number, acc: number): number {
  const pf = PAGE_FAULT[acc] ?? EXC.LOAD_PAGE;
  c.walks++;
  // VA bits 63:39 must equal bit 38 (hi bits 31:7 equal hi bit 6).
  const top = hi >> 6;
  if (top !== 0 && top !== -1) {
    c.raise(pf, lo, hi);
    return -1;
  }
  const satpLo = c.csr[C64.SATP] ?? 0;
  const satpHi = c.csr[C64.SATP + 1] ?? 0;
  let table = ((satpHi & 0xfff) * TWO32 + (satpLo >>> 0)) * 4096;
  for (let level = 2; level >= 0; level--) {
    // VPN[level] (no array: a walk runs at every TLB miss).
    const vpn =
      level === 0
        ? (lo >>> 12) & 0x1ff
        : level === 1
          ? (lo >>> 21) & 0x1ff
          : ((lo >>> 30) | (hi << 2)) & 0x1ff;
    const pteAddr = table + vpn * 8;
    const slot = c.mem.find(pteAddr);
    if (slot === null || pteAddr + 8 > slot.end) {
      c.raise(ACCESS_FAULT[acc] ?? EXC.LOAD_ACCESS, lo, hi);
      return -1;
    }
    const off = pteAddr - slot.gpa;
    const pteLo = slot.dv.getInt32(off, true);
    const pteHi = slot.dv.getInt32(off + 4, true);
    if ((pteLo & PTE_V) === 0 || (pteLo & (PTE_R | PTE_W)) === PTE_W || pteHi >>> 22 !== 0) {
      c.raise(pf, lo, hi);
      return -1;
    }
    const ppn = (pteHi & 0x3fffff) * 4194304 + (pteLo >>> 10);
    if ((pteLo & (PTE_R | PTE_X)) === 0) {
      table = ppn * 4096;
      continue;
    }
    if (!permitted(c, pteLo, acc) || ppn % (1 << (9 * level)) !== 0) {
      c.raise(pf, lo, hi);
      return -1;
    }
    const need = acc === ACC.W ? PTE_A | PTE_D : PTE_A;
    if ((pteLo & need) !== need) {
      const updated = pteLo | need;
      if (slot.readonly) {
        c.raise(pf, lo, hi);
        return -1;
      }
      if (slot.i32 !== null) {
        if (Atomics.compareExchange(slot.i32, off >>> 2, pteLo, updated) !== pteLo) return -2;
      } else {
        slot.dv.setInt32(off, updated, true);
      }
      slot.markDirty(off);
    }
    c.leafBits = 12 + 9 * level;
    c.leafUser = (pteLo & PTE_U) !== 0;
    const inPage = level === 0 ? lo & 0xfff : level === 1 ? lo & 0x1fffff : lo & 0x3fffffff;
    return ppn * 4096 + inPage;
  }
  c.raise(pf, lo, hi);
  return -1;
}

/** Leaf permission check: R/W/X, U vs mode, SUM, MXR (S-mode never executes U pages). */
function permitted(c: Core, pte: number, acc: number): boolean {
  if ((pte & PTE_U) !== 0) {
    if (c.mode === 1 && (acc === ACC.X || (c.sstatus & SSTATUS.SUM) === 0)) return false;
  } else if (c.mode === 0) {
    return false;
  }
  if (acc === ACC.X) return (pte & PTE_X) !== 0;
  if (acc === ACC.W) return (pte & PTE_W) !== 0;
  return (pte & PTE_R) !== 0 || ((c.sstatus & SSTATUS.MXR) !== 0 && (pte & PTE_X) !== 0);
}
