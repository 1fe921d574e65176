/**
 * Where guest console output goes, with backpressure (issue 11 point 3): `write()` returns false
 * when the host side is full, and the machine then keeps the vCPU that produced the output
 * parked until `drained()` resolves — the guest waits, as it would on a 16550 whose FIFO is
 * full, and the process holds at most one write's worth of queued output per vCPU.
 *
 * A reader that goes away (EPIPE on a pipe, a closed socket) ends the run through `onClosed`
 * with a one-line reason instead of an unhandled 'error' event and its stack trace.
 *
 * `bufferedSink()` coalesces small writes: a Linux 6.1 guest prints its boot log one byte per
 * SBI call (legacy CONSOLE_PUTCHAR: earlycon=sbi and hvc0's hvc_riscv_sbi.c alike, DBCN came in
 * 6.8), ~5000 calls, which unbuffered are ~5000 write(2)s. Bytes go out at each newline, when
 * the buffer fills, `CONSOLE_FLUSH_DELAY_MS` after a partial line (a prompt), and at every
 * `flush()`: the machine flushes when its run ends, when it pauses, before a snapshot and before
 * a guest reads console input. Every device writes through the one sink, so buffering never
 * reorders output between the SBI console, the UART and the virtio console.
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
  /** Hands any output held back (see `bufferedSink`) to the host now. */
  flush?(): void;
}

/** Most milliseconds a partial line waits in a `bufferedSink` (a prompt without a newline). */
export const CONSOLE_FLUSH_DELAY_MS = 10;
/** Bytes a `bufferedSink` holds at most before it writes. */
export const CONSOLE_BUFFER_BYTES = 4096;
const NEWLINE = 0x0a;

/**
 * A sink that holds small writes back and hands them to `sink` in larger ones (module header).
 * `write()` answers false when a write it passed on found `sink` full, so backpressure holds:
 * at most `CONSOLE_BUFFER_BYTES` wait here besides what `sink` itself queues.
 */
export function bufferedSink(
  sink: ConsoleSink,
  delayMs = CONSOLE_FLUSH_DELAY_MS,
): ConsoleSink & { flush(): void } {
  const buffer = new Uint8Array(CONSOLE_BUFFER_BYTES);
  let used = 0;
  let timer: NodeJS.Timeout | undefined;
  // The underlying write result: the stream may keep the chunk, so each write gets a copy.
  const flush = (): boolean => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (used === 0) return true;
    const chunk = buffer.slice(0, used);
    used = 0;
    return sink.write(chunk);
  };
  return {
    write(bytes) {
      let ok = true;
      if (used + bytes.length > buffer.length) {
        ok = flush();
        if (bytes.length >= buffer.length) return sink.write(bytes) && ok;
      }
      buffer.set(bytes, used);
      used += bytes.length;
      if (bytes.includes(NEWLINE)) return flush() && ok;
      // A ref'd timer: a process cannot end with output still held here.
      timer ??= setTimeout(flush, delayMs);
      return ok;
    },
    drained: () => sink.drained(),
    onClosed(listener) {
      sink.onClosed(listener);
    },
    flush() {
      flush();
      sink.flush?.();
    },
  };
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
