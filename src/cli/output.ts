/**
 * The CLI's standard output, written synchronously so a failed write stops the command at once.
 *
 * `process.stdout` reports a write error (EPIPE when the reader of a pipe went away, ENOSPC on
 * `>/dev/full`) later, as an 'error' event: with no listener that is an "Unhandled 'error'
 * event" crash with a stack trace, and meanwhile a guest keeps running for a reader that is
 * gone. Here every write is `fs.writeSync` on fd 1, and a failure throws `OutputError`, which
 * unwinds the run loop (closing the VM) and becomes one line on stderr and a documented status.
 */
import { writeSync } from "node:fs";
import { RegvisorError } from "../errors.js";

/** Exit status when stdout's reader is gone (EPIPE): what a process killed by SIGPIPE reports. */
export const STATUS_STDOUT_CLOSED = 141;
/** Exit status when stdout cannot be written otherwise (ENOSPC, EIO…): EX_IOERR (sysexits.h). */
export const STATUS_STDOUT_FAILED = 74;

/** Standard output could not be written; `errnoName` says why. */
export class OutputError extends RegvisorError {
  /** The errno name, e.g. `"EPIPE"`. */
  readonly errnoName: string;

  constructor(errnoName: string, options?: ErrorOptions) {
    const why =
      errnoName === "EPIPE"
        ? "its reader closed the pipe (EPIPE)"
        : errnoName === "ENOSPC"
          ? "no space left on the device (ENOSPC)"
          : `the write failed with ${errnoName}`;
    super(
      errnoName === "EPIPE" ? "STDOUT_CLOSED" : "STDOUT_FAILED",
      `Stopped: cannot write to stdout, ${why}`,
      options,
    );
    this.errnoName = errnoName;
  }

  /** The exit status for this error (see the README's status table). */
  get status(): number {
    return this.errnoName === "EPIPE" ? STATUS_STDOUT_CLOSED : STATUS_STDOUT_FAILED;
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
const encoder = new TextEncoder();

/**
 * Writes all of `data` to `fd`, waiting out EAGAIN (an fd inherited in non-blocking mode).
 * @throws {OutputError} when the write fails.
 */
export function writeAllSync(fd: number, data: Uint8Array | string): void {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  let at = 0;
  while (at < bytes.length) {
    try {
      at += writeSync(fd, bytes, at, bytes.length - at);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === "EAGAIN") {
        Atomics.wait(sleeper, 0, 0, 1); // the reader is slow, not gone: wait 1 ms and retry
        continue;
      }
      throw new OutputError(typeof code === "string" ? code : "EIO", { cause: error });
    }
  }
}
