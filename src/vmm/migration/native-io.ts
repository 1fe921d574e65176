/**
 * The switchover's bulk socket I/O through regvisor's native addon (native/sockio.cc): the
 * destination receives the last PAGES frames straight into guest RAM (each frame's entry table
 * checked first, its CRC32C checked over the bytes where they landed), and the source writes
 * them with gathered sends from RAM. Both calls block the event loop, bounded by a timeout on
 * every wait: they run only between the source's pause and the commit, when the guest runs
 * nowhere and the event loop has nothing else to do that could not wait those milliseconds.
 *
 * Without the addon (not built, `REGVISOR_NATIVE=0`, no SSE4.2 for its CRC32C) `nativeIo()` is
 * undefined and the stream goes through Node's socket as it does for the pre-copy: same bytes,
 * same checks, slower.
 */
import type { Socket } from "node:net";
import { findAddon, requireAddon } from "../../native-addon.js";

/** Result codes of native/sockio.cc. */
export const IO_CODES = {
  ok: 0,
  /** The stream breaks its format (a `MigrationStreamError`). */
  format: 1,
  /** Well-formed but not for this machine (a page outside its RAM). */
  rejected: 2,
  timeout: 3,
  closed: 4,
  io: 5,
} as const;

/** One destination RAM slot as native/sockio.cc takes it. */
export interface NativeSlot {
  readonly slot: number;
  readonly pages: number;
  /** destination.ts's map of pages holding data (1) or still zero (0). */
  readonly written: Uint8Array;
  /** The slot's RAM: views of `windowBytes` each, the last one shorter. */
  readonly windows: readonly Uint8Array[];
}

/** What `recvPages` did. */
export interface RecvResult {
  readonly code: number;
  /** Stream bytes of the PAGES frames stored (from the first byte of `pre`). */
  readonly consumed: number;
  readonly frames: number;
  readonly pages: number;
  /** On success: the bytes read past the last PAGES frame (the next frame's start). */
  readonly rest: Uint8Array;
  /** On failure: one line, and where in the stream (from the first byte of `pre`). */
  readonly message: string;
  readonly offset: number;
}

/** What `recvSome` got: bytes (code ok), or nothing in time (timeout), or why not. */
export type RecvSomeResult =
  | { readonly code: typeof IO_CODES.ok; readonly bytes: Uint8Array }
  | { readonly code: Exclude<IoCode, typeof IO_CODES.ok>; readonly message: string };

/** One of `IO_CODES`. */
export type IoCode = (typeof IO_CODES)[keyof typeof IO_CODES];

/** What `sendPages` did. */
export interface SendPagesResult {
  readonly code: number;
  /** Bytes sent. */
  readonly written: number;
  /** On failure: one line. */
  readonly message: string;
  /** Pages sent (entries of the PAGES frames), and how many of them as zero pages. */
  readonly pages: number;
  readonly zeroPages: number;
}

/** The addon's switchover I/O. */
export interface NativeIo {
  /**
   * Reads PAGES frames from `fd` (`pre` first) into the slots' RAM until a frame of another
   * type starts, or with `sliceMs` >= 0 until that long has passed (at a frame boundary, or
   * when no next frame starts within it); every wait at most `timeoutMs`.
   */
  recvPages(
    fd: number,
    pre: readonly Uint8Array[],
    slots: readonly NativeSlot[],
    windowBytes: number,
    maxFrameBytes: number,
    maxPages: number,
    timeoutMs: number,
    sliceMs?: number,
  ): RecvResult;
  /**
   * Writes every chunk to `fd`, then with `appendCrc` their CRC32C (checksummed as they go:
   * the trailer of a frame from `PagesFrame.unchecked()`); every wait at most `timeoutMs`.
   */
  sendAll(
    fd: number,
    chunks: readonly Uint8Array[],
    timeoutMs: number,
    appendCrc: boolean,
  ): { code: number; written: number; message: string };
  /**
   * Sends the dirty pages of RAM slot `slot` (`pages` pages: `windows`, each `windowBytes`
   * long but the last) as the PAGES frames `Precopy.finish` makes, framed and checksummed
   * straight from RAM (native/pagesend.cc); every wait at most `timeoutMs`. Only while the
   * vCPUs are paused.
   */
  sendPages(
    fd: number,
    slot: number,
    pages: number,
    windows: readonly Uint8Array[],
    windowBytes: number,
    bitmap: Uint8Array,
    timeoutMs: number,
  ): SendPagesResult;
  /**
   * Waits at most `timeoutMs` for `fd` to be readable, then reads what is there (at most
   * `maxBytes`) without waiting more; for the switchover's handshake. Undefined with an addon
   * built before it (the handshake then goes through Node's socket).
   */
  readonly recvSome?: (fd: number, maxBytes: number, timeoutMs: number) => RecvSomeResult;
}

/** The addon's raw functions (the headers of native/sockio.cc, pagesend.cc and pagemap.cc). */
interface Addon {
  recvPages?: (...args: unknown[]) => unknown;
  sendAll?: (...args: unknown[]) => unknown;
  sendPages?: (...args: unknown[]) => unknown;
  recvSome?: (...args: unknown[]) => unknown;
  touchedPages?: (view: Uint8Array, out: Uint8Array) => unknown;
}

/** The package's addon (../../native-addon.ts), undefined if it is not built or does not load. */
function loadAddon(): Addon | undefined {
  if (process.env.REGVISOR_NATIVE === "0") return undefined;
  const file = findAddon();
  if (file === undefined) return undefined;
  try {
    return requireAddon(file) as Addon;
  } catch {
    return undefined;
  }
}

function wrap(addon: Addon | undefined): NativeIo | undefined {
  const recv = addon?.recvPages;
  const send = addon?.sendAll;
  const pages = addon?.sendPages;
  const some = addon?.recvSome;
  if (recv === undefined || send === undefined || pages === undefined) return undefined;
  // The addon answers undefined without SSE4.2 (its CRC32C): then the JS path is used. An addon
  // built from older sources (recvPages without its slice argument) throws: the JS path too.
  try {
    if (recv(-1, [], [], 4096, 0, 0, 0, -1) === undefined) return undefined;
  } catch {
    return undefined;
  }
  return {
    recvPages(fd, pre, slots, windowBytes, maxFrameBytes, maxPages, timeoutMs, sliceMs = -1) {
      const list = slots.map((s) => [s.slot, s.pages, s.written, ...s.windows]);
      const slice = Math.min(Math.max(Math.floor(sliceMs), -1), 2 ** 31 - 1);
      // Cast: native/sockio.cc returns [code, consumed, frames, pages, rest | message, offset].
      const r = recv(fd, pre, list, windowBytes, maxFrameBytes, maxPages, timeoutMs, slice) as [
        number,
        number,
        number,
        number,
        Uint8Array | string,
        number,
      ];
      const [code, consumed, frames, pages, last, offset] = r;
      return {
        code,
        consumed,
        frames,
        pages,
        rest: typeof last === "string" ? new Uint8Array(0) : last,
        message: typeof last === "string" ? last : "",
        offset,
      };
    },
    sendAll(fd, chunks, timeoutMs, appendCrc) {
      // Cast: native/sockio.cc returns [code, written, message].
      const [code, written, message] = send(fd, chunks, timeoutMs, appendCrc) as [
        number,
        number,
        string,
      ];
      return { code, written, message };
    },
    sendPages(fd, slot, count, windows, windowBytes, bitmap, timeoutMs) {
      // Cast: native/pagesend.cc returns [code, written, message, entries, zeroPages].
      const [code, written, message, sent, zeroPages] = pages(
        fd,
        slot,
        count,
        windows,
        windowBytes,
        bitmap,
        timeoutMs,
      ) as [number, number, string, number, number];
      return { code, written, message, pages: sent, zeroPages };
    },
    ...(some === undefined
      ? {}
      : {
          recvSome: (fd, maxBytes, timeoutMs) => {
            // Cast: native/sockio.cc returns [code, bytes | message].
            const [code, got] = some(fd, maxBytes, timeoutMs) as [IoCode, Uint8Array | string];
            if (code === IO_CODES.ok && typeof got !== "string") return { code, bytes: got };
            return {
              code: code === IO_CODES.ok ? IO_CODES.io : code,
              message: typeof got === "string" ? got : "",
            };
          },
        }),
  };
}

const ADDON = loadAddon();
const NATIVE = wrap(ADDON);

/** The native switchover I/O, or undefined (module header). */
export function nativeIo(): NativeIo | undefined {
  return NATIVE;
}

/**
 * The file descriptor under a connected TCP or Unix socket on Linux, or undefined (another
 * platform, a closed socket).
 */
export function socketFd(socket: Socket): number | undefined {
  // Cast: Node keeps the libuv handle (TCPWrap / PipeWrap) in the undocumented `_handle`,
  // whose `fd` is the socket's descriptor on Unix (-1 when closed).
  const handle = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  return typeof fd === "number" && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}

/**
 * Which pages of `view` were ever touched (native/pagemap.cc): `out[i]` = 1 when page i may hold
 * data, 0 when it was never touched and reads as zeros. False when that cannot be told (no
 * addon, `REGVISOR_NATIVE=0`, memory that is not private anonymous, a view not page-aligned):
 * then every page must be looked at.
 */
export function touchedPages(view: Uint8Array, out: Uint8Array): boolean {
  return ADDON?.touchedPages?.(view, out) === true;
}
