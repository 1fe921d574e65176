/**
 * Every file regvisor reads (snapshots, guest images, and later initrds and disks) goes
 * through here: it must be a regular file of at most `maxBytes`, checked on the open file
 * descriptor before a byte is read (so `/dev/zero`, a FIFO or a directory is refused at once,
 * and a file swapped between the check and the read cannot slip through), then read whole —
 * or, for a guest image, held open (`openInputFile`) and read where its bytes go.
 * Failures are one `InputFileError` line naming the file, the state and the limit.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";
import { RegvisorError } from "../errors.js";
import { GUEST_FILE_HEAD_BYTES, type GuestFile } from "./image.js";

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
    super("INPUT_FILE", `Cannot read ${what} "${path}": ${why}`, options);
    this.path = path;
  }
}

const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ENOENT: "no such file",
  EISDIR: "it is a directory",
  EACCES: "permission denied",
  EPERM: "permission denied",
  ENOTDIR: "a component of the path is not a directory",
  ELOOP: "too many symbolic links",
  ENAMETOOLONG: "the path is too long",
};

function systemWhy(error: unknown): string {
  const code = error instanceof Error && "code" in error ? String(error.code) : "";
  const words = Object.hasOwn(ERRNO_TEXT, code) ? ERRNO_TEXT[code] : undefined;
  if (words !== undefined) return `${words} (${code})`;
  return code === "" ? String(error) : code;
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
      // A directory opens fine with O_RDONLY; say what read() would have said (EISDIR).
      const why = st.isDirectory()
        ? "it is a directory (EISDIR)"
        : `it is ${kindOf(st)}, not a regular file`;
      throw new InputFileError(path, o.what, why);
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

/**
 * A checked file held open: its size and first bytes at once, the rest read at offsets where
 * they go (a guest image, straight into guest RAM). Reads are positioned (pread), so they see the
 * file as checked however often they run; a file that shrank since is refused.
 */
export class OpenInputFile implements GuestFile, Disposable {
  readonly length: number;
  readonly head: Uint8Array;
  readonly #path: string;
  readonly #what: string;
  #fd: number | undefined;

  /** @throws {InputFileError} naming the file and why (nothing stays open). */
  constructor(path: string, options: InputFileOptions) {
    const { fd, size } = openChecked(path, options);
    this.#fd = fd;
    this.#path = path;
    this.#what = options.what;
    this.length = size;
    try {
      this.head = new Uint8Array(Math.min(size, GUEST_FILE_HEAD_BYTES));
      this.readInto(this.head, 0);
    } catch (error) {
      this.close();
      throw error;
    }
  }

  /**
   * Fills `target` with the file's bytes from `offset`.
   * @throws {InputFileError} when the file ends first, cannot be read, or is closed.
   */
  readInto(target: Uint8Array, offset: number): void {
    const fd = this.#fd;
    if (fd === undefined) throw new InputFileError(this.#path, this.#what, "it is closed");
    let at = 0;
    try {
      while (at < target.length) {
        const n = readSync(fd, target, at, target.length - at, offset + at);
        if (n === 0) break;
        at += n;
      }
    } catch (error) {
      throw new InputFileError(this.#path, this.#what, systemWhy(error), { cause: error });
    }
    if (at < target.length) {
      const now = fstatSync(fd).size;
      const why = `it shrank to ${now} bytes while in use (it was ${this.length})`;
      throw new InputFileError(this.#path, this.#what, why);
    }
  }

  /** The whole file. @throws {InputFileError} as `readInto`. */
  readAll(): Uint8Array {
    const bytes = new Uint8Array(this.length);
    this.readInto(bytes, 0);
    return bytes;
  }

  /** Closes the descriptor (idempotent). */
  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
