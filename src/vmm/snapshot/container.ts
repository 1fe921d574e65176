/**
 * The snapshot container: the fixed header and the typed, length-prefixed, checksummed
 * section frames. What a section *means* is format.ts's business; this file only frames,
 * checksums and bounds. The byte layout is documented at the top of format.ts.
 */
import { crc32c } from "./crc32c.js";
import { boundedLength, concatBytes, Reader, Writer } from "./bytes.js";
import { SnapshotFormatError } from "./errors.js";

/** "RGVSNAP\0": identifies a regvisor snapshot. */
export const SNAPSHOT_MAGIC = new Uint8Array([0x52, 0x47, 0x56, 0x53, 0x4e, 0x41, 0x50, 0x00]);
/** Major version written and read; another major is refused. */
export const FORMAT_MAJOR = 1;
/** Minor version written; newer minors are read if they only add optional sections. */
export const FORMAT_MINOR = 0;
/** Header size in bytes (format 1.x). */
export const HEADER_BYTES = 40;
/** Section frame overhead: 16-byte frame header + 4-byte CRC32C trailer. */
export const FRAME_BYTES = 20;
/** Section flag: a reader that does not know the type may skip the section. */
export const SECTION_OPTIONAL = 0x1;
/** Header flag bits 0..15 must be understood by a reader; 16..31 are advisory. */
export const HEADER_REQUIRED_FLAGS_MASK = 0xffff;

/** Container-level limits (a subset of `SnapshotLimits`). */
export interface ContainerLimits {
  readonly maxTotalBytes: number;
  readonly maxSections: number;
}

/** Header fields, as decoded. */
export interface ContainerHeader {
  readonly major: number;
  readonly minor: number;
  readonly archCode: number;
  readonly backendCode: number;
  readonly flags: number;
  readonly sectionCount: number;
  readonly totalBytes: number;
}

/** One section frame: payload is a view into the decoded bytes. */
export interface RawSection {
  readonly index: number;
  readonly type: number;
  readonly flags: number;
  /** Offset of the frame (its type field) from the start of the snapshot. */
  readonly offset: number;
  readonly payload: Uint8Array;
}

/** A section to encode: payload given as chunks so large RAM is copied only once. */
export interface SectionOut {
  readonly type: number;
  readonly flags: number;
  readonly payload: readonly Uint8Array[];
}

/** Header fields an encoder chooses. */
export interface HeaderOut {
  readonly archCode: number;
  readonly backendCode: number;
  readonly flags: number;
  readonly minor?: number;
}

function checkMagic(bytes: Uint8Array): void {
  const n = Math.min(bytes.length, SNAPSHOT_MAGIC.length);
  for (let i = 0; i < n; i++) {
    if (bytes[i] !== SNAPSHOT_MAGIC[i]) {
      throw new SnapshotFormatError(
        "SNAPSHOT_BAD_MAGIC",
        'the data does not start with "RGVSNAP\\0"',
        {
          offset: i,
        },
      );
    }
  }
}

/**
 * Decodes and checks the header: magic, major version, CRC, declared length, section count.
 * @throws {SnapshotFormatError} on any violation.
 */
export function decodeHeader(bytes: Uint8Array, limits: ContainerLimits): ContainerHeader {
  checkMagic(bytes);
  if (bytes.length < 10) throw truncatedHeader(bytes.length);
  const r = new Reader(bytes, SNAPSHOT_MAGIC.length, bytes.length, "SNAPSHOT_TRUNCATED");
  // The major version is read before the CRC: another major may lay its header out
  // differently, so its checksum position means nothing to this reader.
  const major = r.u16("header major version");
  if (major !== FORMAT_MAJOR) {
    throw r.fail(
      "SNAPSHOT_VERSION",
      `format version ${major}.x is not readable by this version (reads ${FORMAT_MAJOR}.x)`,
      8,
    );
  }
  if (bytes.length < HEADER_BYTES) throw truncatedHeader(bytes.length);
  const minor = r.u16("header minor version");
  const archCode = r.u8("header arch");
  const backendCode = r.u8("header backend");
  const reserved0 = r.u16("header reserved");
  const flags = r.u32("header flags");
  const sectionCount = r.u32("header section count");
  const total = r.u64("header total length");
  const reserved1 = r.u32("header reserved");
  const stored = r.u32("header CRC32C");
  const computed = crc32c(bytes.subarray(0, HEADER_BYTES - 4));
  if (stored !== computed) {
    throw crcError(r, "header", stored, computed, HEADER_BYTES - 4);
  }
  if (reserved0 !== 0 || reserved1 !== 0) {
    throw r.fail("SNAPSHOT_MALFORMED", "reserved header bytes are not zero", 14);
  }
  const unknownFlags = flags & HEADER_REQUIRED_FLAGS_MASK;
  if (unknownFlags !== 0) {
    const code = minor > FORMAT_MINOR ? "SNAPSHOT_VERSION" : "SNAPSHOT_MALFORMED";
    throw r.fail(
      code,
      `header flags 0x${unknownFlags.toString(16)} must be understood but are not defined in ${FORMAT_MAJOR}.${FORMAT_MINOR}`,
      16,
    );
  }
  const totalBytes = boundedLength(r, total, limits.maxTotalBytes, "declared snapshot length", 24);
  if (totalBytes < HEADER_BYTES) {
    throw r.fail(
      "SNAPSHOT_MALFORMED",
      `declared length ${totalBytes} is shorter than the header`,
      24,
    );
  }
  if (totalBytes > bytes.length) {
    throw r.fail(
      "SNAPSHOT_TRUNCATED",
      `the header declares ${totalBytes} bytes but only ${bytes.length} are present`,
      bytes.length,
    );
  }
  if (totalBytes < bytes.length) {
    throw r.fail(
      "SNAPSHOT_MALFORMED",
      `${bytes.length - totalBytes} bytes follow the declared end`,
      totalBytes,
    );
  }
  if (sectionCount > limits.maxSections) {
    throw r.fail(
      "SNAPSHOT_LIMIT",
      `section count ${sectionCount} exceeds the limit of ${limits.maxSections}`,
      20,
    );
  }
  return { major, minor, archCode, backendCode, flags, sectionCount, totalBytes };
}

function truncatedHeader(length: number): SnapshotFormatError {
  return new SnapshotFormatError(
    "SNAPSHOT_TRUNCATED",
    `the data ends after ${length} bytes, inside the ${HEADER_BYTES}-byte header`,
    { offset: length },
  );
}

function crcError(
  r: Reader,
  what: string,
  stored: number,
  computed: number,
  at: number,
): SnapshotFormatError {
  const hex = (v: number): string => "0x" + v.toString(16).padStart(8, "0");
  return r.fail(
    "SNAPSHOT_CRC",
    `${what} CRC32C mismatch (stored ${hex(stored)}, computed ${hex(computed)})`,
    at,
  );
}

/**
 * Splits the bytes after the header into section frames, checking each CRC.
 * @throws {SnapshotFormatError} on any violation.
 */
export function decodeSections(
  bytes: Uint8Array,
  header: ContainerHeader,
  maxSectionBytes: number,
): RawSection[] {
  const out: RawSection[] = [];
  let pos = HEADER_BYTES;
  for (let index = 0; index < header.sectionCount; index++) {
    // The header's total length matched the input, so running past it means the section
    // table itself is inconsistent, not that the file was cut short.
    const r = new Reader(bytes, pos, header.totalBytes, "SNAPSHOT_MALFORMED", index);
    const type = r.u32("section type");
    const flags = r.u32("section flags");
    const length = boundedLength(
      r,
      r.u64("section length"),
      maxSectionBytes,
      "section length",
      pos + 8,
    );
    const payload = r.view8(length, "section payload");
    const stored = r.u32("section CRC32C");
    const computed = crc32c(bytes.subarray(pos, pos + 16 + length));
    if (stored !== computed) throw crcError(r, "section", stored, computed, pos + 16 + length);
    if ((flags & ~SECTION_OPTIONAL) !== 0) {
      throw r.fail(
        "SNAPSHOT_MALFORMED",
        `section flags 0x${flags.toString(16)} has undefined bits`,
        pos + 4,
      );
    }
    out.push({ index, type, flags, offset: pos, payload });
    pos = r.pos;
  }
  if (pos !== header.totalBytes) {
    throw new SnapshotFormatError(
      "SNAPSHOT_MALFORMED",
      `${header.totalBytes - pos} bytes follow the last of ${header.sectionCount} sections`,
      { offset: pos },
    );
  }
  return out;
}

/**
 * One section frame as chunks (frame header, the payload chunks as given, CRC trailer), so a
 * stream writer sends large payloads without copying them (the migration stream uses this).
 */
export function encodeFrame(s: SectionOut): Uint8Array[] {
  let length = 0;
  for (const p of s.payload) length += p.length;
  const head = concatBytes(new Writer().u32(s.type).u32(s.flags).u64(BigInt(length)).parts());
  let crc = crc32c(head);
  for (const p of s.payload) crc = crc32c(p, crc);
  return [head, ...s.payload, concatBytes(new Writer().u32(crc).parts())];
}

/** Encodes header + sections into one array (one copy of every payload chunk). */
export function encodeContainer(header: HeaderOut, sections: readonly SectionOut[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = HEADER_BYTES;
  for (const s of sections) {
    const frame = encodeFrame(s);
    parts.push(...frame);
    for (const p of frame) total += p.length;
  }
  const h = new Writer()
    .bytes(SNAPSHOT_MAGIC)
    .u16(FORMAT_MAJOR)
    .u16(header.minor ?? FORMAT_MINOR)
    .u8(header.archCode)
    .u8(header.backendCode)
    .u16(0)
    .u32(header.flags)
    .u32(sections.length)
    .u64(BigInt(total))
    .u32(0);
  const head = concatBytes(h.parts());
  const crc = concatBytes(new Writer().u32(crc32c(head)).parts());
  return concatBytes([head, crc, ...parts]);
}
