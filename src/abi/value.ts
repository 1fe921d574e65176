/**
 * Register values as numbers: the one little-endian helper of the VMM layers (register values
 * are host byte order, little-endian on every KVM arch regvisor drives).
 */

/** The unsigned little-endian integer in `bytes` (any length; 0 for an empty array). */
export function leValue(bytes: Uint8Array): bigint {
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] ?? 0);
  return value;
}

/**
 * The low `size` bytes of `value`, little-endian (two's complement for negative values).
 * @throws RangeError when `size` is not a non-negative integer.
 */
export function leBytes(value: bigint, size: number): Uint8Array {
  if (!Number.isInteger(size) || size < 0) throw new RangeError(`bad value size ${size}`);
  const out = new Uint8Array(size);
  let rest = BigInt.asUintN(size * 8, value);
  for (let i = 0; i < size; i++) {
    out[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return out;
}
