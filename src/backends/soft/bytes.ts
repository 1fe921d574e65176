/**
 * Little-endian register value codecs shared by the soft vCPU facades, the kernel's batch paths
 * and the worker mailbox (register values are host byte order, which is little-endian on every
 * KVM arch regvisor drives).
 */

/** Reads `len` bytes at `offset` as an unsigned little-endian integer. */
export function decodeLE(bytes: Uint8Array, offset: number, len: number): bigint {
  if (len === 8) {
    const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 8);
    return view.getBigUint64(0, true);
  }
  if (len === 4) {
    const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 4);
    return BigInt(view.getUint32(0, true));
  }
  let value = 0n;
  for (let i = len - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[offset + i] ?? 0);
  return value;
}

/** Writes the low `len` bytes of `value` at `offset`, little-endian. */
export function encodeLE(value: bigint, bytes: Uint8Array, offset: number, len: number): void {
  if (len === 8) {
    new DataView(bytes.buffer, bytes.byteOffset + offset, 8).setBigUint64(
      0,
      BigInt.asUintN(64, value),
      true,
    );
    return;
  }
  if (len === 4) {
    new DataView(bytes.buffer, bytes.byteOffset + offset, 4).setUint32(
      0,
      Number(BigInt.asUintN(32, value)),
      true,
    );
    return;
  }
  let rest = value;
  for (let i = 0; i < len; i++) {
    bytes[offset + i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
}

/**
 * The bytes of a `setOneReg` value: a Uint8Array of exactly `size` bytes, or a bigint that fits
 * in `size` bytes (≤ 8), unsigned or two's-complement negative.
 * @throws {TypeError} for any other type.
 * @throws {RangeError} if the array length differs from `size` or the bigint does not fit.
 */
export function valueBytes(value: Uint8Array | bigint, size: number, what: string): Uint8Array {
  if (value instanceof Uint8Array) {
    if (value.length !== size) {
      throw new RangeError(`${what}: value has ${value.length} bytes, the register has ${size}`);
    }
    return value;
  }
  if (typeof value !== "bigint") {
    throw new TypeError(`${what}: value must be a Uint8Array or a bigint`);
  }
  if (size > 8) throw new RangeError(`${what}: a ${size}-byte register needs a Uint8Array value`);
  const bits = BigInt(8 * size);
  if (value >= 1n << bits || value < -(1n << (bits - 1n))) {
    throw new RangeError(`${what}: ${value} does not fit in ${size} bytes`);
  }
  const out = new Uint8Array(size);
  encodeLE(BigInt.asUintN(Number(bits), value), out, 0, size);
  return out;
}
