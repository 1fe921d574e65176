/**
 * Register values as numbers: the one little-endian helper (register values are host byte
 * order, little-endian on every KVM arch regvisor drives). The soft backend's facades, kernel
 * batch paths and mailbox, the x86 field tables and the gdbstub use the offset forms; the KVM
 * hot paths keep their 32-bit word helpers (backends/kvm/le-bytes.ts), which avoid bigints.
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

/** The unsigned little-endian integer in `bytes` (any length; 0 for an empty array). */
export function leValue(bytes: Uint8Array): bigint {
  return decodeLE(bytes, 0, bytes.length);
}
