/**
 * Where guest console output goes, with backpressure (issue 11 point 3): `write()` returns false
 * when the host side is full, and the machine then keeps the vCPU that produced the output
 * parked until `drained()` resolves — the guest waits, as it would on a 16550 whose FIFO is
 * full, and the process holds at most one write's worth of queued output per vCPU.
 *
 * A reader that goes away (EPIPE on a pipe, a closed socket) ends the run through `onClosed`
 * with a one-line reason instead of an unhandled 'error' event and its stack trace.
 */
import type { Writable } from "node:stream";

/** Guest output with backpressure. */
export interface ConsoleSink {
  /** Hands over guest bytes; false when the host side is full (await `drained()`). */
  write(bytes: Uint8Array): boolean;
  /** Resolves when the host side can take more, or once the sink is closed. */
  drained(): Promise<void>;
  /**
   * Registers the listener told (once) why output can no longer be delivered: a one-line reason
   * and the errno name where there is one ("EPIPE", "ENOSPC").
   */
  onClosed(listener: (reason: string, errnoName?: string) => void): void;
}

/** A sink that always accepts (tests, captured `--json` output). */
export function callbackSink(write: (bytes: Uint8Array) => void): ConsoleSink {
  return {
    write(bytes) {
      write(bytes);
      return true;
    },
    drained: () => Promise.resolve(),
    onClosed: () => undefined,
  };
}

/** Why a stream error ended the output, in one line. */
function closedReason(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === "EPIPE") return "the reader of the guest console went away (EPIPE)";
  const message = error instanceof Error ? error.message : String(error);
  return `cannot write the guest console: ${message.split("\n")[0] ?? ""}`;
}

/** A sink over a Node writable stream (process.stdout): its `write()` result is the signal. */
export function streamSink(stream: Writable): ConsoleSink {
  let closed: { reason: string; code: string | undefined } | undefined;
  const listeners: ((reason: string, errnoName?: string) => void)[] = [];
  const close = (reason: string, code: string | undefined): void => {
    if (closed !== undefined) return;
    closed = { reason, code };
    for (const listener of listeners) listener(reason, code);
  };
  stream.on("error", (error: unknown) => {
    const code = (error as { code?: unknown } | null)?.code;
    close(closedReason(error), typeof code === "string" ? code : undefined);
  });
  return {
    write(bytes) {
      if (closed !== undefined) return true;
      return stream.write(bytes);
    },
    drained() {
      if (closed !== undefined || !stream.writableNeedDrain) return Promise.resolve();
      return new Promise((resolve) => {
        const done = (): void => {
          stream.off("drain", done);
          stream.off("close", done);
          stream.off("error", done);
          resolve();
        };
        stream.on("drain", done);
        stream.on("close", done);
        stream.on("error", done);
      });
    },
    onClosed(listener) {
      if (closed !== undefined) listener(closed.reason, closed.code);
      else listeners.push(listener);
    },
  };
}
