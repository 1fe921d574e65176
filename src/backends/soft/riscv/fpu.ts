/**
 * F and D (unprivileged spec chapters "F" and "D"): OP-FP and the fused multiply-adds.
 * Loads/stores live in the interpreter with the other memory accesses.
 *
 * Exactness: results and fflags are exact for every operation and rounding mode. Round-to-
 * nearest-even with normal-range results uses JS doubles (correctly rounded by IEEE 754; single
 * precision via Math.fround, where double rounding is innocuous for + - × ÷ √), with the
 * inexact flag from error-free transformations (TwoSum, Veltkamp/Dekker TwoProduct). Everything
 * else (other rounding modes, subnormal/overflowing/special results, most FMAs) goes to the
 * BigInt path in softfloat.ts. NaN results are canonical; single values not NaN-boxed read as
 * the canonical NaN; `sstatus.FS` = Off makes every FP instruction illegal, and instructions
 * that write f-registers or fflags set FS = Dirty.
 */
import { SSTATUS, type Core } from "./core.js";
import { I64, TWO32, fromBig, numToPair, toBigS, toBigU } from "./i64.js";
import {
  F32,
  F64,
  FLAG,
  RM,
  SF,
  type Fmt,
  sfAdd,
  sfConvert,
  sfDiv,
  sfFma,
  sfFromInt,
  sfMul,
  sfSqrt,
} from "./softfloat.js";

const f32 = new Float32Array(1);
const i32 = new Int32Array(f32.buffer);
const f64 = new Float64Array(1);
const u32 = new Int32Array(f64.buffer);

const MIN_NORMAL_S = 1.1754943508222875e-38; // 2^-126
const MIN_NORMAL_D = 2.2250738585072014e-308; // 2^-1022
const SPLIT = 134217729; // 2^27 + 1, Veltkamp splitter for binary64
const TP_HI = 2 ** 995; // TwoProduct stays exact below this magnitude...
const TP_LO = 2 ** -968; // ...and above this one.

/** Single bits → number. */
function s2n(bits: number): number {
  i32[0] = bits;
  return f32[0] ?? 0;
}

/** Number → single bits (fround applied). */
function n2s(v: number): number {
  f32[0] = v;
  return i32[0] ?? 0;
}

/** The error of a × b (0 means the double product is exact); valid in the TP range. */
function twoProductErr(a: number, b: number, p: number): number {
  let t = SPLIT * a;
  const ah = t - (t - a);
  const al = a - ah;
  t = SPLIT * b;
  const bh = t - (t - b);
  const bl = b - bh;
  return ah * bh - p + ah * bl + al * bh + al * bl;
}

function tpOk(v: number): boolean {
  const m = Math.abs(v);
  return m > TP_LO && m < TP_HI;
}

/** Normal, finite, not the smallest normal (tininess-after-rounding corner). */
function normalResult(r: number, minNormal: number): boolean {
  const m = Math.abs(r);
  return m > minNormal && m < Infinity;
}

/** Reads single operand bits (unboxed; not NaN-boxed → canonical NaN). */
function sOp(c: Core, r: number): number {
  return c.f[2 * r + 1] === -1 ? (c.f[2 * r] ?? 0) : 0x7fc00000;
}

/** Reads double operand bits as BigInt (slow path). */
function dBig(c: Core, r: number): bigint {
  return toBigU(c.f[2 * r] ?? 0, c.f[2 * r + 1] ?? 0);
}

function writeS(c: Core, rd: number, bits: number): void {
  c.f[2 * rd] = bits;
  c.f[2 * rd + 1] = -1;
  c.sstatus |= SSTATUS.FS;
}

function writeSNum(c: Core, rd: number, v: number): void {
  writeS(c, rd, Number.isNaN(v) ? 0x7fc00000 : n2s(v));
}

function writeD(c: Core, rd: number, v: number): void {
  if (Number.isNaN(v)) {
    c.f[2 * rd] = 0;
    c.f[2 * rd + 1] = 0x7ff80000;
  } else {
    c.fd[rd] = v;
  }
  c.sstatus |= SSTATUS.FS;
}

function writeDBig(c: Core, rd: number, bits: bigint): void {
  c.f[2 * rd] = fromBig(bits);
  c.f[2 * rd + 1] = I64.hi;
  c.sstatus |= SSTATUS.FS;
}

function flags(c: Core, fl: number): void {
  if (fl !== 0) {
    c.fflags |= fl;
    c.sstatus |= SSTATUS.FS;
  }
}

/** Slow-path result writer: takes bits from softfloat and its flags. */
function slow(c: Core, rd: number, fmt: Fmt, bits: bigint): void {
  if (fmt === F32) writeS(c, rd, Number(BigInt.asIntN(32, bits)));
  else writeDBig(c, rd, bits);
  flags(c, SF.flags);
  SF.flags = 0;
}

/** Operand bits as BigInt in the given format. */
function opBig(c: Core, r: number, fmt: Fmt): bigint {
  return fmt === F32 ? BigInt(sOp(c, r) >>> 0) : dBig(c, r);
}

/** Operand as a JS number. */
function opNum(c: Core, r: number, single: boolean): number {
  return single ? s2n(sOp(c, r)) : (c.fd[r] ?? 0);
}

/** fadd/fsub/fmul/fdiv/fsqrt (op 0..4). */
function arith(
  c: Core,
  op: number,
  single: boolean,
  rd: number,
  r1: number,
  r2: number,
  rm: number,
): void {
  const fmt = single ? F32 : F64;
  const minN = single ? MIN_NORMAL_S : MIN_NORMAL_D;
  if (rm === RM.RNE) {
    const a = opNum(c, r1, single);
    const b = opNum(c, r2, single);
    let r = NaN;
    let nx = false;
    let ok = false;
    switch (op) {
      case 0:
      case 1: {
        const bb = op === 1 ? -b : b;
        const s = a + bb;
        if (Number.isFinite(s) && Math.abs(a) < 2 ** 1020 && Math.abs(bb) < 2 ** 1020) {
          const z = s - a;
          const err = a - (s - z) + (bb - z);
          r = single ? Math.fround(s) : s;
          nx = err !== 0 || r !== s;
          ok = (s === 0 && err === 0) || normalResult(r, minN);
        }
        break;
      }
      case 2: {
        const p = a * b;
        if (single) {
          r = Math.fround(p);
          nx = r !== p;
          ok = (p === 0 && Number.isFinite(a) && Number.isFinite(b)) || normalResult(r, minN);
        } else if (tpOk(a) && tpOk(b) && tpOk(p)) {
          r = p;
          nx = twoProductErr(a, b, p) !== 0;
          ok = normalResult(r, minN);
        }
        break;
      }
      case 3: {
        const q = a / b;
        if (single) {
          r = Math.fround(q);
          nx = r * b !== a;
          ok = normalResult(r, minN) && normalResult(a, minN) && Number.isFinite(b);
        } else if (tpOk(q) && tpOk(b) && tpOk(a)) {
          r = q;
          nx = !(q * b === a && twoProductErr(q, b, q * b) === 0);
          ok = normalResult(r, minN);
        }
        break;
      }
      default: {
        if (a > 0 && a < Infinity) {
          const s = Math.sqrt(a);
          r = single ? Math.fround(s) : s;
          if (single) {
            nx = r * r !== a;
            ok = normalResult(r, minN);
          } else if (tpOk(a)) {
            nx = !(r * r === a && twoProductErr(r, r, r * r) === 0);
            ok = true;
          }
        }
      }
    }
    if (ok) {
      if (single) writeSNum(c, rd, r);
      else writeD(c, rd, r);
      if (nx) flags(c, FLAG.NX);
      else c.sstatus |= SSTATUS.FS;
      return;
    }
  }
  const x = opBig(c, r1, fmt);
  const y = opBig(c, r2, fmt);
  const neg = 1n << BigInt(fmt.bits - 1);
  let bits: bigint;
  SF.flags = 0;
  if (op === 0) bits = sfAdd(x, y, fmt, rm);
  else if (op === 1) bits = sfAdd(x, y ^ neg, fmt, rm);
  else if (op === 2) bits = sfMul(x, y, fmt, rm);
  else if (op === 3) bits = sfDiv(x, y, fmt, rm);
  else bits = sfSqrt(x, fmt, rm);
  slow(c, rd, fmt, bits);
}

/** FMADD/FMSUB/FNMSUB/FNMADD: (±a×b) ± c, one rounding. */
export function execFma(c: Core, insn: number, raw: number): void {
  const fmtBits = (insn >>> 25) & 3;
  const single = fmtBits === 0;
  if (!fpReady(c, raw, fmtBits)) return;
  const rm = resolveRm(c, insn);
  if (rm < 0) {
    c.illegal(raw);
    return;
  }
  const rd = (insn >>> 7) & 31;
  const r1 = (insn >>> 15) & 31;
  const r2 = (insn >>> 20) & 31;
  const r3 = insn >>> 27;
  const op = (insn >>> 2) & 3; // 0 FMADD, 1 FMSUB, 2 FNMSUB, 3 FNMADD
  const negProd = op >= 2;
  const negAdd = op === 1 || op === 3;
  const fmt = single ? F32 : F64;
  if (rm === RM.RNE) {
    const a = opNum(c, r1, single);
    const b = opNum(c, r2, single);
    const cc = opNum(c, r3, single);
    const p = negProd ? -(a * b) : a * b;
    const ad = negAdd ? -cc : cc;
    const exactProd = single
      ? Number.isFinite(p)
      : tpOk(a) && tpOk(b) && tpOk(p) && twoProductErr(a, b, a * b) === 0;
    if (exactProd && Number.isFinite(ad) && Math.abs(p) < 2 ** 1020 && Math.abs(ad) < 2 ** 1020) {
      const s = p + ad;
      const z = s - p;
      const err = p - (s - z) + (ad - z);
      const r = single ? Math.fround(s) : s;
      if (err === 0 && (s === 0 || normalResult(r, single ? MIN_NORMAL_S : MIN_NORMAL_D))) {
        if (single) writeSNum(c, rd, r);
        else writeD(c, rd, r);
        if (r !== s) flags(c, FLAG.NX);
        return;
      }
    }
  }
  const neg = 1n << BigInt(fmt.bits - 1);
  let x = opBig(c, r1, fmt);
  let z = opBig(c, r3, fmt);
  if (negProd) x ^= neg;
  if (negAdd) z ^= neg;
  SF.flags = 0;
  slow(c, rd, fmt, sfFma(x, opBig(c, r2, fmt), z, fmt, rm));
}

/** rm field resolved through frm; -1 if reserved. */
function resolveRm(c: Core, insn: number): number {
  let rm = (insn >>> 12) & 7;
  if (rm === 7) rm = c.frm;
  return rm > 4 ? -1 : rm;
}

/** FS on and the format present; raises illegal otherwise. fmt: 0 = S, 1 = D. */
export function fpReady(c: Core, raw: number, fmt: number): boolean {
  const ok =
    (c.sstatus & SSTATUS.FS) !== 0 && ((fmt === 0 && c.fEnabled) || (fmt === 1 && c.dEnabled));
  if (!ok) c.illegal(raw);
  return ok;
}

function isSNaN(bits: number, hi: number, single: boolean): boolean {
  if (single) return (bits & 0x7fc00000) === 0x7f800000 && (bits & 0x3fffff) !== 0;
  return (hi & 0x7ff80000) === 0x7ff00000 && ((hi & 0x7ffff) !== 0 || bits !== 0);
}

/** fclass bit index for a value. */
function fclass(v: number, snan: boolean): number {
  if (Number.isNaN(v)) return snan ? 8 : 9;
  if (v === -Infinity) return 0;
  if (v === Infinity) return 7;
  if (v === 0) return Object.is(v, -0) ? 3 : 4;
  return v < 0 ? 1 : 6;
}

/** Operand raw words for NaN-kind checks: [lo, hi]. */
function rawOp(c: Core, r: number, single: boolean): [number, number] {
  return single ? [sOp(c, r), 0] : [c.f[2 * r] ?? 0, c.f[2 * r + 1] ?? 0];
}

/** Float → integer conversion with saturation (fcvt.{w,wu,l,lu}.{s,d}); writes x[rd]. */
function toInt(c: Core, rd: number, v: number, kind: number, rm: number): void {
  let r: number;
  switch (rm) {
    case RM.RTZ:
      r = Math.trunc(v);
      break;
    case RM.RDN:
      r = Math.floor(v);
      break;
    case RM.RUP:
      r = Math.ceil(v);
      break;
    case RM.RMM:
      r = Math.sign(v) * Math.floor(Math.abs(v) + 0.5);
      break;
    default: {
      r = Math.round(v);
      if (r - v === 0.5 && r % 2 !== 0) r -= 1;
    }
  }
  const min = kind === 0 ? -(2 ** 31) : kind === 2 ? -(2 ** 63) : 0;
  const max = kind === 0 ? 2 ** 31 - 1 : kind === 1 ? 2 ** 32 - 1 : kind === 2 ? 2 ** 63 : 2 ** 64;
  let lo: number;
  let hi: number;
  let fl = 0;
  const big = kind >= 2;
  if (Number.isNaN(v) || r > max || (big && r === max) || r < min) {
    fl = FLAG.NV;
    const hiSide = Number.isNaN(v) || v > 0;
    if (kind === 0) lo = hiSide ? 0x7fffffff : -0x80000000;
    else if (kind === 1) lo = hiSide ? -1 : 0;
    else lo = hiSide ? -1 : 0;
    if (kind === 2) hi = hiSide ? 0x7fffffff : -0x80000000;
    else if (kind === 3) hi = hiSide ? -1 : 0;
    else hi = lo >> 31;
  } else {
    if (r !== v) fl = FLAG.NX;
    if (big) {
      lo = numToPair(r + 0);
      hi = I64.hi;
    } else {
      lo = r | 0;
      hi = lo >> 31;
    }
  }
  if (rd !== 0) {
    c.x[2 * rd] = lo;
    c.x[2 * rd + 1] = hi;
  }
  flags(c, fl);
}

/** Integer → float (fcvt.{s,d}.{w,wu,l,lu}). */
function fromInt(
  c: Core,
  rd: number,
  rs1: number,
  kind: number,
  single: boolean,
  rm: number,
): void {
  const lo = c.x[2 * rs1] ?? 0;
  const hi = c.x[2 * rs1 + 1] ?? 0;
  let v: bigint;
  if (kind === 0) v = BigInt(lo);
  else if (kind === 1) v = BigInt(lo >>> 0);
  else if (kind === 2) v = toBigS(lo, hi);
  else v = toBigU(lo, hi);
  const limit = single ? 1n << 24n : 1n << 53n;
  if (v < limit && v > -limit) {
    if (single) writeSNum(c, rd, Number(v));
    else writeD(c, rd, Number(v));
    return;
  }
  SF.flags = 0;
  slow(c, rd, single ? F32 : F64, sfFromInt(v, single ? F32 : F64, rm));
}

/** Executes an OP-FP instruction (opcode 0x53). */
export function execOpFp(c: Core, insn: number, raw: number): void {
  const f7 = insn >>> 25;
  const fmtBits = f7 & 3;
  if (!fpReady(c, raw, fmtBits)) return;
  const single = fmtBits === 0;
  const rd = (insn >>> 7) & 31;
  const r1 = (insn >>> 15) & 31;
  const r2 = (insn >>> 20) & 31;
  const f3 = (insn >>> 12) & 7;
  const group = f7 >>> 2;
  const needsRm = group <= 3 || group === 11 || group === 8 || group === 24 || group === 26;
  const rm = needsRm ? resolveRm(c, insn) : 0;
  if (rm < 0) {
    c.illegal(raw);
    return;
  }
  switch (group) {
    case 0:
    case 1:
    case 2:
    case 3:
      arith(c, group, single, rd, r1, r2, rm);
      return;
    case 11:
      if (r2 !== 0) break;
      arith(c, 4, single, rd, r1, r2, rm);
      return;
    case 4: {
      // fsgnj / fsgnjn / fsgnjx on raw bits.
      if (f3 > 2) break;
      const [alo, ahi] = rawOp(c, r1, single);
      const [blo, bhi] = rawOp(c, r2, single);
      const signA = single ? alo >>> 31 : ahi >>> 31;
      const signB = single ? blo >>> 31 : bhi >>> 31;
      const s = f3 === 0 ? signB : f3 === 1 ? signB ^ 1 : signA ^ signB;
      if (single) writeS(c, rd, (alo & 0x7fffffff) | (s << 31));
      else {
        c.f[2 * rd] = alo;
        c.f[2 * rd + 1] = (ahi & 0x7fffffff) | (s << 31);
        c.sstatus |= SSTATUS.FS;
      }
      return;
    }
    case 5: {
      if (f3 > 1) break;
      minMax(c, rd, r1, r2, single, f3 === 1);
      return;
    }
    case 8: {
      // fcvt.s.d (f7 0x20, rs2 1) / fcvt.d.s (f7 0x21, rs2 0).
      if (single && r2 === 1 && c.dEnabled) {
        const v = c.fd[r1] ?? 0;
        const r = Math.fround(v);
        if (rm === RM.RNE && normalResult(r, MIN_NORMAL_S)) {
          writeSNum(c, rd, r);
          if (r !== v) flags(c, FLAG.NX);
          return;
        }
        SF.flags = 0;
        slow(c, rd, F32, sfConvert(dBig(c, r1), F64, F32, rm));
        return;
      }
      if (!single && r2 === 0 && c.fEnabled) {
        const bits = sOp(c, r1);
        const v = s2n(bits);
        if (Number.isNaN(v)) {
          if (isSNaN(bits, 0, true)) flags(c, FLAG.NV);
          writeD(c, rd, NaN);
        } else {
          writeD(c, rd, v);
        }
        return;
      }
      break;
    }
    case 20: {
      if (f3 > 2) break;
      compare(c, rd, r1, r2, single, f3);
      return;
    }
    case 24: {
      if (r2 > 3) break;
      toInt(c, rd, opNum(c, r1, single), r2, rm);
      return;
    }
    case 26: {
      if (r2 > 3) break;
      fromInt(c, rd, r1, r2, single, rm);
      return;
    }
    case 28: {
      if (r2 !== 0) break;
      if (f3 === 0) {
        // fmv.x.w (sign-extends the raw low word) / fmv.x.d.
        if (rd !== 0) {
          const lo = c.f[2 * r1] ?? 0;
          c.x[2 * rd] = lo;
          c.x[2 * rd + 1] = single ? lo >> 31 : (c.f[2 * r1 + 1] ?? 0);
        }
        return;
      }
      if (f3 === 1) {
        const [lo, hi] = rawOp(c, r1, single);
        const v = single ? s2n(lo) : (c.fd[r1] ?? 0);
        let k = fclass(v, isSNaN(lo, hi, single));
        const sub = v !== 0 && Math.abs(v) < (single ? MIN_NORMAL_S : MIN_NORMAL_D);
        if (sub && Number.isFinite(v)) k = v < 0 ? 2 : 5;
        if (rd !== 0) {
          c.x[2 * rd] = 1 << k;
          c.x[2 * rd + 1] = 0;
        }
        return;
      }
      break;
    }
    case 30: {
      if (r2 !== 0 || f3 !== 0) break;
      const lo = c.x[2 * r1] ?? 0;
      if (single) writeS(c, rd, lo);
      else {
        c.f[2 * rd] = lo;
        c.f[2 * rd + 1] = c.x[2 * r1 + 1] ?? 0;
        c.sstatus |= SSTATUS.FS;
      }
      return;
    }
    default:
      break;
  }
  c.illegal(raw);
}

/** fmin/fmax (spec 2.2 semantics: a NaN operand yields the other; -0 < +0). */
function minMax(c: Core, rd: number, r1: number, r2: number, single: boolean, max: boolean): void {
  const [alo, ahi] = rawOp(c, r1, single);
  const [blo, bhi] = rawOp(c, r2, single);
  const a = opNum(c, r1, single);
  const b = opNum(c, r2, single);
  if (isSNaN(alo, ahi, single) || isSNaN(blo, bhi, single)) flags(c, FLAG.NV);
  let pick: number; // 0 = a, 1 = b, 2 = canonical NaN
  if (Number.isNaN(a) && Number.isNaN(b)) pick = 2;
  else if (Number.isNaN(a)) pick = 1;
  else if (Number.isNaN(b)) pick = 0;
  else if (a === b) {
    // Equal values: only ±0 differ; min prefers -0, max +0.
    const aNeg = Object.is(a, -0);
    pick = aNeg === !max ? 0 : 1;
  } else pick = a < b !== max ? 0 : 1;
  if (pick === 2) {
    if (single) writeS(c, rd, 0x7fc00000);
    else writeD(c, rd, NaN);
    return;
  }
  const [lo, hi] = pick === 0 ? [alo, ahi] : [blo, bhi];
  if (single) writeS(c, rd, lo);
  else {
    c.f[2 * rd] = lo;
    c.f[2 * rd + 1] = hi;
    c.sstatus |= SSTATUS.FS;
  }
}

/** feq (quiet) / flt / fle (signaling). f3: 0 fle, 1 flt, 2 feq. */
function compare(c: Core, rd: number, r1: number, r2: number, single: boolean, f3: number): void {
  const [alo, ahi] = rawOp(c, r1, single);
  const [blo, bhi] = rawOp(c, r2, single);
  const a = opNum(c, r1, single);
  const b = opNum(c, r2, single);
  let res: boolean;
  if (Number.isNaN(a) || Number.isNaN(b)) {
    if (f3 !== 2 || isSNaN(alo, ahi, single) || isSNaN(blo, bhi, single)) flags(c, FLAG.NV);
    res = false;
  } else {
    res = f3 === 0 ? a <= b : f3 === 1 ? a < b : a === b;
  }
  if (rd !== 0) {
    c.x[2 * rd] = res ? 1 : 0;
    c.x[2 * rd + 1] = 0;
  }
}

/** Helpers for the translator and tests: single bits ↔ number. */
export const floatBits = { s2n, n2s, TWO32, u32, f64 };
