/**
 * Exact IEEE 754 binary32/binary64 arithmetic on raw bit patterns with BigInt, for every
 * rounding mode and with exact exception flags: the slow path behind fpu.ts, which handles the
 * common round-to-nearest-even cases with JS doubles (docs/soft-riscv-notes.md §2.3 item 5).
 *
 * RISC-V specifics (unprivileged spec, "F" chapter): NaN results are the canonical NaN (no
 * payload propagation); tininess is detected after rounding; inf × 0 + qNaN raises invalid.
 */

/** fflags bits. */
export const FLAG = { NX: 1, UF: 2, OF: 4, DZ: 8, NV: 16 } as const;

/** Rounding modes (frm encoding). */
export const RM = { RNE: 0, RTZ: 1, RDN: 2, RUP: 3, RMM: 4 } as const;

/** A binary format's parameters. */
export interface Fmt {
  /** Precision in bits including the hidden bit (24 / 53). */
  readonly p: number;
  readonly bias: number;
  /** Exponent field width. */
  readonly ew: number;
  readonly emin: number;
  readonly emax: number;
  readonly bits: number;
  readonly canonicalNaN: bigint;
}

/** binary32. */
export const F32: Fmt = {
  p: 24,
  bias: 127,
  ew: 8,
  emin: -126,
  emax: 127,
  bits: 32,
  canonicalNaN: 0x7fc00000n,
};
/** binary64. */
export const F64: Fmt = {
  p: 53,
  bias: 1023,
  ew: 11,
  emin: -1022,
  emax: 1023,
  bits: 64,
  canonicalNaN: 0x7ff8000000000000n,
};

/** Flags raised by the last operations (the caller ORs them into fflags and clears this). */
export const SF = { flags: 0 };

/** Value classes of an unpacked operand. */
const K = { Zero: 0, Finite: 1, Inf: 2, QNaN: 3, SNaN: 4 } as const;
type Kind = (typeof K)[keyof typeof K];

/** An unpacked operand: value = (-1)^sign × mant × 2^exp for Finite. */
interface Unpacked {
  k: Kind;
  sign: boolean;
  mant: bigint;
  exp: number;
}

function unpack(bits: bigint, f: Fmt): Unpacked {
  const fracBits = BigInt(f.p - 1);
  const frac = bits & ((1n << fracBits) - 1n);
  const e = Number((bits >> fracBits) & BigInt((1 << f.ew) - 1));
  const sign = ((bits >> BigInt(f.bits - 1)) & 1n) === 1n;
  if (e === (1 << f.ew) - 1) {
    if (frac === 0n) return { k: K.Inf, sign, mant: 0n, exp: 0 };
    const quiet = (frac >> (fracBits - 1n)) & 1n;
    return { k: quiet === 1n ? K.QNaN : K.SNaN, sign, mant: 0n, exp: 0 };
  }
  if (e === 0) {
    if (frac === 0n) return { k: K.Zero, sign, mant: 0n, exp: 0 };
    return { k: K.Finite, sign, mant: frac, exp: f.emin - (f.p - 1) };
  }
  return { k: K.Finite, sign, mant: frac | (1n << fracBits), exp: e - f.bias - (f.p - 1) };
}

function bitLength(v: bigint): number {
  return v === 0n ? 0 : v.toString(2).length;
}

function infBits(sign: boolean, f: Fmt): bigint {
  const inf = BigInt((1 << f.ew) - 1) << BigInt(f.p - 1);
  return sign ? inf | (1n << BigInt(f.bits - 1)) : inf;
}

function zeroBits(sign: boolean, f: Fmt): bigint {
  return sign ? 1n << BigInt(f.bits - 1) : 0n;
}

/** Rounds mant (≥ 0) by `shift` bits per rm; returns [rounded, inexact]. */
function roundShift(mant: bigint, shift: number, sign: boolean, rm: number): [bigint, boolean] {
  if (shift <= 0) return [mant << BigInt(-shift), false];
  const s = BigInt(shift);
  let m = mant >> s;
  const rem = mant & ((1n << s) - 1n);
  if (rem === 0n) return [m, false];
  const half = 1n << (s - 1n);
  let up = false;
  switch (rm) {
    case RM.RNE:
      up = rem > half || (rem === half && (m & 1n) === 1n);
      break;
    case RM.RDN:
      up = sign;
      break;
    case RM.RUP:
      up = !sign;
      break;
    case RM.RMM:
      up = rem >= half;
      break;
    default:
      break;
  }
  if (up) m += 1n;
  return [m, true];
}

/** Rounds the exact value (-1)^sign × mant × 2^exp to format f; sets SF.flags. */
export function roundPack(sign: boolean, mant: bigint, exp: number, f: Fmt, rm: number): bigint {
  if (mant === 0n) return zeroBits(sign, f);
  const n = bitLength(mant);
  const e = exp + n - 1; // value in [2^e, 2^(e+1))
  const qMin = f.emin - (f.p - 1);
  const q = Math.max(e - (f.p - 1), qMin);
  const rounded = roundShift(mant, q - exp, sign, rm);
  let m = rounded[0];
  const inexact = rounded[1];
  let qq = q;
  if (bitLength(m) > f.p) {
    m >>= 1n;
    qq += 1;
  }
  if (inexact) {
    SF.flags |= FLAG.NX;
    if (e < f.emin) {
      // Tininess after rounding: round to p bits with an unbounded exponent.
      const [mu] = roundShift(mant, e - (f.p - 1) - exp, sign, rm);
      if (!(e === f.emin - 1 && bitLength(mu) > f.p)) SF.flags |= FLAG.UF;
    }
  }
  const top = qq + f.p - 1;
  if (m !== 0n && bitLength(m) === f.p && top > f.emax) {
    SF.flags |= FLAG.OF | FLAG.NX;
    const toInf =
      rm === RM.RNE || rm === RM.RMM || (rm === RM.RUP && !sign) || (rm === RM.RDN && sign);
    if (toInf) return infBits(sign, f);
    const max = (BigInt((1 << f.ew) - 2) << BigInt(f.p - 1)) | ((1n << BigInt(f.p - 1)) - 1n);
    return sign ? max | (1n << BigInt(f.bits - 1)) : max;
  }
  let bits: bigint;
  if (bitLength(m) < f.p) {
    bits = m; // subnormal (or zero after rounding)
  } else {
    bits = (BigInt(top + f.bias) << BigInt(f.p - 1)) | (m & ((1n << BigInt(f.p - 1)) - 1n));
  }
  return sign ? bits | (1n << BigInt(f.bits - 1)) : bits;
}

function isNaNK(k: Kind): boolean {
  return k === K.QNaN || k === K.SNaN;
}

/** NaN handling shared by the arithmetic ops: canonical NaN, NV if any operand is signaling. */
function nanResult(f: Fmt, ...ops: Unpacked[]): bigint | null {
  if (!ops.some((o) => isNaNK(o.k))) return null;
  if (ops.some((o) => o.k === K.SNaN)) SF.flags |= FLAG.NV;
  return f.canonicalNaN;
}

function invalid(f: Fmt): bigint {
  SF.flags |= FLAG.NV;
  return f.canonicalNaN;
}

/** Exact sum of two finite-or-zero operands, rounded. */
function addFinite(a: Unpacked, b: Unpacked, f: Fmt, rm: number): bigint {
  if (a.k === K.Zero && b.k === K.Zero) {
    const sign = a.sign === b.sign ? a.sign : rm === RM.RDN;
    return zeroBits(sign, f);
  }
  if (a.k === K.Zero) return roundPack(b.sign, b.mant, b.exp, f, rm);
  if (b.k === K.Zero) return roundPack(a.sign, a.mant, a.exp, f, rm);
  const e = Math.min(a.exp, b.exp);
  const ma = a.mant << BigInt(a.exp - e);
  const mb = b.mant << BigInt(b.exp - e);
  const sa = a.sign ? -ma : ma;
  const sb = b.sign ? -mb : mb;
  const s = sa + sb;
  if (s === 0n) return zeroBits(rm === RM.RDN, f);
  return roundPack(s < 0n, s < 0n ? -s : s, e, f, rm);
}

/** a + b (negate b for subtraction by flipping its sign bit first). */
export function sfAdd(x: bigint, y: bigint, f: Fmt, rm: number): bigint {
  const a = unpack(x, f);
  const b = unpack(y, f);
  const nan = nanResult(f, a, b);
  if (nan !== null) return nan;
  if (a.k === K.Inf || b.k === K.Inf) {
    if (a.k === K.Inf && b.k === K.Inf && a.sign !== b.sign) return invalid(f);
    return infBits(a.k === K.Inf ? a.sign : b.sign, f);
  }
  return addFinite(a, b, f, rm);
}

/** a × b. */
export function sfMul(x: bigint, y: bigint, f: Fmt, rm: number): bigint {
  const a = unpack(x, f);
  const b = unpack(y, f);
  const nan = nanResult(f, a, b);
  if (nan !== null) return nan;
  const sign = a.sign !== b.sign;
  if (a.k === K.Inf || b.k === K.Inf) {
    if (a.k === K.Zero || b.k === K.Zero) return invalid(f);
    return infBits(sign, f);
  }
  if (a.k === K.Zero || b.k === K.Zero) return zeroBits(sign, f);
  return roundPack(sign, a.mant * b.mant, a.exp + b.exp, f, rm);
}

/** a × b + c with one rounding (negations applied by the caller through sign bits). */
export function sfFma(x: bigint, y: bigint, z: bigint, f: Fmt, rm: number): bigint {
  const a = unpack(x, f);
  const b = unpack(y, f);
  const c = unpack(z, f);
  const infTimesZero = (a.k === K.Inf && b.k === K.Zero) || (a.k === K.Zero && b.k === K.Inf);
  // RISC-V: inf × 0 is invalid even when the addend is a quiet NaN.
  if (infTimesZero) return invalid(f);
  const nan = nanResult(f, a, b, c);
  if (nan !== null) return nan;
  const ps = a.sign !== b.sign;
  if (a.k === K.Inf || b.k === K.Inf) {
    if (c.k === K.Inf && c.sign !== ps) return invalid(f);
    return infBits(ps, f);
  }
  if (c.k === K.Inf) return infBits(c.sign, f);
  const prod: Unpacked =
    a.k === K.Zero || b.k === K.Zero
      ? { k: K.Zero, sign: ps, mant: 0n, exp: 0 }
      : { k: K.Finite, sign: ps, mant: a.mant * b.mant, exp: a.exp + b.exp };
  return addFinite(prod, c, f, rm);
}

/** a / b. */
export function sfDiv(x: bigint, y: bigint, f: Fmt, rm: number): bigint {
  const a = unpack(x, f);
  const b = unpack(y, f);
  const nan = nanResult(f, a, b);
  if (nan !== null) return nan;
  const sign = a.sign !== b.sign;
  if (a.k === K.Inf) return b.k === K.Inf ? invalid(f) : infBits(sign, f);
  if (b.k === K.Inf) return zeroBits(sign, f);
  if (b.k === K.Zero) {
    if (a.k === K.Zero) return invalid(f);
    SF.flags |= FLAG.DZ;
    return infBits(sign, f);
  }
  if (a.k === K.Zero) return zeroBits(sign, f);
  const k = Math.max(0, f.p + 2 + bitLength(b.mant) - bitLength(a.mant)) + 1;
  const num = a.mant << BigInt(k);
  const q = num / b.mant;
  const sticky = num % b.mant !== 0n ? 1n : 0n;
  return roundPack(sign, (q << 1n) | sticky, a.exp - b.exp - k - 1, f, rm);
}

function isqrt(v: bigint): bigint {
  if (v < 2n) return v;
  let x = 1n << BigInt(Math.ceil(bitLength(v) / 2));
  for (;;) {
    const y = (x + v / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

/** √a. */
export function sfSqrt(x: bigint, f: Fmt, rm: number): bigint {
  const a = unpack(x, f);
  const nan = nanResult(f, a);
  if (nan !== null) return nan;
  if (a.k === K.Zero) return x;
  if (a.sign) return invalid(f);
  if (a.k === K.Inf) return x;
  let m = a.mant;
  let e = a.exp;
  if ((e & 1) !== 0) {
    m <<= 1n;
    e -= 1;
  }
  const k = Math.max(0, f.p + 3 - Math.floor(bitLength(m) / 2));
  const scaled = m << BigInt(2 * k);
  const s = isqrt(scaled);
  const sticky = s * s !== scaled ? 1n : 0n;
  return roundPack(false, (s << 1n) | sticky, e / 2 - k - 1, f, rm);
}

/** Converts between formats (NaN → canonical, NV for sNaN), rounding when narrowing. */
export function sfConvert(x: bigint, from: Fmt, to: Fmt, rm: number): bigint {
  const a = unpack(x, from);
  const nan = nanResult(to, a);
  if (nan !== null) return nan;
  if (a.k === K.Inf) return infBits(a.sign, to);
  if (a.k === K.Zero) return zeroBits(a.sign, to);
  return roundPack(a.sign, a.mant, a.exp, to, rm);
}

/** Integer (exact BigInt) → float with rounding. */
export function sfFromInt(v: bigint, to: Fmt, rm: number): bigint {
  if (v === 0n) return 0n;
  return roundPack(v < 0n, v < 0n ? -v : v, 0, to, rm);
}
