/**
 * Console input for `regvisor run`: the run loop is synchronous (it never returns to Node's
 * event loop while the guest runs), so stdin is polled without blocking, only when the guest
 * asks for input (SBI getchar / DBCN read, a read of the 16550's data or line status).
 *
 * A pipe or terminal on fd 0 is reopened through /proc/self/fd/0 with O_NONBLOCK: that creates a
 * new open file description (proc(5), "/proc/pid/fd"), so the flag does not leak to the shell or
 * to other processes sharing the original one. A regular file is read as is (it never blocks). A
 * socket is made non-blocking by libuv when `process.stdin` is created. Where none of this works
 * (a closed fd) the guest sees no input.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import type { InputSource } from "./runner-types.js";

/** A source with nothing to read (EOF at once). */
export function noInput(): InputSource {
  return { read: () => null };
}

/** A source over fixed bytes (tests, scripted input). */
export function bytesInput(bytes: Uint8Array): InputSource {
  let at = 0;
  return {
    read(max) {
      if (at >= bytes.length) return null;
      const chunk = bytes.subarray(at, at + max);
      at += chunk.length;
      return chunk;
    },
  };
}

/** Errors that mean "no data yet" on a non-blocking fd. */
const WOULD_BLOCK = new Set(["EAGAIN", "EWOULDBLOCK"]);

/** The process's stdin, opened lazily on the first read. Close it when the run ends. */
export function stdinInput(): InputSource & Disposable {
  let fd: number | undefined;
  let owned = false;
  let eof = false;
  const open = (): number | undefined => {
    try {
      const stat = fstatSync(0);
      if (stat.isFile()) return 0;
      if (stat.isSocket()) {
        // A socket (Node's child_process "pipe") cannot be reopened through /proc (ENXIO).
        // Creating process.stdin has libuv put it in non-blocking mode (uv_pipe_open); paused,
        // it never reads on its own, so readSync() below sees data, EAGAIN or EOF.
        process.stdin.pause();
        return 0;
      }
      const flags = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;
      const reopened = openSync("/proc/self/fd/0", flags);
      owned = true;
      return reopened;
    } catch {
      return undefined;
    }
  };
  return {
    read(max) {
      if (eof) return null;
      fd ??= open();
      if (fd === undefined) {
        eof = true;
        return null;
      }
      const buffer = new Uint8Array(max);
      try {
        const n = readSync(fd, buffer, 0, max, null);
        if (n === 0) {
          eof = true;
          return null;
        }
        return buffer.subarray(0, n);
      } catch (error) {
        if (error instanceof Error && "code" in error && typeof error.code === "string") {
          if (WOULD_BLOCK.has(error.code)) return new Uint8Array(0);
        }
        eof = true;
        return null;
      }
    },
    [Symbol.dispose]() {
      if (owned && fd !== undefined) closeSync(fd);
      fd = undefined;
      owned = false;
    },
  };
}
