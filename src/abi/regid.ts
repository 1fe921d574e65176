/**
 * The 64-bit KVM register id (include/uapi/linux/kvm.h):
 *
 * ```
 *  63      56 55   52 51                                                      0
 * +----------+-------+--------------------------------------------------------+
 * |   arch   | size  |                 arch-specific payload                  |
 * +----------+-------+--------------------------------------------------------+
 * ```
 *
 * size in bytes = 1 << size code. Codes 0..8 have kernel names (U8..U2048); 9..15 are legal
 * encodings too (RISC-V vector registers take their code from log2(vlenb)), so nothing here
 * rejects them. Ids are `bigint` everywhere; a `RegId` is minted only by this codec and the
 * catalogs.
 */
import { RegIdSyntaxError } from "../errors.js";

declare const regIdBrand: unique symbol;

/** A 64-bit KVM register id, checked to lie in 0 .. 2^64-1. */
export type RegId = bigint & { readonly [regIdBrand]: true };

/** The arch byte (bits 63..56) of each namespace the kernel defines (`KVM_REG_<ARCH>`). */
export const ARCH_CODES = {
  generic: 0x00,
  ppc: 0x10,
  x86: 0x20,
  ia64: 0x30,
  arm: 0x40,
  s390: 0x50,
  arm64: 0x60,
  mips: 0x70,
  riscv: 0x80,
  loongarch: 0x90,
} as const;

/** Name of a register namespace, e.g. `"riscv"`. */
export type ArchName = keyof typeof ARCH_CODES;

/** Every namespace name, in arch-byte order. */
export const ARCH_NAMES: readonly ArchName[] = Object.keys(ARCH_CODES) as ArchName[];

const U64_MAX = (1n << 64n) - 1n;
const PAYLOAD_MASK = (1n << 52n) - 1n;

/** Kernel names of the size codes that have one (`KVM_REG_SIZE_U8` .. `U2048`). */
export const SIZE_NAMES = ["U8", "U16", "U32", "U64", "U128", "U256", "U512", "U1024", "U2048"];

/**
 * Mints a `RegId` from a bigint.
 * @throws {TypeError} if `value` is not a bigint.
 * @throws {RangeError} if `value` is negative or wider than 64 bits.
 */
export function regId(value: bigint): RegId {
  if (typeof value !== "bigint") {
    throw new TypeError(`A register id must be a bigint, got ${typeof value}`);
  }
  if (value < 0n) throw new RangeError(`Register id ${value} is negative`);
  if (value > U64_MAX) {
    throw new RangeError(`Register id 0x${value.toString(16)} is wider than 64 bits`);
  }
  return value as RegId;
}

/** The arch byte (bits 63..56). */
export function archCode(id: RegId): number {
  return Number(id >> 56n);
}

/** The namespace of `id`, or `undefined` when its arch byte names none. */
export function archOf(id: RegId): ArchName | undefined {
  const code = archCode(id);
  return ARCH_NAMES.find((name) => ARCH_CODES[name] === code);
}

/** The size code (bits 55..52), 0..15. */
export function sizeCode(id: RegId): number {
  return Number((id >> 52n) & 0xfn);
}

/** The value size in bytes that `id` names: `1 << sizeCode(id)` (1 .. 32768). */
export function regSize(id: RegId): number {
  return 1 << sizeCode(id);
}

/** The arch-specific payload (bits 51..0). */
export function payloadOf(id: RegId): bigint {
  return id & PAYLOAD_MASK;
}

/**
 * The size code for a size in bytes.
 * @throws {RangeError} unless `bytes` is a power of two from 1 to 32768.
 */
export function sizeCodeOf(bytes: number): number {
  const code = Math.log2(bytes);
  if (!Number.isInteger(code) || code < 0 || code > 15) {
    throw new RangeError(`Register size ${bytes} is not a power of two from 1 to 32768 bytes`);
  }
  return code;
}

/**
 * Builds an id from its three fields.
 * @throws {RangeError} if the size is not encodable or the payload does not fit in 52 bits.
 */
export function makeRegId(arch: ArchName, sizeBytes: number, payload: bigint): RegId {
  if (typeof payload !== "bigint") throw new TypeError("A register id payload must be a bigint");
  if (payload < 0n || payload > PAYLOAD_MASK) {
    const text = payload < 0n ? payload.toString() : `0x${payload.toString(16)}`;
    throw new RangeError(`Register id payload ${text} does not fit in 52 bits`);
  }
  const code = BigInt(sizeCodeOf(sizeBytes));
  return regId((BigInt(ARCH_CODES[arch]) << 56n) | (code << 52n) | payload);
}

/**
 * Formats an id the way every regvisor message does: `0x` + 16 lower-case hex digits.
 * @throws {TypeError} / {RangeError} as `regId()` for a value that is no 64-bit id.
 */
export function formatRegId(id: RegId): string {
  return "0x" + regId(id).toString(16).padStart(16, "0");
}

const HEX = /^0x[0-9a-f]+$/i;
const DEC = /^[0-9]+$/;

/**
 * Parses an id written as hex (`0x…`, underscores allowed between digits) or decimal.
 * @throws {RegIdSyntaxError} if the text is not a number.
 * @throws {RangeError} if the number is negative or wider than 64 bits.
 */
export function parseRegId(text: string): RegId {
  if (typeof text !== "string") throw new TypeError("A register id to parse must be a string");
  const trimmed = text.trim();
  const digits = trimmed.replace(/(?<=[0-9a-f])_(?=[0-9a-f])/gi, "");
  if (digits.startsWith("-") && (HEX.test(digits.slice(1)) || DEC.test(digits.slice(1)))) {
    throw new RangeError(`Register id "${text}" is negative`);
  }
  if (!HEX.test(digits) && !DEC.test(digits)) {
    throw new RegIdSyntaxError(
      `Cannot parse register id "${text}": expected 0x followed by hex digits, or decimal digits`,
    );
  }
  const value = BigInt(digits);
  if (value > U64_MAX) {
    throw new RangeError(`Register id "${text}" is wider than 64 bits`);
  }
  return value as RegId;
}
