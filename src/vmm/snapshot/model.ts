/**
 * The in-memory snapshot: what `decodeSnapshot()` returns and `encodeSnapshot()` takes, plus
 * the codes and limits of the format (layout documented in format.ts).
 */
import type { ArchName, RegId } from "../../abi/regid.js";

/** One register value: exactly `regSize(id)` little-endian bytes. */
export interface RegValue {
  readonly id: RegId;
  readonly value: Uint8Array;
}

/** One vCPU's registers in stream order: every id its `regList()` gave, known or not. */
export interface VcpuState {
  /** vCPU index within the VM. */
  readonly index: number;
  readonly regs: readonly RegValue[];
}

/** One memslot's guest RAM. */
export interface MemoryRegion {
  /** Memslot number (KVM `kvm_userspace_memory_region.slot`). */
  readonly slot: number;
  /** Memslot flags as given to the backend (e.g. KVM_MEM_READONLY = 2), carried as is. */
  readonly flags: number;
  /** Guest-physical address of the first byte. */
  readonly gpa: bigint;
  /**
   * The region's bytes; its length is the region length. A decoded sparse region builds
   * them on first access: read its length and pages through memory-pages.ts instead, which
   * cost what the file holds.
   */
  readonly data: Uint8Array;
  /** Decoded sparse regions: the pages as stored in the file, not expanded. */
  readonly sparse?: SparsePages;
}

/** A sparse MEMORY section's pages as stored: which pages are there, and their bytes. */
export interface SparsePages {
  /** Region length in bytes. */
  readonly length: number;
  /** Bit p (LSB first) set = page p is stored; pages not stored are all zero. */
  readonly bitmap: Uint8Array;
  /** The stored pages, in page order, back to back (the last page may be short). */
  readonly stored: Uint8Array;
}

/** Opaque state of one device or VMM component (e.g. `"uart0"`, `"vmm.exit"`). */
export interface DeviceState {
  /** Unique name: 1..255 UTF-8 bytes, no control characters. */
  readonly name: string;
  readonly data: Uint8Array;
}

/** Free-form JSON metadata; the listed fields are type-checked when present. */
export interface SnapshotMeta {
  /** Program that wrote the snapshot, e.g. `"regvisor 0.1.0"`. */
  readonly creator?: string;
  /** ISO 8601 time of the snapshot. */
  readonly time?: string;
  /** Guest program name. */
  readonly guest?: string;
  /** Exits to the VMM handled before the snapshot. */
  readonly exitCount?: number;
  readonly [key: string]: unknown;
}

/** Backend that produced the snapshot (informative: restore works across backends). */
export type SnapshotBackend = "kvm" | "soft-inline" | "soft-threaded";

/** Header backend byte for each backend. */
export const BACKEND_CODES: Readonly<Record<SnapshotBackend, number>> = {
  kvm: 1,
  "soft-inline": 2,
  "soft-threaded": 3,
};

/** Section type numbers (u32 in each frame). */
export const SECTION_TYPES = {
  META: 1,
  VCPU_STATE: 2,
  MEMORY: 3,
  DEVICE: 4,
} as const;

/** Name of a known section type. */
export type SectionTypeName = keyof typeof SECTION_TYPES;

/** A complete snapshot, as encoded and as decoded. */
export interface Snapshot {
  readonly arch: ArchName;
  readonly backend: SnapshotBackend;
  /** Header flags: bits 16..31 advisory (bits 0..15 must be zero in format 1.0). */
  readonly flags: number;
  readonly meta: SnapshotMeta;
  readonly vcpus: readonly VcpuState[];
  readonly memory: readonly MemoryRegion[];
  readonly devices: readonly DeviceState[];
}

/** Where a section sat in the stream, for `inspect` and error reports. */
export interface SectionInfo {
  readonly index: number;
  readonly type: number;
  /** Known type name, or `"UNKNOWN(<n>)"`. */
  readonly typeName: string;
  readonly optional: boolean;
  /** Offset of the frame from the start of the snapshot. */
  readonly offset: number;
  /** Payload length in bytes (the frame adds 20). */
  readonly length: number;
  /** MEMORY sections: how the pages were stored. */
  readonly encoding?: "raw" | "sparse";
}

/** What `decodeSnapshot()` returns: the snapshot plus where its parts were. */
export interface DecodedSnapshot extends Snapshot {
  readonly version: { readonly major: number; readonly minor: number };
  readonly totalBytes: number;
  readonly sections: readonly SectionInfo[];
  /** Optional sections of unknown type, skipped. */
  readonly skipped: readonly SectionInfo[];
}

/**
 * Decoder (and encoder) limits on every length in the format. Claims above a limit are
 * refused before any allocation. Defaults: `DEFAULT_LIMITS`.
 */
export interface SnapshotLimits {
  /** Whole snapshot, header included. */
  readonly maxTotalBytes: number;
  readonly maxSections: number;
  readonly maxRegsPerVcpu: number;
  /** VCPU_STATE payload bytes. */
  readonly maxVcpuBytes: number;
  /** Guest bytes of one MEMORY region (after zero pages are restored). */
  readonly maxRegionBytes: number;
  /** Guest bytes of all MEMORY regions together. */
  readonly maxMemoryBytes: number;
  readonly maxDeviceBytes: number;
  readonly maxDeviceNameBytes: number;
  readonly maxMetaBytes: number;
}

const MiB = 1 << 20;
const GiB = 1024 * MiB;

/**
 * Default limits. Sources: KVM_MAX_VCPUS is 4096 on x86 (so ≤ 8192 sections leaves room for
 * memslots and devices); Node 20's largest typed array is 4 GiB (buffer.constants.MAX_LENGTH);
 * the largest register list seen (arm64 with SVE) is under 1000 ids.
 */
export const DEFAULT_LIMITS: SnapshotLimits = {
  maxTotalBytes: 4 * GiB,
  maxSections: 8192,
  maxRegsPerVcpu: 65536,
  maxVcpuBytes: 64 * MiB,
  maxRegionBytes: 4 * GiB,
  maxMemoryBytes: 8 * GiB,
  maxDeviceBytes: 64 * MiB,
  maxDeviceNameBytes: 255,
  maxMetaBytes: MiB,
};

/** Page granule of the zero-page elision in MEMORY sections. */
export const SNAPSHOT_PAGE_BYTES = 4096;
