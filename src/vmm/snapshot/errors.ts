/**
 * Errors of the snapshot codec and of restore. Both carry stable codes (STYLE.md: a corrupt
 * stream or a refused restore is a `RegvisorError` subclass), the byte offset or register
 * concerned, and `toJSON()` so `regvisor inspect --json` and workers carry them whole.
 */
import { RegvisorError, type ErrorJson } from "../../errors.js";

/** Stable codes of `SnapshotFormatError`. */
export const SNAPSHOT_ERROR_CODES = [
  /** The bytes end before the header or the length the header declares. */
  "SNAPSHOT_TRUNCATED",
  /** The first 8 bytes are not the snapshot magic. */
  "SNAPSHOT_BAD_MAGIC",
  /** Another major version, or a newer minor that needs something this reader lacks. */
  "SNAPSHOT_VERSION",
  /** A header or section checksum does not match. */
  "SNAPSHOT_CRC",
  /** A length or count exceeds a decoder limit. */
  "SNAPSHOT_LIMIT",
  /** Checksums match but the content breaks a rule of the format. */
  "SNAPSHOT_MALFORMED",
] as const;

/** One of `SNAPSHOT_ERROR_CODES`. */
export type SnapshotErrorCode = (typeof SNAPSHOT_ERROR_CODES)[number];

/** Where in the stream a format error was found. */
export interface SnapshotErrorWhere {
  /** Byte offset from the start of the snapshot. */
  readonly offset?: number;
  /** Index of the section (0-based), when inside one. */
  readonly section?: number;
}

/** The only error `decodeSnapshot()` lets escape: the bytes are not a valid snapshot. */
export class SnapshotFormatError extends RegvisorError {
  declare readonly code: SnapshotErrorCode;
  readonly offset: number | undefined;
  readonly section: number | undefined;

  constructor(code: SnapshotErrorCode, detail: string, where: SnapshotErrorWhere = {}) {
    const at = [
      where.section === undefined ? "" : `section ${where.section}`,
      where.offset === undefined ? "" : `offset ${where.offset}`,
    ]
      .filter((s) => s !== "")
      .join(", ");
    super(code, `Cannot decode snapshot${at === "" ? "" : ` (${at})`}: ${detail}`);
    this.offset = where.offset;
    this.section = where.section;
  }

  override toJSON(): ErrorJson {
    return {
      ...super.toJSON(),
      ...(this.offset === undefined ? {} : { offset: this.offset }),
      ...(this.section === undefined ? {} : { section: this.section }),
    };
  }
}

/** Stable codes of `RestoreError`. */
export const RESTORE_ERROR_CODES = [
  /** The snapshot's arch differs from the destination vCPU's. */
  "RESTORE_ARCH",
  /** The snapshot's vCPU set does not match the destination vCPUs. */
  "RESTORE_VCPUS",
  /** Registers the destination lists are absent from the stream (onMissing: "error"). */
  "RESTORE_MISSING",
  /** The stream carries registers the destination does not list (onExtra: "error"). */
  "RESTORE_EXTRA",
  /** Same register, different size (e.g. RISC-V vector registers at another VLEN). */
  "RESTORE_SIZE_MISMATCH",
  /** A read-only register's value differs between stream and destination. */
  "RESTORE_VERIFY",
  /** Reading the destination's current values (for rollback) failed; nothing was written. */
  "RESTORE_READ",
  /** A write failed; everything already written was rolled back. */
  "RESTORE_WRITE",
  /** A write failed and so did part of the rollback: the destination is inconsistent. */
  "RESTORE_ROLLBACK",
  /** Whole-machine restore: the snapshot's machine kind, backend or memory layout does not fit. */
  "RESTORE_MACHINE",
] as const;

/** One of `RESTORE_ERROR_CODES`. */
export type RestoreErrorCode = (typeof RESTORE_ERROR_CODES)[number];

/** A register named in a restore report: id, catalog name and label. */
export interface RegRef {
  /** `0x` + 16 hex digits. */
  readonly id: string;
  /** Catalog name (`"core.ra"`), or `null` when the catalog does not know the id. */
  readonly name: string | null;
  /** Size in bytes implied by the id. */
  readonly size: number;
}

/** A register present on both sides at different sizes. */
export interface SizeMismatch {
  readonly stream: RegRef;
  readonly destination: RegRef;
}

/** Stream vs destination register lists, by name. */
export interface RegComparison {
  readonly matched: number;
  readonly missing: readonly RegRef[];
  readonly extra: readonly RegRef[];
  readonly sizeMismatched: readonly SizeMismatch[];
}

/** Structured details attached to a `RestoreError`. */
export interface RestoreErrorDetails {
  readonly vcpu?: number;
  readonly register?: RegRef;
  readonly phase?: string;
  readonly registers?: readonly RegRef[];
  readonly comparison?: RegComparison;
  readonly rollbackFailures?: readonly string[];
}

/** A restore was refused before writing, or failed and was rolled back (see `code`). */
export class RestoreError extends RegvisorError {
  declare readonly code: RestoreErrorCode;
  readonly details: RestoreErrorDetails;

  constructor(
    code: RestoreErrorCode,
    message: string,
    details: RestoreErrorDetails = {},
    options?: ErrorOptions,
  ) {
    super(code, message, options);
    this.details = details;
  }

  override toJSON(): ErrorJson {
    return { ...super.toJSON(), ...this.details };
  }
}
