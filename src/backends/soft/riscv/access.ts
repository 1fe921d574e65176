/**
 * The slow paths of guest memory access, shared by the interpreter and the translated blocks
 * (whose inline fast path is a TLB hit on an aligned access): translation, TLB refill,
 * misaligned and page-crossing accesses, MMIO stops, self-modifying-code detection.
 *
 * Rules (docs/soft-riscv-notes.md §1.3, §1.8):
 * - A misaligned load/store to RAM is performed (KVM + Linux would emulate it; doing it here is
 *   the same result, faster). A misaligned access that touches MMIO raises the
 *   address-misaligned exception, so the guest's own emulation splits it (KVM refuses
 *   misaligned MMIO).
 * - A load/store outside every memslot, or a store to a read-only slot, stops run() with an
 *   MMIO request; the instruction completes later through completeMmioLoad/Store.
 * - An instruction fetch outside RAM stops with a "fault" (KVM cannot run such a guest).
 */
import { ACC, EXC, type Core } from "./core.js";
import { translate } from "./mmu.js";
import type { Slot } from "./memory.js";
import { TWO32 } from "./i64.js";
import { EMPTY_VIEW } from "./tlb.js";

/** Extension rule recorded for an MMIO load (`Core.mmioTag`): rd | flags. */
export const MMIO_TAG = { UNSIGNED: 32, FP: 64, FP_SINGLE: 128 } as const;

/** The slot holding all of [pa, pa+size), or null (then the access is MMIO or faults). */
function ramFor(c: Core, pa: number, size: number): Slot | null {
  const slot = c.mem.find(pa);
  return slot !== null && pa + size <= slot.end ? slot : null;
}

/** Adds a small non-negative offset to an address pair; returns lo, hi in `c.rhi`. */
function addPair(c: Core, lo: number, hi: number, n: number): number {
  const r = (lo + n) | 0;
  c.rhi = r >>> 0 < lo >>> 0 ? (hi + 1) | 0 : hi;
  return r;
}

function mmioStop(c: Core, pa: number, size: number, isWrite: boolean, value?: bigint): void {
  c.stop = {
    kind: "mmio",
    gpa: BigInt.asUintN(64, BigInt(pa)),
    size,
    isWrite,
    value,
  };
  c.exc = true;
}

function readRam(slot: Slot, off: number, size: number, c: Core): number {
  const dv = slot.dv;
  switch (size) {
    case 1:
      return dv.getUint8(off);
    case 2:
      return dv.getUint16(off, true);
    case 4:
      return dv.getInt32(off, true);
    default:
      c.rhi = dv.getInt32(off + 4, true);
      return dv.getInt32(off, true);
  }
}

/**
 * Loads `size` bytes at virtual (lo, hi) for the instruction at `pc`. Returns the low word
 * (1/2-byte values zero-extended, 4/8-byte raw), the high word of 8-byte values in `c.rhi`.
 * On a trap or MMIO stop sets `c.exc` and returns 0; `tag` says how to complete an MMIO load.
 */
export function loadSlow(
  c: Core,
  lo: number,
  hi: number,
  size: number,
  pc: number,
  tag: number,
  len: number,
): number {
  c.ipc = pc;
  const inPage = (lo & 4095) + size <= 4096;
  const pa = translate(c, lo, hi, ACC.R);
  if (pa < 0) return 0;
  const aligned = (lo & (size - 1)) === 0;
  if (inPage) {
    const slot = ramFor(c, pa, size);
    if (slot === null) {
      if (!aligned) {
        c.raise(EXC.LOAD_MISALIGNED, lo, hi);
        return 0;
      }
      if ((tag & MMIO_TAG.FP) !== 0) {
        c.fault(`floating-point load from MMIO address 0x${pa.toString(16)}`);
        return 0;
      }
      c.mmioTag = tag;
      c.mmioLen = len;
      c.pc = pc;
      mmioStop(c, pa, size, false);
      return 0;
    }
    if (aligned) c.tr.fill(lo, hi, pa, slot, c.leafBits, c.leafUser);
    return readRam(slot, pa - slot.gpa, size, c);
  }
  // Crosses a page: translate the second page too (its fault reports its own address).
  const lo2 = addPair(c, lo, hi, 4096 - (lo & 4095));
  const pa2 = translate(c, lo2, c.rhi, ACC.R);
  if (pa2 < 0) return 0;
  const n1 = 4096 - (lo & 4095);
  const s1 = ramFor(c, pa, n1);
  const s2 = ramFor(c, pa2, size - n1);
  if (s1 === null || s2 === null) {
    c.raise(EXC.LOAD_MISALIGNED, lo, hi);
    return 0;
  }
  let vlo = 0;
  let vhi = 0;
  for (let k = 0; k < size; k++) {
    const b = k < n1 ? s1.dv.getUint8(pa - s1.gpa + k) : s2.dv.getUint8(pa2 - s2.gpa + (k - n1));
    if (k < 4) vlo |= b << (8 * k);
    else vhi |= b << (8 * (k - 4));
  }
  c.rhi = vhi;
  return vlo;
}

function writeRam(slot: Slot, off: number, size: number, vlo: number, vhi: number): void {
  const dv = slot.dv;
  switch (size) {
    case 1:
      dv.setUint8(off, vlo & 0xff);
      return;
    case 2:
      dv.setUint16(off, vlo & 0xffff, true);
      return;
    case 4:
      dv.setInt32(off, vlo, true);
      return;
    default:
      dv.setInt32(off, vlo, true);
      dv.setInt32(off + 4, vhi, true);
  }
}

/** Invalidates translated code a store to [pa, pa+size) in `slot` would overwrite. */
function checkCode(c: Core, slot: Slot, pa: number, size: number): void {
  const off = pa - slot.gpa;
  if (slot.hitsCode(off, size)) c.onCodeWrite(slot, Math.floor(off / 4096));
}

/**
 * Stores `size` bytes of (vlo, vhi) at virtual (lo, hi) for the instruction at `pc` (`len`
 * bytes long). Returns true if the instruction did not complete (trap or MMIO stop).
 */
export function storeSlow(
  c: Core,
  lo: number,
  hi: number,
  size: number,
  vlo: number,
  vhi: number,
  pc: number,
  len: number,
): boolean {
  c.ipc = pc;
  const inPage = (lo & 4095) + size <= 4096;
  const pa = translate(c, lo, hi, ACC.W);
  if (pa < 0) return true;
  const aligned = (lo & (size - 1)) === 0;
  if (inPage) {
    const slot = ramFor(c, pa, size);
    if (slot === null || slot.readonly) {
      if (!aligned) {
        c.raise(EXC.STORE_MISALIGNED, lo, hi);
        return true;
      }
      const value = BigInt.asUintN(size * 8, (BigInt(vhi) << 32n) | BigInt(vlo >>> 0));
      c.mmioLen = len;
      c.pc = pc;
      mmioStop(c, pa, size, true, value);
      return true;
    }
    checkCode(c, slot, pa, size);
    slot.markDirty(pa - slot.gpa);
    const page = Math.floor((pa - slot.gpa) / 4096);
    if (aligned && slot.codePage[page] === 0) c.tw.fill(lo, hi, pa, slot, c.leafBits, c.leafUser);
    writeRam(slot, pa - slot.gpa, size, vlo, vhi);
    return false;
  }
  const n1 = 4096 - (lo & 4095);
  const lo2 = addPair(c, lo, hi, n1);
  const pa2 = translate(c, lo2, c.rhi, ACC.W);
  if (pa2 < 0) return true;
  const s1 = ramFor(c, pa, n1);
  const s2 = ramFor(c, pa2, size - n1);
  if (s1 === null || s2 === null || s1.readonly || s2.readonly) {
    c.raise(EXC.STORE_MISALIGNED, lo, hi);
    return true;
  }
  checkCode(c, s1, pa, n1);
  checkCode(c, s2, pa2, size - n1);
  s1.markDirty(pa - s1.gpa);
  s2.markDirty(pa2 - s2.gpa);
  for (let k = 0; k < size; k++) {
    const b = (k < 4 ? vlo >>> (8 * k) : vhi >>> (8 * (k - 4))) & 0xff;
    if (k < n1) s1.dv.setUint8(pa - s1.gpa + k, b);
    else s2.dv.setUint8(pa2 - s2.gpa + (k - n1), b);
  }
  return false;
}

/**
 * Translates pc for execution and finds its slot; null after a trap or fault stop. The leaf
 * that mapped it is left in `c.leafBits`/`c.leafUser` (the virtual-pc look-ups record it).
 */
export function fetchPage(c: Core, lo: number, hi: number): { slot: Slot; pa: number } | null {
  const tx = c.tx;
  const i = (lo >>> 12) & (tx.tagLo.length - 1);
  const hit = tx.slot[i];
  if (tx.tagLo[i] === (lo & -4096) && tx.tagHi[i] === hi && hit != null) {
    // An entry is a translation the current mode may execute (Core.setMode keeps that true).
    c.leafBits = tx.bits[i] ?? 12;
    c.leafUser = tx.user[i] === 1;
    return { slot: hit, pa: (tx.phys[i] ?? 0) + (lo & 4095) };
  }
  const pa = translate(c, lo, hi, ACC.X);
  if (pa < 0) return null;
  const slot = ramFor(c, pa, 2);
  if (slot === null) {
    c.fault(`instruction fetch from guest-physical 0x${pa.toString(16)}, outside every memslot`);
    return null;
  }
  c.tx.fill(lo, hi, pa, slot, c.leafBits, c.leafUser);
  return { slot, pa };
}

/**
 * Fetches the instruction at c.pc: returns its raw bits (16-bit ones have low bits != 3), or
 * sets `c.exc` (fetch page/access fault delivered, or a fault stop) and returns 0.
 */
export function fetch(c: Core): number {
  const pc = c.pc;
  c.ipc = pc;
  if (Number.isNaN(pc)) {
    const big = c.pcBig;
    c.raise(
      c.paging() ? EXC.FETCH_PAGE : EXC.FETCH_ACCESS,
      Number(BigInt.asIntN(32, big)),
      Number(BigInt.asIntN(32, big >> 32n)),
    );
    return 0;
  }
  const lo = pc | 0;
  const hi = Math.floor(pc / TWO32) | 0;
  if ((lo & 1) !== 0) {
    // Only a VMM-written pc can be odd (jumps clear bit 0, sepc reads have it clear).
    c.raise(EXC.FETCH_MISALIGNED, lo, hi);
    return 0;
  }
  const tx = c.tx;
  const i = (lo >>> 12) & (tx.tagLo.length - 1);
  let dv: DataView;
  let off: number;
  if (tx.tagLo[i] === (lo & -4096) && tx.tagHi[i] === hi) {
    dv = tx.dv[i] ?? EMPTY_VIEW;
    off = (tx.off[i] ?? 0) + (lo & 4095);
  } else {
    const r = fetchPage(c, lo, hi);
    if (r === null) return 0;
    dv = r.slot.dv;
    off = r.pa - r.slot.gpa;
  }
  const h = dv.getUint16(off, true);
  if ((h & 3) !== 3) return h;
  if ((lo & 4095) !== 4094) {
    if (off + 4 > dv.byteLength) {
      c.fault("instruction fetch past the end of a memslot");
      return 0;
    }
    return h | (dv.getUint16(off + 2, true) << 16);
  }
  // A 32-bit instruction straddling two pages: the second half's fault reports its address.
  const lo2 = addPair(c, lo, hi, 2);
  const r2 = fetchPage(c, lo2, c.rhi);
  if (r2 === null) return 0;
  return h | (r2.slot.dv.getUint16(r2.pa - r2.slot.gpa, true) << 16);
}
