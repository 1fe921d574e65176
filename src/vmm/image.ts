/**
 * Guest images as data: what a loader produced from a file, before any byte reaches guest RAM.
 *
 * An image is a list of segments (guest-physical address, the bytes from the file, the size in
 * memory — the tail beyond the file bytes is zero-filled, like ELF `.bss`) and an entry point.
 * The ELF loader (./elf.ts) and `loadFlat()` build images; ./guest-memory.ts validates and
 * places them. Images hold views into the caller's file bytes (no copies): keep the buffer
 * unchanged until the image is written. A flat binary or a Linux Image may also come as a
 * `GuestFile` not read yet: its segment is then read from the file straight into guest RAM.
 *
 * Every refusal is an `ImageError` whose `code` is stable, so the CLI and `--json` can report
 * it without a stack trace (issue 6: "every bad input gives a clear error").
 */
import { RegvisorError } from "../errors.js";

/** Stable codes of `ImageError`. */
export const IMAGE_ERROR_CODES = [
  /** The file ends before a header, a program header table or segment bytes it declares. */
  "IMAGE_TRUNCATED",
  /** Not an ELF file (wrong magic). */
  "IMAGE_BAD_MAGIC",
  /** An ELF header field is invalid (class, version, header sizes, counts). */
  "IMAGE_BAD_HEADER",
  /** A valid ELF that regvisor does not run: big-endian, relocatable, dynamically linked. */
  "IMAGE_UNSUPPORTED",
  /** The ELF's machine is not one a backend runs, or not the one the run asked for. */
  "IMAGE_WRONG_ARCH",
  /** A segment is inconsistent: file size above memory size, addresses that overflow. */
  "IMAGE_BAD_SEGMENT",
  /** The image has nothing to load. */
  "IMAGE_EMPTY",
  /** Two regions (segments, boot structures) claim the same guest-physical bytes. */
  "IMAGE_OVERLAP",
  /** A region lies (partly) outside guest RAM. */
  "IMAGE_OUTSIDE_RAM",
  /** The image (or a region) is larger than guest RAM, or RAM has no room left for a blob. */
  "IMAGE_TOO_BIG",
  /** The entry point is outside RAM or cannot be reached in the requested start mode. */
  "IMAGE_BAD_ENTRY",
] as const;

/** One of `IMAGE_ERROR_CODES`. */
export type ImageErrorCode = (typeof IMAGE_ERROR_CODES)[number];

/** A guest image was refused, by the loader or by placement into guest RAM. */
export class ImageError extends RegvisorError {
  declare readonly code: ImageErrorCode;

  // Not useless: it narrows `code` to the stable ImageErrorCode set at compile time.
  // eslint-disable-next-line @typescript-eslint/no-useless-constructor
  constructor(code: ImageErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

/** Architectures an image can be for (the ones a backend of regvisor runs). */
export type ImageArch = "x86" | "riscv";

/** The bytes of `GuestFile.head`: every header a loader reads before it needs the whole file. */
export const GUEST_FILE_HEAD_BYTES = 64 * 1024;

/**
 * A guest file opened and checked but not read: its size, its first bytes, and reads at an
 * offset. The plan needs only headers, so a flat binary or Linux Image is read once, by the
 * kernel, into guest RAM — no file-sized buffer and copy before the boot (src/vmm/input-file.ts).
 */
export interface GuestFile {
  /** Bytes in the file. */
  readonly length: number;
  /** The first `min(length, GUEST_FILE_HEAD_BYTES)` bytes. */
  readonly head: Uint8Array;
  /**
   * Fills `target` with the file's bytes from `offset`.
   * @throws a RegvisorError naming the file when it cannot (it shrank, an I/O error).
   */
  readInto(target: Uint8Array, offset: number): void;
  /** The whole file (an ELF's headers and segments may lie anywhere in it). */
  readAll(): Uint8Array;
}

/** The bytes a loader may look at without reading the rest of `file`. */
export function headOf(file: Uint8Array | GuestFile): Uint8Array {
  return file instanceof Uint8Array ? file : file.head;
}

/** One piece of an image destined for guest-physical memory. */
export interface ImageSegment {
  /** Human-readable name for error messages, e.g. `"ELF segment 1"`. */
  readonly label: string;
  /** Guest-physical load address. */
  readonly addr: bigint;
  /**
   * Bytes to copy (a view into the file, or the whole unread file); may be shorter than
   * `memSize`.
   */
  readonly data: Uint8Array | GuestFile;
  /** Bytes the segment occupies in memory; `[data.length, memSize)` is zero-filled. */
  readonly memSize: bigint;
}

/** A loaded-but-not-placed guest image. */
export interface GuestImage {
  /** Where it came from: an ELF file, a flat binary, a Linux kernel `Image`. */
  readonly format: "elf" | "flat" | "linux";
  /** From the ELF header; `undefined` for flat binaries (the `--backend` decides). */
  readonly arch: ImageArch | undefined;
  /** 32 or 64 for ELF (ELFCLASS); `undefined` for flat binaries. */
  readonly bits: 32 | 64 | undefined;
  /** Guest-physical address of the first instruction. */
  readonly entry: bigint;
  /** Segments in file order, none empty. */
  readonly segments: readonly ImageSegment[];
}

const U64_LIMIT = 1n << 64n;

/**
 * A flat binary: `bytes` copied to `loadAddr`, execution starting at `entry` (default `loadAddr`).
 * @throws ImageError IMAGE_EMPTY for an empty file, IMAGE_BAD_SEGMENT when the end passes 2^64.
 * @throws RangeError when an address is negative or wider than 64 bits.
 */
export function loadFlat(
  bytes: Uint8Array | GuestFile,
  loadAddr: bigint,
  entry: bigint = loadAddr,
): GuestImage {
  checkU64(loadAddr, "loadAddr");
  checkU64(entry, "entry");
  if (bytes.length === 0) {
    throw new ImageError("IMAGE_EMPTY", "Cannot load flat binary: the file is empty");
  }
  const size = BigInt(bytes.length);
  if (loadAddr + size > U64_LIMIT) {
    throw new ImageError(
      "IMAGE_BAD_SEGMENT",
      `Cannot load flat binary: ${size} bytes at ${hex(loadAddr)} run past the end of the 64-bit address space`,
    );
  }
  return {
    format: "flat",
    arch: undefined,
    bits: undefined,
    entry,
    segments: [{ label: "flat binary", addr: loadAddr, data: bytes, memSize: size }],
  };
}

/** Total bytes the image occupies in memory (Σ memSize). */
export function imageMemSize(image: GuestImage): bigint {
  return image.segments.reduce((sum, s) => sum + s.memSize, 0n);
}

/** `0x` + lower-case hex, for addresses in messages. */
export function hex(value: bigint | number): string {
  return `0x${value.toString(16)}`;
}

function checkU64(value: bigint, what: string): void {
  if (value < 0n || value >= U64_LIMIT) {
    throw new RangeError(`${what} must be a 64-bit unsigned address, got ${value}`);
  }
}
