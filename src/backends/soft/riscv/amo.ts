/**
 * The A extension (unprivileged spec "A" chapter): LR/SC and AMOs, atomic across harts through
 * Atomics on the slot's views (guest RAM may be a SharedArrayBuffer shared by vCPU Workers,
 * docs/soft-riscv-notes.md §2.3 item 7). `execAmo` is the reference; `amoFast` is the fast
 * interpreter's path for the common case (a TLB hit), on int32 halves without BigInt.
 *
 * - Misaligned LR/SC/AMO raise address-misaligned (no Zam): LR → load (4), SC/AMO → store (6).
 * - SC succeeds if this hart holds a reservation on the address and memory still holds the
 *   value LR read (compare-exchange; the ABA case is accepted, as QEMU does). Any trap, SC
 *   or sret clears the reservation.
 * - An LR/SC/AMO outside RAM raises an access fault (KVM cannot emulate atomics on MMIO).
 */
import { isMainThread } from "node:worker_threads";
import { ACC, EXC, type Core } from "./core.js";
import { translate } from "./mmu.js";
import type { Slot } from "./memory.js";
import { TLB_SIZE } from "./tlb.js";

const F5 = {
  ADD: 0x00,
  SWAP: 0x01,
  LR: 0x02,
  SC: 0x03,
  XOR: 0x04,
  OR: 0x08,
  AND: 0x0c,
  MIN: 0x10,
  MAX: 0x14,
  MINU: 0x18,
  MAXU: 0x1c,
} as const;

function op32(f5: number, old: number, v: number): number {
  switch (f5) {
    case F5.ADD:
      return (old + v) | 0;
    case F5.XOR:
      return old ^ v;
    case F5.OR:
      return old | v;
    case F5.AND:
      return old & v;
    case F5.MIN:
      return old < v ? old : v;
    case F5.MAX:
      return old > v ? old : v;
    case F5.MINU:
      return old >>> 0 < v >>> 0 ? old : v;
    case F5.MAXU:
      return old >>> 0 > v >>> 0 ? old : v;
    default:
      return v;
  }
}

function op64(f5: number, old: bigint, v: bigint): bigint {
  switch (f5) {
    case F5.ADD:
      return BigInt.asIntN(64, old + v);
    case F5.XOR:
      return old ^ v;
    case F5.OR:
      return old | v;
    case F5.AND:
      return old & v;
    case F5.MIN:
      return old < v ? old : v;
    case F5.MAX:
      return old > v ? old : v;
    case F5.MINU:
      return BigInt.asUintN(64, old) < BigInt.asUintN(64, v) ? old : v;
    case F5.MAXU:
      return BigInt.asUintN(64, old) > BigInt.asUintN(64, v) ? old : v;
    default:
      return v;
  }
}

/** Bit f5 set for every defined funct5 (a constant: validF5 runs on every AMO, unallocated). */
const VALID_F5 = Object.values(F5).reduce<number>((m, f5) => m | (1 << f5), 0);

/** True if f5/rs2 form a valid AMO encoding (LR needs rs2 = 0). */
export function validF5(f5: number, rs2: number): boolean {
  if (f5 === F5.LR) return rs2 === 0;
  return ((VALID_F5 >>> f5) & 1) !== 0;
}

function atomic32(slot: Slot, off: number, f5: number, v: number): number {
  const a = slot.i32;
  if (a !== null) {
    const i = off >>> 2;
    for (;;) {
      const old = Atomics.load(a, i);
      if (Atomics.compareExchange(a, i, old, op32(f5, old, v)) === old) return old;
    }
  }
  const old = slot.dv.getInt32(off, true);
  slot.dv.setInt32(off, op32(f5, old, v), true);
  return old;
}

function atomic64(slot: Slot, off: number, f5: number, v: bigint): bigint {
  const a = slot.i64;
  if (a !== null) {
    const i = off / 8;
    for (;;) {
      const old = Atomics.load(a, i);
      if (Atomics.compareExchange(a, i, old, op64(f5, old, v)) === old) return old;
    }
  }
  const old = slot.dv.getBigInt64(off, true);
  slot.dv.setBigInt64(off, op64(f5, old, v), true);
  return old;
}

function cas32(slot: Slot, off: number, expect: number, v: number): boolean {
  if (slot.i32 !== null) return Atomics.compareExchange(slot.i32, off >>> 2, expect, v) === expect;
  if (slot.dv.getInt32(off, true) !== expect) return false;
  slot.dv.setInt32(off, v, true);
  return true;
}

function cas64(slot: Slot, off: number, expect: bigint, v: bigint): boolean {
  if (slot.i64 !== null) return Atomics.compareExchange(slot.i64, off / 8, expect, v) === expect;
  if (slot.dv.getBigInt64(off, true) !== expect) return false;
  slot.dv.setBigInt64(off, v, true);
  return true;
}

function setRd(c: Core, rd: number, lo: number, hi: number): void {
  if (rd !== 0) {
    c.x[2 * rd] = lo;
    c.x[2 * rd + 1] = hi;
  }
}

/** Executes an AMO-opcode (0x2f) instruction at `pc`; false = illegal encoding. */
export function execAmo(c: Core, insn: number, pc: number): boolean {
  const f3 = (insn >>> 12) & 7;
  const f5 = insn >>> 27;
  const rd = (insn >>> 7) & 31;
  const rs1 = (insn >>> 15) & 31;
  const rs2 = (insn >>> 20) & 31;
  if ((f3 !== 2 && f3 !== 3) || !validF5(f5, rs2)) return false;
  const size = f3 === 2 ? 4 : 8;
  const lo = c.x[2 * rs1] ?? 0;
  const hi = c.x[2 * rs1 + 1] ?? 0;
  c.ipc = pc;
  const isLr = f5 === F5.LR;
  if ((lo & (size - 1)) !== 0) {
    c.raise(isLr ? EXC.LOAD_MISALIGNED : EXC.STORE_MISALIGNED, lo, hi);
    return true;
  }
  // The TLB first (Linux's locks and atomics walked the page tables ~40 K times per boot): a
  // read entry is a permitted RAM page, a write entry also a dirty, writable, non-code one.
  const t = isLr ? c.tr : c.tw;
  const ti = (lo >>> 12) & (TLB_SIZE - 1);
  let pa: number;
  let slot: Slot | null;
  if (t.tagLo[ti] === (lo & -4096) && t.tagHi[ti] === hi) {
    pa = (t.phys[ti] ?? 0) + (lo & 4095);
    slot = t.slot[ti] ?? null;
  } else {
    pa = translate(c, lo, hi, isLr ? ACC.R : ACC.W);
    if (pa < 0) return true;
    const found = c.mem.find(pa);
    slot = found !== null && pa + size <= found.end ? found : null;
    const page = slot === null ? 0 : Math.floor((pa - slot.gpa) / 4096);
    if (slot !== null && (isLr || (!slot.readonly && slot.codePage[page] === 0))) {
      t.fill(lo, hi, pa, slot, c.leafBits, c.leafUser);
    }
  }
  if (slot === null || (!isLr && slot.readonly)) {
    c.raise(isLr ? EXC.LOAD_ACCESS : EXC.STORE_ACCESS, lo, hi);
    return true;
  }
  const off = pa - slot.gpa;
  if (!isLr && slot.hitsCode(off, size)) c.onCodeWrite(slot, Math.floor(off / 4096));
  if (!isLr) slot.markDirty(off);
  const vlo = c.x[2 * rs2] ?? 0;
  const vhi = c.x[2 * rs2 + 1] ?? 0;
  if (isLr) {
    const rlo = slot.dv.getInt32(off, true);
    const rhi = size === 8 ? slot.dv.getInt32(off + 4, true) : rlo >> 31;
    c.resAddr = pa;
    c.resLo = rlo;
    c.resHi = rhi;
    setRd(c, rd, rlo, rhi);
  } else if (f5 === F5.SC) {
    let ok = c.resAddr === pa;
    if (ok) {
      ok =
        size === 4
          ? cas32(slot, off, c.resLo, vlo)
          : cas64(slot, off, toBig(c.resLo, c.resHi), toBig(vlo, vhi));
    }
    c.resAddr = -1;
    setRd(c, rd, ok ? 0 : 1, 0);
  } else if (size === 4) {
    const old = atomic32(slot, off, f5, vlo);
    setRd(c, rd, old, old >> 31);
  } else {
    const old = atomic64(slot, off, f5, toBig(vlo, vhi));
    setRd(c, rd, Number(BigInt.asIntN(32, old)), Number(BigInt.asIntN(32, old >> 32n)));
  }
  c.pc = pc + 4;
  return true;
}

function toBig(lo: number, hi: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo >>> 0);
}

/**
 * Whether guest RAM in a SharedArrayBuffer may be written by another thread while this hart
 * runs: true in a vCPU Worker (threaded mode, soft/threaded.ts). On the main thread every vCPU
 * runs inline, one at a time (soft/vm.ts allocates RAM shared either way), so plain int32
 * accesses there are atomic with respect to every other hart. A field, so tests can run the
 * concurrent path on the main thread.
 */
export const ramThreads = { concurrent: !isMainThread };

/**
 * The fast interpreter's AMO path (fast.ts): an aligned LR/SC/AMO whose page the TLB holds, on
 * int32 halves (no BigInt, no allocation). `op` is funct5, plus 32 for a doubleword; `rd2`, `a`,
 * `b` are 2 × rd, rs1, rs2. Returns false, having changed nothing, when it cannot run it here
 * (a TLB miss, which also catches every misaligned address; a slot without an Int32Array view;
 * a doubleword read-modify-write on RAM other threads write, which needs a 64-bit
 * compare-exchange): the caller then runs `execAmo`.
 *
 * A write-TLB hit needs none of execAmo's checks: write entries exist only for writable RAM
 * pages holding no decoded or translated code, and only after the page was marked dirty
 * (tlb.ts, access.ts `storeSlow`); a read entry is a RAM page the hart may read.
 */
export function amoFast(c: Core, op: number, rd2: number, a: number, b: number): boolean {
  const x = c.x;
  const f5 = op & 31;
  const size = op >= 32 ? 8 : 4;
  const lo = x[a] ?? 0;
  const hi = x[a + 1] ?? 0;
  const isLr = f5 === F5.LR;
  const t = isLr ? c.tr : c.tw;
  const ti = (lo >>> 12) & (TLB_SIZE - 1);
  if (t.tagLo[ti] !== (lo & (-4096 | (size - 1))) || t.tagHi[ti] !== hi) return false;
  const m = t.slot[ti]?.i32;
  if (m == null) return false;
  // RAM other threads write while this one runs needs Atomics, and a doubleword
  // read-modify-write on it a BigInt64Array compare-exchange (execAmo).
  const shared = ramThreads.concurrent && m.buffer instanceof SharedArrayBuffer;
  if (shared && size === 8 && !isLr) return false;
  const i = ((t.off[ti] ?? 0) + (lo & 4095)) / 4;
  const vlo = x[b] ?? 0;
  const vhi = x[b + 1] ?? 0;
  let rlo: number;
  let rhi: number;
  if (isLr) {
    rlo = m[i] ?? 0;
    rhi = size === 8 ? (m[i + 1] ?? 0) : rlo >> 31;
    c.resAddr = (t.phys[ti] ?? 0) + (lo & 4095);
    c.resLo = rlo;
    c.resHi = rhi;
  } else if (f5 === F5.SC) {
    let ok = c.resAddr === (t.phys[ti] ?? 0) + (lo & 4095);
    if (ok) {
      if (size === 4 && shared) ok = Atomics.compareExchange(m, i, c.resLo, vlo) === c.resLo;
      else if (size === 4) ok = m[i] === c.resLo;
      else ok = m[i] === c.resLo && m[i + 1] === c.resHi;
      if (ok && !shared) {
        m[i] = vlo;
        if (size === 8) m[i + 1] = vhi;
      }
    }
    c.resAddr = -1;
    rlo = ok ? 0 : 1;
    rhi = 0;
  } else if (size === 4) {
    if (shared) {
      for (;;) {
        rlo = Atomics.load(m, i);
        if (Atomics.compareExchange(m, i, rlo, op32(f5, rlo, vlo)) === rlo) break;
      }
    } else {
      rlo = m[i] ?? 0;
      m[i] = op32(f5, rlo, vlo);
    }
    rhi = rlo >> 31;
  } else {
    rlo = m[i] ?? 0;
    rhi = m[i + 1] ?? 0;
    op64Halves(m, i, f5, rlo, rhi, vlo, vhi);
  }
  if (rd2 !== 0) {
    x[rd2] = rlo;
    x[rd2 + 1] = rhi;
  }
  return true;
}

/** Writes `op64(f5, old, v)` to m[i], m[i + 1] with each 64-bit value as (lo, hi) int32 halves. */
function op64Halves(
  m: Int32Array,
  i: number,
  f5: number,
  olo: number,
  ohi: number,
  vlo: number,
  vhi: number,
): void {
  let lo = vlo;
  let hi = vhi;
  switch (f5) {
    case F5.ADD:
      lo = (olo + vlo) | 0;
      hi = (ohi + vhi + (lo >>> 0 < olo >>> 0 ? 1 : 0)) | 0;
      break;
    case F5.XOR:
      lo = olo ^ vlo;
      hi = ohi ^ vhi;
      break;
    case F5.OR:
      lo = olo | vlo;
      hi = ohi | vhi;
      break;
    case F5.AND:
      lo = olo & vlo;
      hi = ohi & vhi;
      break;
    case F5.MIN:
    case F5.MAX:
    case F5.MINU:
    case F5.MAXU: {
      // old < v, signed (MIN, MAX) or unsigned (MINU, MAXU); equal values give either.
      const less =
        f5 === F5.MIN || f5 === F5.MAX
          ? ohi < vhi || (ohi === vhi && olo >>> 0 < vlo >>> 0)
          : ohi >>> 0 < vhi >>> 0 || (ohi === vhi && olo >>> 0 < vlo >>> 0);
      if (less === (f5 === F5.MIN || f5 === F5.MINU)) {
        lo = olo;
        hi = ohi;
      }
      break;
    }
    default:
      break;
  }
  m[i] = lo;
  m[i + 1] = hi;
}
