/**
 * Little-endian 32-bit words in and out of byte arrays at any offset, without a DataView or
 * bigints: the hot paths (ONE_REG reads, MSR batches, TSC kHz) move 64-bit register values as
 * two of these, which V8 inlines to a few loads and stores.
 */

/** The unsigned 32-bit little-endian word at `bytes[at, at + 4)` (0 for bytes past the end). */
export function getU32(bytes: Uint8Array, at: number): number {
  const b0 = bytes[at] ?? 0;
  const b1 = bytes[at + 1] ?? 0;
  const b2 = bytes[at + 2] ?? 0;
  const b3 = bytes[at + 3] ?? 0;
  return (b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)) >>> 0;
}

/** Stores the low 32 bits of `value` little-endian at `bytes[at, at + 4)`. */
export function putU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value;
  bytes[at + 1] = value >>> 8;
  bytes[at + 2] = value >>> 16;
  bytes[at + 3] = value >>> 24;
}
