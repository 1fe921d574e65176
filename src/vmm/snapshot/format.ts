/**
 * The regvisor snapshot format, version 1.0 (docs/DESIGN.md §4). All integers little-endian.
 *
 * Header (40 bytes):
 *
 * | offset | size | field |
 * | --- | --- | --- |
 * | 0 | 8 | magic `"RGVSNAP\0"` (52 47 56 53 4e 41 50 00) |
 * | 8 | 2 | format major (1); another major is refused (SNAPSHOT_VERSION) |
 * | 10 | 2 | format minor (0); a newer minor is read if all its unknown sections are optional |
 * | 12 | 1 | arch: the KVM register-id arch byte (0x20 x86, 0x60 arm64, 0x80 riscv, ...) |
 * | 13 | 1 | backend: 1 kvm, 2 soft-inline, 3 soft-threaded |
 * | 14 | 2 | reserved, 0 |
 * | 16 | 4 | flags: bits 0..15 must be understood (none defined in 1.0), bits 16..31 advisory |
 * | 20 | 4 | section count |
 * | 24 | 8 | total length of the snapshot in bytes, header included |
 * | 32 | 4 | reserved, 0 |
 * | 36 | 4 | CRC32C of bytes 0..35 |
 *
 * Then `section count` frames, back to back, ending exactly at `total length`:
 *
 * | offset | size | field |
 * | --- | --- | --- |
 * | 0 | 4 | type (below) |
 * | 4 | 4 | flags: bit 0 OPTIONAL (a reader that does not know the type skips it); others 0 |
 * | 8 | 8 | payload length L |
 * | 16 | L | payload |
 * | 16+L | 4 | CRC32C of bytes 0..16+L-1 of the frame |
 *
 * Section payloads:
 *
 * | type | name | payload |
 * | --- | --- | --- |
 * | 1 | META | UTF-8 JSON object: `creator`, `time`, `guest` (strings), `exitCount` (number), anything else; at most one |
 * | 2 | VCPU_STATE | u32 vCPU index, u32 count, then count × (u64 id, regSize(id) bytes): every id the vCPU listed, in list order, known to the catalog or not; arch byte = header arch; no duplicates; one section per vCPU index |
 * | 3 | MEMORY | u32 slot, u32 memslot flags, u64 gpa, u64 length, u8 encoding, 7 reserved bytes (0); encoding 0 raw: `length` bytes; encoding 1 sparse: a bitmap of ceil(pages / 8) bytes (bit p of byte p/8 set = 4 KiB page p stored), then the stored pages in order (the last page may be partial); slots unique, ranges disjoint |
 * | 4 | DEVICE | u16 name length (1..255), UTF-8 name without control characters, then the device's opaque bytes to the end of the payload; names unique |
 *
 * Every length and count is checked against `SnapshotLimits` before it is used; the decoder
 * lets only `SnapshotFormatError` escape (and `TypeError` for a non-Uint8Array argument).
 * The writer emits META, VCPU_STATE by index, DEVICE, then MEMORY; readers accept any order.
 */
import { ARCH_CODES, ARCH_NAMES } from "../../abi/regid.js";
import { Reader } from "./bytes.js";
import {
  decodeHeader,
  decodeSections,
  encodeContainer,
  FORMAT_MINOR,
  HEADER_REQUIRED_FLAGS_MASK,
  SECTION_OPTIONAL,
  type RawSection,
  type SectionOut,
} from "./container.js";
import { SnapshotFormatError } from "./errors.js";
import { regionLength } from "./memory-pages.js";
import {
  BACKEND_CODES,
  DEFAULT_LIMITS,
  SECTION_TYPES,
  type DecodedSnapshot,
  type DeviceState,
  type MemoryRegion,
  type SectionInfo,
  type Snapshot,
  type SnapshotBackend,
  type SnapshotLimits,
  type SnapshotMeta,
  type VcpuState,
} from "./model.js";
import {
  decodeDevice,
  decodeMemory,
  decodeMeta,
  decodeVcpu,
  encodeDevice,
  encodeMemory,
  encodeMeta,
  encodeVcpu,
  type MemoryBudget,
} from "./sections.js";

export * from "./model.js";
export {
  FORMAT_MAJOR,
  FORMAT_MINOR,
  SNAPSHOT_MAGIC,
  HEADER_BYTES,
  FRAME_BYTES,
} from "./container.js";

/** Options of `decodeSnapshot()`. */
export interface DecodeOptions {
  /** Overrides of `DEFAULT_LIMITS` (tighter limits for untrusted input, looser for big guests). */
  readonly limits?: Partial<SnapshotLimits>;
}

/** Options of `encodeSnapshot()`. */
export interface EncodeOptions {
  readonly limits?: Partial<SnapshotLimits>;
  /** Store all-zero 4 KiB pages as one bitmap bit (default true). */
  readonly elideZeroPages?: boolean;
}

const TYPE_NAMES = new Map<number, string>(Object.entries(SECTION_TYPES).map(([k, v]) => [v, k]));

/** Name of a section type: `"VCPU_STATE"`, or `"UNKNOWN(<n>)"`. */
export function sectionTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `UNKNOWN(${type})`;
}

/**
 * Merges limit overrides into the defaults.
 * @throws {RangeError} if an override is not a positive safe integer.
 */
export function resolveLimits(overrides: Partial<SnapshotLimits> = {}): SnapshotLimits {
  const out: Record<string, number> = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(overrides)) {
    if (!(key in DEFAULT_LIMITS)) throw new TypeError(`Unknown snapshot limit "${key}"`);
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`Snapshot limit ${key} must be a non-negative safe integer`);
    }
    out[key] = value;
  }
  // Every key of DEFAULT_LIMITS is present and numeric, as checked above.
  return out as unknown as SnapshotLimits;
}

/** Checks the cross-section rules; returns the first violation as text. */
function crossSectionProblem(
  s: Pick<Snapshot, "vcpus" | "memory" | "devices">,
): string | undefined {
  const indices = new Set<number>();
  for (const v of s.vcpus) {
    if (indices.has(v.index)) return `vCPU ${v.index} has two VCPU_STATE sections`;
    indices.add(v.index);
  }
  const slots = new Set<number>();
  for (const m of s.memory) {
    if (slots.has(m.slot)) return `memory slot ${m.slot} appears twice`;
    slots.add(m.slot);
  }
  const byGpa = [...s.memory].sort((a, b) => (a.gpa < b.gpa ? -1 : a.gpa > b.gpa ? 1 : 0));
  for (let i = 1; i < byGpa.length; i++) {
    const prev = byGpa[i - 1];
    const cur = byGpa[i];
    if (
      prev !== undefined &&
      cur !== undefined &&
      prev.gpa + BigInt(regionLength(prev)) > cur.gpa
    ) {
      return `memory slots ${prev.slot} and ${cur.slot} overlap`;
    }
  }
  const names = new Set<string>();
  for (const d of s.devices) {
    if (names.has(d.name)) return `device "${d.name}" appears twice`;
    names.add(d.name);
  }
  return undefined;
}

/**
 * Encodes a snapshot.
 * @throws {TypeError} on a wrongly shaped input (non-Uint8Array values, non-JSON meta).
 * @throws {RangeError} on a value of the wrong size, a foreign-arch id, a duplicate, or a limit.
 */
export function encodeSnapshot(s: Snapshot, options: EncodeOptions = {}): Uint8Array {
  const limits = resolveLimits(options.limits);
  if (!ARCH_NAMES.includes(s.arch)) throw new TypeError(`Unknown arch "${s.arch}"`);
  const backendCode = BACKEND_CODES[s.backend] as number | undefined;
  if (backendCode === undefined) throw new TypeError(`Unknown backend "${s.backend}"`);
  if (
    !Number.isInteger(s.flags) ||
    s.flags < 0 ||
    s.flags > 0xffffffff ||
    (s.flags & HEADER_REQUIRED_FLAGS_MASK) !== 0
  ) {
    throw new RangeError(
      `Header flags 0x${s.flags.toString(16)}: only advisory bits 16..31 may be set`,
    );
  }
  const problem = crossSectionProblem(s);
  if (problem !== undefined) throw new RangeError(problem);
  const arch = ARCH_CODES[s.arch];
  const sections: SectionOut[] = [
    { type: SECTION_TYPES.META, flags: 0, payload: [encodeMeta(s.meta, limits)] },
  ];
  for (const v of [...s.vcpus].sort((a, b) => a.index - b.index)) {
    sections.push({
      type: SECTION_TYPES.VCPU_STATE,
      flags: 0,
      payload: [encodeVcpu(v, arch, limits)],
    });
  }
  for (const d of s.devices)
    sections.push({ type: SECTION_TYPES.DEVICE, flags: 0, payload: encodeDevice(d, limits) });
  let memoryBytes = 0;
  for (const m of s.memory) {
    memoryBytes += regionLength(m);
    if (memoryBytes > limits.maxMemoryBytes)
      throw new RangeError(`Guest memory exceeds the limit of ${limits.maxMemoryBytes} bytes`);
    sections.push({
      type: SECTION_TYPES.MEMORY,
      flags: 0,
      payload: encodeMemory(m, limits, options.elideZeroPages ?? true),
    });
  }
  if (sections.length > limits.maxSections)
    throw new RangeError(`${sections.length} sections exceed the limit of ${limits.maxSections}`);
  const out = encodeContainer({ archCode: arch, backendCode, flags: s.flags }, sections);
  if (out.length > limits.maxTotalBytes)
    throw new RangeError(
      `Snapshot of ${out.length} bytes exceeds the limit of ${limits.maxTotalBytes}`,
    );
  return out;
}

interface Collected {
  meta: SnapshotMeta | undefined;
  readonly vcpus: VcpuState[];
  readonly memory: MemoryRegion[];
  readonly devices: DeviceState[];
  readonly infos: SectionInfo[];
  readonly skipped: SectionInfo[];
  readonly budget: MemoryBudget;
}

function decodeOne(
  bytes: Uint8Array,
  raw: RawSection,
  minor: number,
  arch: number,
  limits: SnapshotLimits,
  acc: Collected,
): void {
  const start = raw.offset + 16;
  const r = new Reader(bytes, start, start + raw.payload.length, "SNAPSHOT_MALFORMED", raw.index);
  const info: SectionInfo = {
    index: raw.index,
    type: raw.type,
    typeName: sectionTypeName(raw.type),
    optional: (raw.flags & SECTION_OPTIONAL) !== 0,
    offset: raw.offset,
    length: raw.payload.length,
  };
  switch (raw.type) {
    case SECTION_TYPES.META:
      if (acc.meta !== undefined)
        throw r.fail("SNAPSHOT_MALFORMED", "a second META section", raw.offset);
      acc.meta = decodeMeta(r, limits);
      break;
    case SECTION_TYPES.VCPU_STATE:
      acc.vcpus.push(decodeVcpu(r, arch, limits));
      break;
    case SECTION_TYPES.MEMORY: {
      const { region, encoding } = decodeMemory(r, limits, acc.budget);
      acc.memory.push(region);
      acc.infos.push({ ...info, encoding });
      return;
    }
    case SECTION_TYPES.DEVICE:
      acc.devices.push(decodeDevice(r, limits));
      break;
    default:
      if (!info.optional) {
        const newer = minor > FORMAT_MINOR;
        throw r.fail(
          newer ? "SNAPSHOT_VERSION" : "SNAPSHOT_MALFORMED",
          newer
            ? `format 1.${minor} requires section type ${raw.type}, unknown to this 1.${FORMAT_MINOR} reader`
            : `unknown required section type ${raw.type}`,
          raw.offset,
        );
      }
      acc.skipped.push(info);
  }
  acc.infos.push(info);
}

/**
 * Decodes and fully validates a snapshot. Safe on untrusted bytes: every length is bounded
 * and only `SnapshotFormatError` escapes; the returned object owns copies of its bytes.
 * @throws {SnapshotFormatError} if the bytes are not a valid snapshot (see its `code`).
 * @throws {TypeError} if `bytes` is not a Uint8Array.
 */
export function decodeSnapshot(bytes: Uint8Array, options: DecodeOptions = {}): DecodedSnapshot {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("decodeSnapshot() needs a Uint8Array");
  const limits = resolveLimits(options.limits);
  const header = decodeHeader(bytes, limits);
  const arch = ARCH_NAMES.find((a) => ARCH_CODES[a] === header.archCode);
  if (arch === undefined) {
    throw new SnapshotFormatError(
      "SNAPSHOT_MALFORMED",
      `unknown arch byte 0x${header.archCode.toString(16)}`,
      { offset: 12 },
    );
  }
  const backends = Object.entries(BACKEND_CODES) as [SnapshotBackend, number][];
  const backend = backends.find(([, code]) => code === header.backendCode)?.[0];
  if (backend === undefined) {
    throw new SnapshotFormatError(
      "SNAPSHOT_MALFORMED",
      `unknown backend code ${header.backendCode}`,
      { offset: 13 },
    );
  }
  const acc: Collected = {
    meta: undefined,
    vcpus: [],
    memory: [],
    devices: [],
    infos: [],
    skipped: [],
    budget: { used: 0 },
  };
  for (const raw of decodeSections(bytes, header, limits.maxTotalBytes)) {
    decodeOne(bytes, raw, header.minor, header.archCode, limits, acc);
  }
  const problem = crossSectionProblem(acc);
  if (problem !== undefined) throw new SnapshotFormatError("SNAPSHOT_MALFORMED", problem);
  return {
    version: { major: header.major, minor: header.minor },
    arch,
    backend,
    flags: header.flags,
    meta: acc.meta ?? {},
    vcpus: acc.vcpus,
    memory: acc.memory,
    devices: acc.devices,
    totalBytes: header.totalBytes,
    sections: acc.infos,
    skipped: acc.skipped,
  };
}
