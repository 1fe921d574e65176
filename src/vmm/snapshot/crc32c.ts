/**
 * CRC32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF
 * (RFC 3720 §B.4, the iSCSI CRC; also ext4, btrfs and Firecracker's snapshot checksum).
 *
 * Table-driven, slice-by-8: eight 256-entry tables let the loop fold 8 input bytes per step
 * instead of one (the technique of Intel's "slicing-by-8" paper, Kounavis & Berry 2005).
 * Checksums of multi-megabyte guest RAM sections make the speed worth the 8 KiB of tables.
 *
 * `crc32c()` runs the SSE4.2 `crc32` instruction through regvisor's native addon
 * (native/crc32c.cc, several GB/s against this loop's 100-380 MB/s) for inputs of at least
 * `NATIVE_MIN_BYTES`, and this JS loop when the addon is not built, the CPU lacks SSE4.2 or
 * `REGVISOR_NATIVE=0`. Both give the same results (test/vmm/snapshot/crc32c-native.test.ts).
 */
import { ADDON_FILE, findAddon, requireAddon } from "../../native-addon.js";

/** The reflected Castagnoli polynomial (bit-reversed 0x1EDC6F41). */
export const CRC32C_POLY = 0x82f63b78;

/** tables[k][b]: CRC of byte b followed by k zero bytes, packed as 8 × 256 u32. */
const TABLES: Uint32Array = buildTables();

function buildTables(): Uint32Array {
  const t = new Uint32Array(8 * 256);
  for (let b = 0; b < 256; b++) {
    let c = b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ CRC32C_POLY : c >>> 1;
    t[b] = c >>> 0;
  }
  for (let b = 0; b < 256; b++) {
    let c = t[b] ?? 0;
    for (let k = 1; k < 8; k++) {
      c = (t[c & 0xff] ?? 0) ^ (c >>> 8);
      t[k * 256 + b] = c >>> 0;
    }
  }
  return t;
}

/**
 * CRC32C of `bytes` by the table-driven JS loop (the fallback of `crc32c()`).
 */
export function crc32cJs(bytes: Uint8Array, previous = 0): number {
  const t = TABLES;
  let crc = ~previous >>> 0;
  let i = 0;
  const n = bytes.length;
  const fast = n - (n % 8);
  // The `?? 0` fallbacks cannot trigger (indices are masked to 0..255 and i < n); they
  // satisfy noUncheckedIndexedAccess without a cast.
  for (; i < fast; i += 8) {
    const lo =
      crc ^
      ((bytes[i] ?? 0) |
        ((bytes[i + 1] ?? 0) << 8) |
        ((bytes[i + 2] ?? 0) << 16) |
        ((bytes[i + 3] ?? 0) << 24));
    const hi =
      (bytes[i + 4] ?? 0) |
      ((bytes[i + 5] ?? 0) << 8) |
      ((bytes[i + 6] ?? 0) << 16) |
      ((bytes[i + 7] ?? 0) << 24);
    crc =
      (t[7 * 256 + (lo & 0xff)] ?? 0) ^
      (t[6 * 256 + ((lo >>> 8) & 0xff)] ?? 0) ^
      (t[5 * 256 + ((lo >>> 16) & 0xff)] ?? 0) ^
      (t[4 * 256 + (lo >>> 24)] ?? 0) ^
      (t[3 * 256 + (hi & 0xff)] ?? 0) ^
      (t[2 * 256 + ((hi >>> 8) & 0xff)] ?? 0) ^
      (t[256 + ((hi >>> 16) & 0xff)] ?? 0) ^
      (t[hi >>> 24] ?? 0);
  }
  for (; i < n; i++) crc = (t[(crc ^ (bytes[i] ?? 0)) & 0xff] ?? 0) ^ (crc >>> 8);
  return ~crc >>> 0;
}

/** The addon's `crc32c(view, previous)`: undefined when the CPU lacks SSE4.2. */
type NativeCrc32c = (bytes: Uint8Array, previous: number) => number | undefined;

/**
 * Below this many bytes the JS loop wins: a native call costs about as much as checking a few
 * dozen bytes here (frame headers, the 24-byte stream header).
 */
export const NATIVE_MIN_BYTES = 256;

/** Which implementation `crc32c()` uses for large inputs, and why when it is the JS one. */
export interface Crc32cPath {
  /** "sse4.2+vpclmulqdq": inputs of 1 KiB or more fold 64 bytes per step (native/crc32c.cc). */
  readonly kind: "sse4.2" | "sse4.2+vpclmulqdq" | "js";
  readonly reason?: string;
}

function loadNative(): { readonly path: Crc32cPath; readonly fn?: NativeCrc32c } {
  const js = (reason: string): { path: Crc32cPath } => ({ path: { kind: "js", reason } });
  if (process.env.REGVISOR_NATIVE === "0") return js("REGVISOR_NATIVE=0");
  // The same file src/backends/kvm/ffi.ts loads for ioctls, loaded here without koffi.
  const file = findAddon();
  if (file === undefined) return js(`${ADDON_FILE} was not built at install`);
  try {
    const addon = requireAddon(file) as { crc32c?: unknown; crc32cFold?: unknown };
    const fn = addon.crc32c;
    if (typeof fn !== "function") return js("the addon predates its crc32c");
    const native = fn as NativeCrc32c;
    // RFC 3720 §B.4's check value: also says whether the CPU has SSE4.2 (undefined if not).
    const check = native(new TextEncoder().encode("123456789".repeat(32)), 0);
    if (check === undefined) return js("this CPU has no SSE4.2");
    if (check !== crc32cJs(new TextEncoder().encode("123456789".repeat(32)))) {
      return js("the addon's crc32c disagrees with the JS one");
    }
    const foldFn = addon.crc32cFold as (() => unknown) | undefined;
    const fold = typeof foldFn === "function" && foldFn() === true;
    return { path: { kind: fold ? "sse4.2+vpclmulqdq" : "sse4.2" }, fn: native };
  } catch (error) {
    return js(`the addon did not load: ${error instanceof Error ? error.message : String(error)}`);
  }
}

const NATIVE = loadNative();

/** Which implementation `crc32c()` uses (module header). */
export function crc32cPath(): Crc32cPath {
  return NATIVE.path;
}

/**
 * CRC32C of `bytes` by the SSE4.2 instruction; undefined when the addon or SSE4.2 is missing
 * (tests compare it with `crc32cJs`).
 */
export function crc32cNative(bytes: Uint8Array, previous = 0): number | undefined {
  return NATIVE.fn?.(bytes, previous >>> 0);
}

/**
 * CRC32C of `bytes`. Pass a previous result as `previous` to continue a checksum across
 * chunks: `crc32c(b, crc32c(a))` equals `crc32c(a ++ b)`.
 */
export function crc32c(bytes: Uint8Array, previous = 0): number {
  const fn = NATIVE.fn;
  if (fn !== undefined && bytes.length >= NATIVE_MIN_BYTES) {
    const crc = fn(bytes, previous >>> 0);
    if (crc !== undefined) return crc;
  }
  return crc32cJs(bytes, previous);
}
