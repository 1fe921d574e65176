/**
 * 64-bit integer arithmetic on int32 lo/hi pairs, the hart's register representation
 * (docs/soft-riscv-notes.md §2.2: pairs keep V8's optimizing tier in int32 registers; BigInt
 * in the hot path is ~5x slower). Results that need two words return the low word and leave the
 * high word in `I64.hi`; everything here is exact.
 */

/** 2^32 as a double. */
export const TWO32 = 4294967296;

/** Scratch output for the functions below: the high word of the last two-word result. */
export const I64 = { hi: 0 };

/** Low 32 bits of the unsigned 64-bit product of two u32 values, high word to `I64.hi`. */
export function mulu32(a: number, b: number): number {
  const lo = Math.imul(a, b);
  // The double product is within 2^10 of the exact one; subtracting the exact low word leaves
  // a multiple of 2^32 off by at most 2^11, which Math.round removes.
  I64.hi = Math.round(((a >>> 0) * (b >>> 0) - (lo >>> 0)) / TWO32) | 0;
  return lo;
}

/** Low 64 bits of a 64x64 product (MUL); high word to `I64.hi`. */
export function mul64(alo: number, ahi: number, blo: number, bhi: number): number {
  const lo = mulu32(alo, blo);
  I64.hi = (I64.hi + Math.imul(alo, bhi) + Math.imul(ahi, blo)) | 0;
  return lo;
}

/** Pair → BigInt, signed. */
export function toBigS(lo: number, hi: number): bigint {
  return (BigInt(hi | 0) << 32n) | BigInt(lo >>> 0);
}

/** Pair → BigInt, unsigned. */
export function toBigU(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** BigInt (any width) → pair, keeping the low 64 bits; returns lo, high word to `I64.hi`. */
export function fromBig(v: bigint): number {
  I64.hi = Number(BigInt.asIntN(32, v >> 32n));
  return Number(BigInt.asIntN(32, v));
}

/** High 64 bits of the 128-bit product; `sa`/`sb` say whether each operand is signed. */
export function mulh64(
  alo: number,
  ahi: number,
  blo: number,
  bhi: number,
  sa: boolean,
  sb: boolean,
): number {
  const a = sa ? toBigS(alo, ahi) : toBigU(alo, ahi);
  const b = sb ? toBigS(blo, bhi) : toBigU(blo, bhi);
  return fromBig((a * b) >> 64n);
}

/** True if the signed pair is exactly representable as a double (|v| < 2^53). */
function small(lo: number, hi: number): boolean {
  return hi >= -0x200000 && hi < 0x200000 && !(hi === -0x200000 && lo === 0);
}

/** Signed pair → double (exact only when `small`). */
export function pairToNum(lo: number, hi: number): number {
  return hi * TWO32 + (lo >>> 0);
}

/** Double (an integer with |v| < 2^63) → pair; returns lo, high word to `I64.hi`. */
export function numToPair(v: number): number {
  I64.hi = Math.floor(v / TWO32) | 0;
  return v | 0;
}

/**
 * Unsigned 64-bit a / b (or a % b), b != 0, without BigInt. Divisors below 2^37 use long
 * division in 32- or 16-bit digits (each partial dividend stays below 2^53); larger divisors have a
 * quotient below 2^27, estimated in doubles (off by at most one) and corrected exactly.
 * Returns lo, high word to `I64.hi`.
 */
export function udiv64(alo: number, ahi: number, blo: number, bhi: number, rem: boolean): number {
  const b = (bhi >>> 0) * TWO32 + (blo >>> 0);
  if (b < 0x200000) {
    // Two 32-bit digits: r * 2^32 + digit < 2^53.
    const ah = ahi >>> 0;
    const qh = Math.floor(ah / b);
    const cur = (ah - qh * b) * TWO32 + (alo >>> 0);
    const ql = Math.floor(cur / b);
    if (rem) {
      I64.hi = 0;
      return (cur - ql * b) | 0;
    }
    I64.hi = qh | 0;
    return ql | 0;
  }
  if (bhi >>> 0 < 32) {
    // Four 16-bit digits: r < b < 2^37, so r * 2^16 + digit < 2^53.
    let cur = ahi >>> 16;
    const q3 = Math.floor(cur / b);
    cur = (cur - q3 * b) * 65536 + (ahi & 0xffff);
    const q2 = Math.floor(cur / b);
    cur = (cur - q2 * b) * 65536 + (alo >>> 16);
    const q1 = Math.floor(cur / b);
    cur = (cur - q1 * b) * 65536 + (alo & 0xffff);
    const q0 = Math.floor(cur / b);
    if (rem) return numToPair(cur - q0 * b);
    I64.hi = (q3 << 16) | q2 | 0;
    return (q1 << 16) | q0 | 0;
  }
  const a = (ahi >>> 0) * TWO32 + (alo >>> 0);
  // Start one below the estimate so q*b ≤ a (no 64-bit overflow), then correct upwards.
  let q = Math.max(0, Math.floor(a / b) - 1);
  const plo = mul64(q, 0, blo, bhi);
  const phi = I64.hi;
  let rlo = (alo - plo) | 0;
  let rhi = (ahi - phi - (alo >>> 0 < plo >>> 0 ? 1 : 0)) | 0;
  while (!ltu64(rlo, rhi, blo, bhi)) {
    const nlo = (rlo - blo) | 0;
    rhi = (rhi - bhi - (rlo >>> 0 < blo >>> 0 ? 1 : 0)) | 0;
    rlo = nlo;
    q += 1;
  }
  if (rem) {
    I64.hi = rhi;
    return rlo;
  }
  I64.hi = 0;
  return q | 0;
}

/** Negates a pair; returns lo, high word to `I64.hi`. */
function neg64(lo: number, hi: number): number {
  const nlo = -lo | 0;
  I64.hi = (~hi + (nlo === 0 ? 1 : 0)) | 0;
  return nlo;
}

/**
 * DIV/DIVU/REM/REMU (RV64 M, spec §13.2): x/0 = -1 (all ones), x%0 = x, MIN/-1 = MIN, MIN%-1 = 0.
 * `signed` picks DIV/REM; `rem` picks the remainder.
 */
export function div64(
  alo: number,
  ahi: number,
  blo: number,
  bhi: number,
  signed: boolean,
  rem: boolean,
): number {
  if (blo === 0 && bhi === 0) {
    if (rem) {
      I64.hi = ahi;
      return alo;
    }
    I64.hi = -1;
    return -1;
  }
  if (!signed) return udiv64(alo, ahi, blo, bhi, rem);
  if (small(alo, ahi) && small(blo, bhi)) {
    // Both operands below 2^53 in magnitude: the double quotient truncates correctly
    // (|a| < 2^53 means the rounding error cannot cross an integer).
    const a = pairToNum(alo, ahi);
    const b = pairToNum(blo, bhi);
    const q = Math.trunc(a / b);
    return numToPair(rem ? a - q * b : q);
  }
  // Work on magnitudes (MIN's magnitude 2^63 is representable unsigned), then fix signs:
  // the quotient is negative when the signs differ, the remainder takes the dividend's sign.
  const na = ahi < 0;
  const nb = bhi < 0;
  let ulo = alo;
  let uhi = ahi;
  if (na) {
    ulo = neg64(alo, ahi);
    uhi = I64.hi;
  }
  let vlo = blo;
  let vhi = bhi;
  if (nb) {
    vlo = neg64(blo, bhi);
    vhi = I64.hi;
  }
  const lo = udiv64(ulo, uhi, vlo, vhi, rem);
  const hi = I64.hi;
  if (rem ? na : na !== nb) return neg64(lo, hi);
  I64.hi = hi;
  return lo;
}

/** DIVW/DIVUW/REMW/REMUW: 32-bit operands, result sign-extended to 64 bits (returned as lo). */
export function div32(a: number, b: number, signed: boolean, rem: boolean): number {
  if (b === 0) return rem ? a | 0 : -1;
  if (signed) {
    if (a === -0x80000000 && b === -1) return rem ? 0 : a;
    const q = Math.trunc(a / b);
    return (rem ? a - q * b : q) | 0;
  }
  const ua = a >>> 0;
  const ub = b >>> 0;
  return (rem ? ua % ub : Math.floor(ua / ub)) | 0;
}

/** Logical/arithmetic 64-bit shifts by 0..63; returns lo, high word to `I64.hi`. */
export function shl64(lo: number, hi: number, sh: number): number {
  if (sh === 0) {
    I64.hi = hi;
    return lo;
  }
  if (sh < 32) {
    I64.hi = (hi << sh) | (lo >>> (32 - sh));
    return lo << sh;
  }
  I64.hi = lo << (sh - 32);
  return 0;
}

/** SRL on a pair. */
export function shr64(lo: number, hi: number, sh: number): number {
  if (sh === 0) {
    I64.hi = hi;
    return lo;
  }
  if (sh < 32) {
    I64.hi = hi >>> sh;
    return (lo >>> sh) | (hi << (32 - sh));
  }
  I64.hi = 0;
  return hi >>> (sh - 32);
}

/** SRA on a pair. */
export function sar64(lo: number, hi: number, sh: number): number {
  if (sh === 0) {
    I64.hi = hi;
    return lo;
  }
  if (sh < 32) {
    I64.hi = hi >> sh;
    return (lo >>> sh) | (hi << (32 - sh));
  }
  I64.hi = hi >> 31;
  return hi >> (sh - 32);
}

/** Signed 64-bit a < b. */
export function lt64(alo: number, ahi: number, blo: number, bhi: number): boolean {
  return ahi < bhi || (ahi === bhi && alo >>> 0 < blo >>> 0);
}

/** Unsigned 64-bit a < b. */
export function ltu64(alo: number, ahi: number, blo: number, bhi: number): boolean {
  return ahi >>> 0 < bhi >>> 0 || (ahi === bhi && alo >>> 0 < blo >>> 0);
}
