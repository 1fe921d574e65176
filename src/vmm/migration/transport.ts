/**
 * Where a migration stream goes: `tcp:HOST:PORT` or `unix:PATH`, and the connection that
 * carries it. The source writes the stream (./stream.ts) and reads the destination's answers
 * (./handshake.ts) on the same connection; writes honour backpressure — a peer that stops reading
 * stalls the writer, and a stall longer than `stallMs` fails the migration instead of buffering
 * guest RAM without bound in the source.
 */
import { createServer, connect, type Server, type Socket } from "node:net";
import { RegvisorError } from "../../errors.js";
import { clearSocketPath, listenPrivate } from "../unix-socket.js";
import { IO_CODES, type NativeIo, socketFd } from "./native-io.js";

/** A migration failed or was refused; `stage` says where (for the one-line report). */
export class MigrationError extends RegvisorError {
  readonly stage: string;

  constructor(stage: string, message: string, options?: ErrorOptions) {
    super("MIGRATION", message, options);
    this.stage = stage;
  }
}

/** One RAM slot as `Channel.sendPagesBlocking` sends it: its pages and the views that hold them. */
export interface RamSlot {
  readonly slot: number;
  readonly pages: number;
  /** Views of the slot's RAM, each `windowBytes` long but the last. */
  readonly windows: readonly Uint8Array[];
  readonly windowBytes: number;
}

/** A parsed migration address. */
export type MigrationUri =
  | { readonly kind: "tcp"; readonly host: string; readonly port: number }
  | { readonly kind: "unix"; readonly path: string };

/**
 * Parses `tcp:HOST:PORT` (HOST may be `[v6]`; empty HOST = 127.0.0.1, loopback by default) or
 * `unix:PATH`.
 * @throws MigrationError (stage "uri") with the accepted forms.
 */
export function parseMigrationUri(text: string): MigrationUri {
  const forms = "use tcp:HOST:PORT or unix:PATH";
  if (text.startsWith("unix:")) {
    const path = text.slice(5);
    if (path === "" || path.includes("\0")) {
      throw new MigrationError(
        "uri",
        `Cannot use migration address "${text}": empty path; ${forms}`,
      );
    }
    return { kind: "unix", path };
  }
  if (text.startsWith("tcp:")) {
    const rest = text.slice(4);
    const colon = rest.lastIndexOf(":");
    const port = Number(rest.slice(colon + 1));
    let host = colon < 0 ? "" : rest.slice(0, colon);
    if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
    if (colon < 0 || !/^\d+$/.test(rest.slice(colon + 1)) || port > 65535) {
      throw new MigrationError(
        "uri",
        `Cannot use migration address "${text}": no port between 0 and 65535; ${forms}`,
      );
    }
    return { kind: "tcp", host: host === "" ? "127.0.0.1" : host, port };
  }
  throw new MigrationError("uri", `Cannot use migration address "${text}": ${forms}`);
}

/** The address as the user writes it. */
export function formatUri(uri: MigrationUri): string {
  if (uri.kind === "unix") return `unix:${uri.path}`;
  return `tcp:${uri.host.includes(":") ? `[${uri.host}]` : uri.host}:${uri.port}`;
}

/** Timeouts of a connection (milliseconds). */
export interface ChannelTimeouts {
  /** Connecting. */
  readonly connectMs: number;
  /** A write the peer does not take (no `drain`) for this long fails. */
  readonly stallMs: number;
}

/** Defaults: a peer gets 10 s to connect and 10 s to take bytes again. */
export const DEFAULT_TIMEOUTS: ChannelTimeouts = { connectMs: 10_000, stallMs: 10_000 };

/**
 * Bytes a channel lets queue in the source before a write waits for the peer: bounds the memory
 * a slow peer costs (plus one frame) while the sender keeps scanning.
 */
export const WRITE_QUEUE_BYTES = 8 * 1024 * 1024;

/** One migration connection: ordered writes with backpressure, incoming bytes as a queue. */
export class Channel {
  #written = 0;
  #error: MigrationError | undefined;
  #closed = false;
  #lastWrite: Promise<void> = Promise.resolve();
  readonly #incoming: Uint8Array[] = [];
  #wake: (() => void) | undefined;

  constructor(
    readonly socket: Socket,
    readonly peer: string,
    private readonly timeouts: ChannelTimeouts = DEFAULT_TIMEOUTS,
  ) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      // A Buffer is a Uint8Array: no wrapper object per received chunk.
      this.#incoming.push(chunk);
      this.#notify();
    });
    socket.on("error", (error: NodeJS.ErrnoException) => {
      this.#error ??= new MigrationError(
        "connection",
        `the connection to ${peer} failed: ${error.code ?? error.message}`,
        { cause: error },
      );
      this.#notify();
    });
    socket.on("close", () => {
      this.#closed = true;
      this.#notify();
    });
  }

  /** Bytes handed to the socket so far. */
  get bytesWritten(): number {
    return this.#written;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #dead(): MigrationError | undefined {
    if (this.#error !== undefined) return this.#error;
    if (this.#closed || this.socket.destroyed) {
      return new MigrationError("connection", `${this.peer} closed the connection`);
    }
    return undefined;
  }

  /**
   * Writes `chunks` in order; resolves once the socket can take more (backpressure). `sent` is
   * called once the socket is done with them (handed to the kernel, or dropped on a failure):
   * from then on the caller may reuse their buffers.
   * @throws MigrationError when the connection is gone or the peer stalls longer than `stallMs`.
   */
  async write(chunks: readonly Uint8Array[], sent?: () => void): Promise<void> {
    const dead = this.#dead();
    if (dead !== undefined) throw dead;
    // Corked: a frame's parts leave in one writev (no copy into one buffer, no syscall each).
    this.socket.cork();
    chunks.forEach((c, i) => {
      this.#written += c.length;
      if (i < chunks.length - 1) this.socket.write(c);
      else {
        this.#lastWrite = new Promise((resolve) => {
          this.socket.write(c, () => {
            sent?.();
            resolve();
          });
        });
      }
    });
    this.socket.uncork();
    // Backpressure at WRITE_QUEUE_BYTES, not at the socket's 16 KiB high-water mark: waiting
    // for `drain` after every frame turns the event loop (and gives an inline vCPU its slice)
    // once per frame, which made a 256 MiB first round take 3× as long here.
    if (this.socket.writableLength > WRITE_QUEUE_BYTES) await this.#drained();
  }

  /**
   * Resolves once everything written so far has left for the peer (the queue is empty).
   * @throws MigrationError when the connection is gone or the peer stalls longer than `stallMs`.
   */
  async flushed(): Promise<void> {
    // A write's callback runs once its bytes left (or the socket failed); writes leave in order.
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(this.#stall());
      }, this.timeouts.stallMs);
    });
    try {
      await Promise.race([this.#lastWrite, stalled]);
    } finally {
      clearTimeout(timer);
    }
    // One turn of the event loop: a peer that hung up meanwhile is seen now, not after a pause.
    await new Promise((resolve) => setImmediate(resolve));
    const dead = this.#dead();
    if (dead !== undefined) throw dead;
  }

  #stall(): MigrationError {
    return new MigrationError(
      "stalled",
      `${this.peer} took no bytes for ${this.timeouts.stallMs} ms (it stopped reading)`,
    );
  }

  #drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (error?: MigrationError): void => {
        clearTimeout(timer);
        this.socket.off("drain", onDrain);
        this.socket.off("close", onClose);
        if (error === undefined) resolve();
        else reject(error);
      };
      const onDrain = (): void => {
        done();
      };
      const onClose = (): void => {
        done(this.#dead() ?? new MigrationError("connection", `${this.peer} closed`));
      };
      const timer = setTimeout(() => {
        done(this.#stall());
      }, this.timeouts.stallMs);
      this.socket.on("drain", onDrain);
      this.socket.on("close", onClose);
    });
  }

  /**
   * The socket's descriptor, for a native reader or writer that takes over the connection for
   * a while (./native-io.ts); undefined when there is none to use.
   */
  get fd(): number | undefined {
    return this.#dead() === undefined ? socketFd(this.socket) : undefined;
  }

  /**
   * Everything received and not read yet, in order, taken out of the channel: what a native
   * reader must consume before the socket's own bytes. Node reads the socket only while the
   * event loop runs, so a synchronous reader that starts right after this sees the rest.
   */
  takeReceived(): Uint8Array[] {
    // Bytes Node buffered without emitting them: read() emits each as "data", into #incoming.
    while (this.socket.readableLength > 0 && this.socket.read() !== null);
    return this.#incoming.splice(0);
  }

  /**
   * Writes `chunks` at once through `io` (gathered sends, blocking; every wait at most
   * `stallMs`), after everything written before has left: for the switchover only. With
   * `appendCrc` the chunks are a frame without its trailer, which `io` computes and appends.
   * @throws MigrationError when the connection is gone or the peer stalls.
   */
  async writeBlocking(
    io: NativeIo,
    chunks: readonly Uint8Array[],
    appendCrc = false,
  ): Promise<void> {
    if (this.socket.writableLength > 0) await this.flushed();
    const r = io.sendAll(this.#fd(), chunks, this.timeouts.stallMs, appendCrc);
    this.#written += r.written;
    this.#check(r.code, r.message);
  }

  /**
   * Sends the dirty pages of one RAM slot through `io` (`NativeIo.sendPages`: framed and
   * checksummed straight from RAM, blocking, every wait at most `stallMs`), after everything
   * written before has left: for the switchover only. Resolves with the pages sent and how many
   * of them were zero pages.
   * @throws MigrationError when the connection is gone or the peer stalls.
   */
  async sendPagesBlocking(
    io: NativeIo,
    slot: RamSlot,
    bitmap: Uint8Array,
  ): Promise<{ pages: number; zeroPages: number; written: number }> {
    if (this.socket.writableLength > 0) await this.flushed();
    const fd = this.#fd();
    const r = io.sendPages(
      fd,
      slot.slot,
      slot.pages,
      slot.windows,
      slot.windowBytes,
      bitmap,
      this.timeouts.stallMs,
    );
    this.#written += r.written;
    this.#check(r.code, r.message);
    return { pages: r.pages, zeroPages: r.zeroPages, written: r.written };
  }

  /** The descriptor for a native call. */
  #fd(): number {
    const fd = this.fd;
    const dead = this.#dead();
    if (dead !== undefined) throw dead;
    if (fd === undefined)
      throw new MigrationError("connection", `the connection to ${this.peer} has no descriptor`);
    return fd;
  }

  /** Throws what a native call's result `code` means (IO_CODES). */
  #check(code: number, message: string): void {
    if (code === IO_CODES.ok) return;
    if (code === IO_CODES.timeout) throw this.#stall();
    throw new MigrationError("connection", `the connection to ${this.peer} failed: ${message}`);
  }

  /** The next bytes the peer sent if some are queued already (no wait, no promise). */
  poll(): Uint8Array | undefined {
    return this.#incoming.shift();
  }

  /**
   * The next bytes the peer sent; undefined at end of stream.
   * @throws MigrationError on a connection error or when nothing comes within `timeoutMs`.
   */
  async read(timeoutMs = Infinity): Promise<Uint8Array | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const next = this.#incoming.shift();
      if (next !== undefined) return next;
      if (this.#error !== undefined) throw this.#error;
      if (this.#closed || this.socket.readableEnded) return undefined;
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new MigrationError("timeout", `${this.peer} sent nothing for ${timeoutMs} ms`);
      }
      await new Promise<void>((resolve) => {
        const timer = left === Infinity ? undefined : setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Ends our side after pending writes; resolves when they are flushed or the socket is gone. */
  end(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) {
        resolve();
        return;
      }
      this.socket.end(() => {
        resolve();
      });
      this.socket.once("close", () => {
        resolve();
      });
    });
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * Connects to a listening destination.
 * @throws MigrationError (stage "connect") naming the address and the errno.
 */
export function connectChannel(
  uri: MigrationUri,
  timeouts: ChannelTimeouts = DEFAULT_TIMEOUTS,
): Promise<Channel> {
  const where = formatUri(uri);
  return new Promise((resolve, reject) => {
    const socket =
      uri.kind === "unix" ? connect(uri.path) : connect({ host: uri.host, port: uri.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new MigrationError(
          "connect",
          `Cannot connect to ${where}: no answer within ${timeouts.connectMs} ms`,
        ),
      );
    }, timeouts.connectMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(new Channel(socket, where, timeouts));
    });
    socket.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint =
        error.code === "ECONNREFUSED" || error.code === "ENOENT"
          ? " (is 'regvisor run --incoming' listening there?)"
          : "";
      reject(
        new MigrationError(
          "connect",
          `Cannot connect to ${where}: ${error.code ?? error.message}${hint}`,
          {
            cause: error,
          },
        ),
      );
    });
  });
}

/** A destination waiting for its one stream. */
export interface Listener extends AsyncDisposable {
  /** The address, with the port the OS chose for `tcp:HOST:0`. */
  readonly uri: MigrationUri;
  /** The first connection; later ones are refused. */
  accept(): Promise<Channel>;
  close(): Promise<void>;
}

/**
 * Listens on `uri` for one incoming migration (a Unix socket is created 0600).
 * @throws MigrationError (stage "listen") when the address cannot be used.
 */
export async function listenOnce(
  uri: MigrationUri,
  timeouts: ChannelTimeouts = DEFAULT_TIMEOUTS,
): Promise<Listener> {
  const where = formatUri(uri);
  const server: Server = createServer({ pauseOnConnect: false });
  let first: ((channel: Channel) => void) | undefined;
  const accepted = new Promise<Channel>((resolve) => (first = resolve));
  server.on("connection", (socket) => {
    if (first === undefined) {
      socket.destroy();
      return;
    }
    const take = first;
    first = undefined;
    take(new Channel(socket, "the source", timeouts));
  });
  try {
    if (uri.kind === "unix") {
      const problem = await clearSocketPath(uri.path);
      if (problem !== undefined) throw new Error(problem);
      await listenPrivate(server, uri.path);
    } else {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ host: uri.host, port: uri.port }, () => {
          server.off("error", reject);
          resolve();
        });
      });
    }
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new MigrationError("listen", `Cannot listen for a migration on ${where}: ${why}`);
  }
  const address = server.address();
  const bound: MigrationUri =
    uri.kind === "tcp" && address !== null && typeof address === "object"
      ? { kind: "tcp", host: uri.host, port: address.port }
      : uri;
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
    return closed;
  };
  return {
    uri: bound,
    accept: async () => {
      const channel = await accepted;
      // One stream per listener: stop accepting (the connection itself stays open).
      void close();
      return channel;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
