/**
 * A register value given as bytes or a bigint, checked against its id's size: one rule and one
 * set of messages for every backend (`setOneReg` on KVM and on the soft backend).
 *
 * A bigint may be written unsigned (0 .. 2^bits-1) or as a negative two's-complement value
 * (down to -2^(bits-1)), so `-1n` sets every bit; registers wider than 8 bytes take bytes only.
 */
import { regLabel } from "../abi/catalog.js";
import { regSize, type RegId } from "../abi/regid.js";

/**
 * The little-endian bytes to write to `id` (`value` itself when it is already bytes).
 * @throws {TypeError} unless `value` is a Uint8Array or a bigint.
 * @throws {RangeError} when the bytes are not the register's size, or the bigint does not fit.
 */
export function encodeRegValue(id: RegId, value: Uint8Array | bigint): Uint8Array {
  const size = regSize(id);
  if (value instanceof Uint8Array) {
    if (value.length !== size) {
      throw new RangeError(
        `Cannot set register ${regLabel(id)}: the value has ${value.length} bytes, the register ${size}`,
      );
    }
    return value;
  }
  if (typeof value !== "bigint") {
    throw new TypeError(
      `Cannot set register ${regLabel(id)}: the value must be a Uint8Array or a bigint`,
    );
  }
  if (size > 8) {
    throw new RangeError(
      `Cannot set register ${regLabel(id)}: a ${size}-byte register takes a Uint8Array value`,
    );
  }
  const bits = BigInt(8 * size);
  if (value >= 1n << bits || value < -(1n << (bits - 1n))) {
    throw new RangeError(
      `Cannot set register ${regLabel(id)}: the value ${value} does not fit in ${size} bytes`,
    );
  }
  const out = new Uint8Array(size);
  let v = BigInt.asUintN(Number(bits), value);
  for (let i = 0; i < size; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}
