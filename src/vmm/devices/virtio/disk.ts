/**
 * Block backends for virtio-blk: the `BlockBackend` interface and a raw image file.
 *
 * A raw disk is the file's bytes, sector n at offset 512·n. Reads and writes go straight to the
 * file (positioned `readSync`/`writeSync`, no cache of our own), and `flush()` is `fsync` of the
 * file, so once a guest's flush request completes its data is on the host's disk. A read-only
 * disk is opened O_RDONLY: nothing in this process can change the file.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from "node:fs";
import { RegvisorError } from "../../../errors.js";

/** Storage behind a virtio-blk device. Offsets and lengths are bytes. */
export interface BlockBackend {
  /** Size in bytes. */
  readonly size: number;
  readonly readOnly: boolean;
  /** Fills `into` from `offset`. @throws on an I/O error or a short read. */
  read(offset: number, into: Uint8Array): void;
  /** Writes `from` at `offset`. @throws on an I/O error or when read-only. */
  write(offset: number, from: Uint8Array): void;
  /** Makes every completed write durable. @throws on an I/O error. */
  flush(): void;
  close(): void;
}

/** A disk image could not be opened or used. */
export class DiskError extends RegvisorError {
  /** The image's path. */
  readonly path: string;

  constructor(
    code: "DISK_OPEN" | "DISK_IO",
    path: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(code, message, options);
    this.path = path;
  }

  override toJSON(): ReturnType<RegvisorError["toJSON"]> {
    return { ...super.toJSON(), path: this.path };
  }
}

function errnoOf(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : String(e);
}

/** A raw image file as a `BlockBackend`. */
export class RawDisk implements BlockBackend, Disposable {
  private fd: number | undefined;

  private constructor(
    readonly path: string,
    fd: number,
    readonly size: number,
    readonly readOnly: boolean,
  ) {
    this.fd = fd;
  }

  /**
   * Opens `path` as a raw disk image.
   * @throws DiskError (DISK_OPEN) when the path is missing, unreadable, not a regular file or
   *   block device, or not writable without `readOnly`.
   */
  static open(path: string, options: { readOnly: boolean }): RawDisk {
    let fd: number;
    try {
      fd = openSync(path, options.readOnly ? "r" : "r+");
    } catch (e) {
      const fix = options.readOnly ? "" : " (add ',readonly' to use it read-only)";
      throw new DiskError(
        "DISK_OPEN",
        path,
        `Cannot open disk image "${path}" ${options.readOnly ? "read-only" : "read-write"}: ${errnoOf(e)}${errnoOf(e) === "EACCES" || errnoOf(e) === "EROFS" ? fix : ""}`,
        { cause: e },
      );
    }
    const stat = fstatSync(fd);
    if (!stat.isFile() && !stat.isBlockDevice()) {
      closeSync(fd);
      throw new DiskError(
        "DISK_OPEN",
        path,
        `Cannot use "${path}" as a disk image: it is not a regular file or block device`,
      );
    }
    return new RawDisk(path, fd, stat.size, options.readOnly);
  }

  private handle(): number {
    if (this.fd === undefined)
      throw new DiskError("DISK_IO", this.path, `Disk "${this.path}" is closed`);
    return this.fd;
  }

  /** Reads `into.length` bytes at `offset`. @throws DiskError on a short read. */
  read(offset: number, into: Uint8Array): void {
    const fd = this.handle();
    let done = 0;
    while (done < into.length) {
      const n = readSync(fd, into, done, into.length - done, offset + done);
      if (n === 0)
        throw new DiskError(
          "DISK_IO",
          this.path,
          `Short read of "${this.path}" at ${offset + done}: the file shrank`,
        );
      done += n;
    }
  }

  /** Writes `from` at `offset`. @throws DiskError when read-only. */
  write(offset: number, from: Uint8Array): void {
    if (this.readOnly)
      throw new DiskError("DISK_IO", this.path, `Disk "${this.path}" is read-only`);
    const fd = this.handle();
    let done = 0;
    while (done < from.length) done += writeSync(fd, from, done, from.length - done, offset + done);
  }

  /** fsync(2) of the image. */
  flush(): void {
    if (!this.readOnly) fsyncSync(this.handle());
  }

  /** Closes the file (idempotent). */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Opens a raw disk image (see `RawDisk.open`). */
export function openRawDisk(path: string, options: { readOnly: boolean }): RawDisk {
  return RawDisk.open(path, options);
}
