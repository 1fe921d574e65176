/**
 * Every file regvisor reads (snapshots, guest images, and later initrds and disks) goes
 * through here: it must be a regular file of at most `maxBytes`, checked on the open file
 * descriptor before a byte is read (so `/dev/zero`, a FIFO or a directory is refused at once,
 * and a file swapped between the check and the read cannot slip through), then read whole.
 * Failures are one `InputFileError` line naming the file, the state and the limit.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";
import { RegvisorError } from "../errors.js";

/** What is being read and how large it may be. */
export interface InputFileOptions {
  /** Shown in errors: "snapshot", "guest image", "disk image", … */
  readonly what: string;
  /** Largest size accepted, in bytes. */
  readonly maxBytes: number;
}

/** A file regvisor was asked to read cannot be used. */
export class InputFileError extends RegvisorError {
  readonly path: string;
  constructor(path: string, what: string, why: string, options?: ErrorOptions) {
    super("INPUT_FILE", `Cannot read ${what} ${path}: ${why}`, options);
    this.path = path;
  }
}

const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ENOENT: "no such file",
  EISDIR: "it is a directory, not a file",
  EACCES: "permission denied",
  EPERM: "permission denied",
  ENOTDIR: "a component of the path is not a directory",
  ELOOP: "too many symbolic links",
  ENAMETOOLONG: "the path is too long",
};

function systemWhy(error: unknown): string {
  const code = error instanceof Error && "code" in error ? String(error.code) : "";
  return ERRNO_TEXT[code] ?? (code === "" ? String(error) : code);
}

/** The kind of a non-regular file, for the message. */
function kindOf(st: Stats): string {
  if (st.isDirectory()) return "a directory";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isFIFO()) return "a pipe";
  if (st.isSocket()) return "a socket";
  return "not a regular file";
}

const MiB = 1024 * 1024;
const sizeText = (n: number): string =>
  n >= MiB && n % MiB === 0 ? `${n / MiB} MiB` : `${n} bytes`;

function openChecked(path: string, o: InputFileOptions): { fd: number; size: number } {
  if (!Number.isSafeInteger(o.maxBytes) || o.maxBytes < 0)
    throw new RangeError(`maxBytes must be a non-negative integer, got ${o.maxBytes}`);
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw new InputFileError(path, o.what, systemWhy(error), { cause: error });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      throw new InputFileError(path, o.what, `it is ${kindOf(st)}, not a regular file`);
    }
    if (st.size > o.maxBytes) {
      throw new InputFileError(
        path,
        o.what,
        `it is ${st.size} bytes, more than the limit of ${sizeText(o.maxBytes)}`,
      );
    }
    return { fd, size: st.size };
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/**
 * Checks a file that is opened, not read, by its user (a disk image): a regular file within
 * `maxBytes`. Returns its size.
 * @throws {InputFileError} naming the file and why.
 */
export function statInputFile(path: string, options: InputFileOptions): number {
  const { fd, size } = openChecked(path, options);
  closeSync(fd);
  return size;
}

/**
 * Reads a whole file after checking it (regular, at most `maxBytes`), through one descriptor.
 * @throws {InputFileError} naming the file and why (nothing is read from a refused file).
 */
export function readInputFile(path: string, options: InputFileOptions): Uint8Array {
  const { fd, size } = openChecked(path, options);
  try {
    const out = new Uint8Array(size);
    let at = 0;
    while (at < size) {
      const n = readSync(fd, out, at, size - at, null);
      if (n === 0) break;
      at += n;
    }
    // A file that grew since fstat is refused, not read on and on.
    if (at === size && readSync(fd, new Uint8Array(1), 0, 1, null) !== 0)
      throw new InputFileError(path, options.what, "it grew while being read");
    return at === size ? out : out.subarray(0, at);
  } catch (error) {
    if (error instanceof InputFileError) throw error;
    throw new InputFileError(path, options.what, systemWhy(error), { cause: error });
  } finally {
    closeSync(fd);
  }
}
