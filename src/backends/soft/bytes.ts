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
