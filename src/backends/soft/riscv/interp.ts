/**
 * The reference interpreter: fetch, expand RVC, decode and execute one instruction at a time.
 * It is the correctness reference for the block translator (which inlines the hot integer
 * subset and calls `exec` for everything else) and the single-step engine of the run loop.
 *
 * `exec` contract: `c.ipc` = pc of the instruction; on return either `c.exc` is set (a trap
 * was delivered, or a stop requested) or the instruction completed and `c.pc` is the next pc.
 */
import { execAmo } from "./amo.js";
import { fetch, loadSlow, MMIO_TAG, storeSlow } from "./access.js";
import { EXC, SSTATUS, type Core } from "./core.js";
import { csrRead, csrWritable, csrWrite } from "./csr.js";
import { execFma, execOpFp, fpReady } from "./fpu.js";
import {
  I64,
  div32,
  div64,
  lt64,
  ltu64,
  mul64,
  mulh64,
  numToPair,
  sar64,
  shl64,
  shr64,
  TWO32,
} from "./i64.js";
import { expandRvc } from "./rvc.js";

function wr(c: Core, rd: number, lo: number, hi: number): void {
  if (rd !== 0) {
    c.x[2 * rd] = lo;
    c.x[2 * rd + 1] = hi;
  }
}

/** Executes one instruction at c.pc; counts it in `icount` if it retired. */
export function step(c: Core): void {
  const pc = c.pc;
  c.exc = false;
  const raw = fetch(c);
  if (c.trapped()) return;
  if ((raw & 3) === 3) {
    exec(c, raw, raw, pc, 4);
  } else {
    const insn = expandRvc(raw);
    if (insn === 0) c.illegal(raw);
    else exec(c, insn, raw, pc, 2);
  }
  if (!c.trapped()) c.icount++;
}

/** Load of `size` bytes through the read TLB; returns lo (1/2 bytes zero-extended). */
export function memLoad(
  c: Core,
  lo: number,
  hi: number,
  size: number,
  pc: number,
  tag: number,
  len: number,
): number {
  const t = c.tr;
  const i = (lo >>> 12) & 255;
  if (t.tagLo[i] === (lo & (-4096 | (size - 1))) && t.tagHi[i] === hi) {
    const dv = t.dv[i];
    const off = (t.off[i] ?? 0) + (lo & 4095);
    if (dv !== undefined) {
      if (size === 1) return dv.getUint8(off);
      if (size === 2) return dv.getUint16(off, true);
      if (size === 8) c.rhi = dv.getInt32(off + 4, true);
      return dv.getInt32(off, true);
    }
  }
  return loadSlow(c, lo, hi, size, pc, tag, len);
}

/** Store through the write TLB; true if the instruction did not complete. */
export function memStore(
  c: Core,
  lo: number,
  hi: number,
  size: number,
  vlo: number,
  vhi: number,
  pc: number,
  len: number,
): boolean {
  const t = c.tw;
  const i = (lo >>> 12) & 255;
  if (t.tagLo[i] === (lo & (-4096 | (size - 1))) && t.tagHi[i] === hi) {
    const dv = t.dv[i];
    const off = (t.off[i] ?? 0) + (lo & 4095);
    if (dv !== undefined) {
      if (size === 1) dv.setUint8(off, vlo & 255);
      else if (size === 2) dv.setUint16(off, vlo & 0xffff, true);
      else {
        dv.setInt32(off, vlo, true);
        if (size === 8) dv.setInt32(off + 4, vhi, true);
      }
      return false;
    }
  }
  return storeSlow(c, lo, hi, size, vlo, vhi, pc, len);
}

/**
 * `exec` of a SYSTEM instruction or fence.i (the fast interpreter's EXEC_END kind): the same
 * effects, through `system` directly. A Linux boot runs ~27 K of them in the fast interpreter
 * (of its ~28 K calls to `exec` there: csrrs/csrrci of sstatus, sret, ecall), many before
 * `exec`, large and reached by every kind, is optimized (perf: ~13 ms of the boot's main
 * thread in unoptimized `exec`); this small function gets hot and optimized on its own.
 */
export function execSystem(c: Core, insn: number, raw: number, pc: number, len: number): void {
  if ((insn & 0x7f) === 0x73) {
    c.ipc = pc;
    c.pc = pc + len;
    if (system(c, insn, raw, pc, (insn >>> 7) & 31, (insn >>> 15) & 31, (insn >>> 12) & 7)) return;
  }
  exec(c, insn, raw, pc, len);
}

/** Executes decoded instruction `insn` (raw bits `raw`, for stval) at `pc`. */
export function exec(c: Core, insn: number, raw: number, pc: number, len: number): void {
  const x = c.x;
  const rd = (insn >>> 7) & 31;
  const rs1 = (insn >>> 15) & 31;
  const rs2 = (insn >>> 20) & 31;
  const f3 = (insn >>> 12) & 7;
  const alo = x[2 * rs1] ?? 0;
  const ahi = x[2 * rs1 + 1] ?? 0;
  c.ipc = pc;
  c.pc = pc + len;
  switch (insn & 0x7f) {
    case 0x37: {
      const v = insn & 0xfffff000;
      wr(c, rd, v, v >> 31);
      return;
    }
    case 0x17: {
      const v = pc + (insn & 0xfffff000);
      wr(c, rd, v | 0, Math.floor(v / TWO32) | 0);
      return;
    }
    case 0x6f: {
      const imm =
        ((insn >> 11) & ~0xfffff) |
        (insn & 0xff000) |
        ((insn >>> 9) & 0x800) |
        ((insn >>> 20) & 0x7fe);
      const ret = pc + len;
      wr(c, rd, ret | 0, Math.floor(ret / TWO32) | 0);
      c.pc = pc + imm;
      return;
    }
    case 0x67: {
      if (f3 !== 0) break;
      const imm = insn >> 20;
      const lo = (alo + imm) | 0;
      const hi = (ahi + (imm >> 31) + (lo >>> 0 < alo >>> 0 ? 1 : 0)) | 0;
      const ret = pc + len;
      wr(c, rd, ret | 0, Math.floor(ret / TWO32) | 0);
      c.setPcPair(lo & ~1, hi);
      return;
    }
    case 0x63: {
      const blo = x[2 * rs2] ?? 0;
      const bhi = x[2 * rs2 + 1] ?? 0;
      let t: boolean;
      switch (f3) {
        case 0:
          t = alo === blo && ahi === bhi;
          break;
        case 1:
          t = alo !== blo || ahi !== bhi;
          break;
        case 4:
          t = lt64(alo, ahi, blo, bhi);
          break;
        case 5:
          t = !lt64(alo, ahi, blo, bhi);
          break;
        case 6:
          t = ltu64(alo, ahi, blo, bhi);
          break;
        case 7:
          t = !ltu64(alo, ahi, blo, bhi);
          break;
        default:
          c.illegal(raw);
          return;
      }
      if (t) {
        const imm =
          ((insn >> 19) & ~0xfff) |
          ((insn << 4) & 0x800) |
          ((insn >>> 20) & 0x7e0) |
          ((insn >>> 7) & 0x1e);
        c.pc = pc + imm;
      }
      return;
    }
    case 0x03: {
      if (f3 === 7) break;
      const imm = insn >> 20;
      const lo = (alo + imm) | 0;
      const hi = (ahi + (imm >> 31) + (lo >>> 0 < alo >>> 0 ? 1 : 0)) | 0;
      const size = 1 << (f3 & 3);
      const tag = rd | (f3 >= 4 ? MMIO_TAG.UNSIGNED : 0);
      const v = memLoad(c, lo, hi, size, pc, tag, len);
      if (c.exc) return;
      switch (f3) {
        case 0:
          wr(c, rd, (v << 24) >> 24, (v << 24) >> 31);
          return;
        case 1:
          wr(c, rd, (v << 16) >> 16, (v << 16) >> 31);
          return;
        case 2:
          wr(c, rd, v, v >> 31);
          return;
        case 3:
          wr(c, rd, v, c.rhi);
          return;
        case 6:
          wr(c, rd, v, 0);
          return;
        default:
          wr(c, rd, v, 0);
          return;
      }
    }
    case 0x23: {
      if (f3 > 3) break;
      const imm = ((insn >> 20) & ~31) | ((insn >>> 7) & 31);
      const lo = (alo + imm) | 0;
      const hi = (ahi + (imm >> 31) + (lo >>> 0 < alo >>> 0 ? 1 : 0)) | 0;
      memStore(c, lo, hi, 1 << f3, x[2 * rs2] ?? 0, x[2 * rs2 + 1] ?? 0, pc, len);
      return;
    }
    case 0x13:
      if (opImm(c, insn, rd, f3, alo, ahi)) return;
      break;
    case 0x1b:
      if (opImm32(c, insn, rd, f3, alo)) return;
      break;
    case 0x33:
      if (op(c, insn, rd, f3, alo, ahi, x[2 * rs2] ?? 0, x[2 * rs2 + 1] ?? 0)) return;
      break;
    case 0x3b:
      if (op32(c, insn, rd, f3, alo, x[2 * rs2] ?? 0)) return;
      break;
    case 0x0f:
      if (f3 === 0) return;
      if (f3 === 1) {
        c.onFenceI();
        return;
      }
      break;
    case 0x73:
      if (system(c, insn, raw, pc, rd, rs1, f3)) return;
      break;
    case 0x2f:
      if (execAmo(c, insn, pc)) return;
      break;
    case 0x07:
    case 0x27:
      if (fpMem(c, insn, raw, pc, len, rd, rs2, f3, alo, ahi)) return;
      break;
    case 0x43:
    case 0x47:
    case 0x4b:
    case 0x4f:
      execFma(c, insn, raw);
      return;
    case 0x53:
      execOpFp(c, insn, raw);
      return;
    default:
      break;
  }
  c.illegal(raw);
}

function opImm(c: Core, insn: number, rd: number, f3: number, alo: number, ahi: number): boolean {
  const imm = insn >> 20;
  const ihi = imm >> 31;
  switch (f3) {
    case 0: {
      const lo = (alo + imm) | 0;
      wr(c, rd, lo, (ahi + ihi + (lo >>> 0 < alo >>> 0 ? 1 : 0)) | 0);
      return true;
    }
    case 1:
      if (imm >>> 6 !== 0) return false;
      wr(c, rd, shl64(alo, ahi, imm & 63), I64.hi);
      return true;
    case 2:
      wr(c, rd, lt64(alo, ahi, imm, ihi) ? 1 : 0, 0);
      return true;
    case 3:
      wr(c, rd, ltu64(alo, ahi, imm, ihi) ? 1 : 0, 0);
      return true;
    case 4:
      wr(c, rd, alo ^ imm, ahi ^ ihi);
      return true;
    case 5: {
      const top = (imm >>> 6) & 63;
      if (top === 0) wr(c, rd, shr64(alo, ahi, imm & 63), I64.hi);
      else if (top === 0x10) wr(c, rd, sar64(alo, ahi, imm & 63), I64.hi);
      else return false;
      return true;
    }
    case 6:
      wr(c, rd, alo | imm, ahi | ihi);
      return true;
    default:
      wr(c, rd, alo & imm, ahi & ihi);
      return true;
  }
}

function opImm32(c: Core, insn: number, rd: number, f3: number, alo: number): boolean {
  const imm = insn >> 20;
  let v: number;
  if (f3 === 0) v = (alo + imm) | 0;
  else if (f3 === 1 && imm >>> 5 === 0) v = alo << (imm & 31);
  else if (f3 === 5 && imm >>> 5 === 0) v = alo >>> (imm & 31);
  else if (f3 === 5 && ((imm >>> 5) & 0x7f) === 0x20) v = alo >> (imm & 31);
  else return false;
  wr(c, rd, v | 0, v >> 31);
  return true;
}

function op(
  c: Core,
  insn: number,
  rd: number,
  f3: number,
  alo: number,
  ahi: number,
  blo: number,
  bhi: number,
): boolean {
  const f7 = insn >>> 25;
  if (f7 === 1) {
    let lo: number;
    if (f3 === 0) lo = mul64(alo, ahi, blo, bhi);
    else if (f3 <= 3) lo = mulh64(alo, ahi, blo, bhi, f3 !== 3, f3 === 1);
    else lo = div64(alo, ahi, blo, bhi, (f3 & 1) === 0, f3 >= 6);
    wr(c, rd, lo, I64.hi);
    return true;
  }
  if (f7 === 0x20) {
    if (f3 === 0) {
      const lo = (alo - blo) | 0;
      wr(c, rd, lo, (ahi - bhi - (alo >>> 0 < blo >>> 0 ? 1 : 0)) | 0);
    } else if (f3 === 5) {
      wr(c, rd, sar64(alo, ahi, blo & 63), I64.hi);
    } else return false;
    return true;
  }
  if (f7 !== 0) return false;
  switch (f3) {
    case 0: {
      const lo = (alo + blo) | 0;
      wr(c, rd, lo, (ahi + bhi + (lo >>> 0 < alo >>> 0 ? 1 : 0)) | 0);
      return true;
    }
    case 1:
      wr(c, rd, shl64(alo, ahi, blo & 63), I64.hi);
      return true;
    case 2:
      wr(c, rd, lt64(alo, ahi, blo, bhi) ? 1 : 0, 0);
      return true;
    case 3:
      wr(c, rd, ltu64(alo, ahi, blo, bhi) ? 1 : 0, 0);
      return true;
    case 4:
      wr(c, rd, alo ^ blo, ahi ^ bhi);
      return true;
    case 5:
      wr(c, rd, shr64(alo, ahi, blo & 63), I64.hi);
      return true;
    case 6:
      wr(c, rd, alo | blo, ahi | bhi);
      return true;
    default:
      wr(c, rd, alo & blo, ahi & bhi);
      return true;
  }
}

function op32(c: Core, insn: number, rd: number, f3: number, a: number, b: number): boolean {
  const f7 = insn >>> 25;
  let v: number;
  if (f7 === 1) {
    if (f3 === 0) v = Math.imul(a, b);
    else if (f3 >= 4) v = div32(a, b, (f3 & 1) === 0, f3 >= 6);
    else return false;
  } else if (f7 === 0) {
    if (f3 === 0) v = (a + b) | 0;
    else if (f3 === 1) v = a << (b & 31);
    else if (f3 === 5) v = (a >>> (b & 31)) | 0;
    else return false;
  } else if (f7 === 0x20) {
    if (f3 === 0) v = (a - b) | 0;
    else if (f3 === 5) v = a >> (b & 31);
    else return false;
  } else return false;
  wr(c, rd, v, v >> 31);
  return true;
}

/**
 * sfence.vma (privileged spec "Supervisor Memory-Management Fence Instruction"). The TLBs and
 * virtual-pc look-ups only ever hold translations made under the current satp (a satp write
 * empties them all), i.e. of the current ASID (ASIDLEN = 16, csr.ts): a fence for another ASID
 * (rs2 ≠ x0) concerns none of them, since it never orders global mappings; one for the current
 * ASID is taken as if rs2 = x0 (dropping global entries too: more than needed, never less).
 * rs1 ≠ x0 drops only the translations of the leaf mapping that address, rs1 = x0 everything.
 */
function sfenceVma(c: Core, rs1: number, rs2: number): void {
  if (rs2 !== 0 && ((c.x[2 * rs2] ?? 0) & 0xffff) !== c.asid()) return;
  if (rs1 === 0) c.mapChanged();
  else c.fenceVa(c.x[2 * rs1] ?? 0, c.x[2 * rs1 + 1] ?? 0);
}

/** SYSTEM opcode: ecall, ebreak, sret, wfi, sfence.vma, CSR instructions. */
function system(
  c: Core,
  insn: number,
  raw: number,
  pc: number,
  rd: number,
  rs1: number,
  f3: number,
): boolean {
  if (f3 === 0) {
    if (insn === 0x00000073) {
      if (c.mode === 0) {
        c.raise(EXC.ECALL_U, 0, 0);
      } else {
        // S-mode ecall is an SBI call: KVM handles it; pc stays on the ecall.
        c.pc = pc;
        c.stop = { kind: "ecall" };
        c.exc = true;
      }
      return true;
    }
    if (insn === 0x00100073) {
      if (c.swBreak) {
        // Guest debug (./debug.ts): KVM_EXIT_DEBUG with pc on the ebreak, as an ecall stops.
        c.pc = pc;
        c.stop = { kind: "debug", cause: "swbreak" };
        c.exc = true;
        return true;
      }
      c.raise(EXC.BREAKPOINT, pc | 0, Math.floor(pc / TWO32) | 0);
      return true;
    }
    if (insn === 0x10200073 && c.mode === 1) {
      c.sret();
      c.resAddr = -1;
      return true;
    }
    if (insn === 0x10500073) {
      // WFI: KVM sets hstatus.VTW, so the guest's WFI reaches the hypervisor, which waits.
      if ((c.sip & c.sie) === 0) c.stop = { kind: "wfi" };
      return true;
    }
    if (insn >>> 25 === 0x09 && rd === 0 && c.mode === 1) {
      sfenceVma(c, rs1, (insn >>> 20) & 31);
      return true;
    }
    c.illegal(raw);
    return true;
  }
  if (f3 === 4) return false;
  const csr = insn >>> 20;
  const imm = (f3 & 4) !== 0;
  const srcLo = imm ? rs1 : (c.x[2 * rs1] ?? 0);
  const srcHi = imm ? 0 : (c.x[2 * rs1 + 1] ?? 0);
  const kind = f3 & 3;
  const writes = kind === 1 || rs1 !== 0;
  const oldLo = csrRead(c, csr);
  const oldHi = I64.hi;
  if (oldLo === null || (writes && !csrWritable(c, csr))) {
    c.illegal(raw);
    return true;
  }
  if (writes) {
    let lo = srcLo;
    let hi = srcHi;
    if (kind === 2) {
      lo = oldLo | srcLo;
      hi = oldHi | srcHi;
    } else if (kind === 3) {
      lo = oldLo & ~srcLo;
      hi = oldHi & ~srcHi;
    }
    csrWrite(c, csr, lo, hi);
  }
  wr(c, rd, oldLo, oldHi);
  return true;
}

/** FLW/FLD/FSW/FSD. */
function fpMem(
  c: Core,
  insn: number,
  raw: number,
  pc: number,
  len: number,
  rd: number,
  rs2: number,
  f3: number,
  alo: number,
  ahi: number,
): boolean {
  if (f3 !== 2 && f3 !== 3) return false;
  if (!fpReady(c, raw, f3 === 2 ? 0 : 1)) return true;
  const isStore = (insn & 0x7f) === 0x27;
  const imm = isStore ? ((insn >> 20) & ~31) | ((insn >>> 7) & 31) : insn >> 20;
  const lo = (alo + imm) | 0;
  const hi = (ahi + (imm >> 31) + (lo >>> 0 < alo >>> 0 ? 1 : 0)) | 0;
  const size = f3 === 2 ? 4 : 8;
  const f = c.f;
  if (isStore) {
    memStore(c, lo, hi, size, f[2 * rs2] ?? 0, f[2 * rs2 + 1] ?? 0, pc, len);
    return true;
  }
  const v = memLoad(c, lo, hi, size, pc, rd | MMIO_TAG.FP, len);
  if (c.exc) return true;
  f[2 * rd] = v;
  f[2 * rd + 1] = size === 4 ? -1 : c.rhi;
  c.sstatus |= SSTATUS.FS;
  return true;
}

/** Re-exported for the translator's generated code. */
export const interpHelpers = { load: memLoad, store: memStore, numToPair };
