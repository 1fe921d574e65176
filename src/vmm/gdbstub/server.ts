/**
 * The gdbstub's listener: `--gdb HOST:PORT` (TCP) or `--gdb unix:PATH`. A stub is full control
 * of the guest, so TCP binds only to loopback (127.0.0.0/8, ::1, localhost) unless the caller
 * allows remote debuggers explicitly; a Unix socket is created 0600. One debugger at a time: a
 * second connection is closed at once. When the debugger goes away mid-session the guest stays
 * stopped where it is (`onDisconnect: "stay"`, QEMU's behaviour), or the stub detaches and the
 * guest runs on (`"continue"`).
 */
import { createServer, isIP, type Server, type Socket } from "node:net";
import { RegvisorError } from "../../errors.js";
import { clearSocketPath, listenPrivate } from "../unix-socket.js";
import type { GdbPlanner } from "./regmap.js";
import { GdbSession } from "./session.js";
import type { DebugTarget } from "./target.js";

/** Where the stub listens. */
export type GdbAddress =
  | { readonly kind: "tcp"; readonly host: string; readonly port: number }
  | { readonly kind: "unix"; readonly path: string };

/** A `--gdb` value that cannot be used. */
export class GdbAddressError extends RegvisorError {
  constructor(message: string) {
    super("GDB_ADDRESS", message);
  }
}

/**
 * Parses `HOST:PORT`, `:PORT` / `PORT` (loopback), `tcp:HOST:PORT` or `unix:PATH`; IPv6 hosts in
 * brackets (`[::1]:1234`).
 * @throws GdbAddressError naming what is wrong.
 */
export function parseGdbAddress(text: string): GdbAddress {
  if (text.startsWith("unix:")) {
    const path = text.slice(5);
    if (path === "") throw new GdbAddressError(`--gdb ${text}: the socket path is empty`);
    return { kind: "unix", path };
  }
  const rest = text.startsWith("tcp:") ? text.slice(4) : text;
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$|^(\d+)$/.exec(rest);
  if (match === null) {
    throw new GdbAddressError(`--gdb ${text}: expected HOST:PORT, :PORT or unix:PATH`);
  }
  const host = match[1] ?? (match[2] === undefined || match[2] === "" ? "127.0.0.1" : match[2]);
  const port = Number(match[3] ?? match[4]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new GdbAddressError(`--gdb ${text}: the port must be 0..65535`);
  }
  return { kind: "tcp", host, port };
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1" || host === "0:0:0:0:0:0:0:1";
}

/** Options of `startGdbServer`. */
export interface GdbServerOptions {
  readonly address: GdbAddress;
  /** Allow a non-loopback TCP address (`--gdb-allow-remote`). */
  readonly allowRemote?: boolean;
  readonly target: DebugTarget;
  readonly planner: GdbPlanner;
  /** What a debugger leaving without `D` or `k` does to the guest (default "stay"). */
  readonly onDisconnect?: "stay" | "continue";
  /** Called when a debugger connects and leaves (for the CLI's status lines). */
  readonly log?: (line: string) => void;
}

/** A listening stub. */
export interface GdbServer extends AsyncDisposable {
  /** What GDB's `target remote` takes: `host:port` (the real port if 0 was asked) or the path. */
  readonly endpoint: string;
  close(): Promise<void>;
}

/**
 * Starts listening for one debugger at a time.
 * @throws GdbAddressError for a remote address without `allowRemote`, or when listening fails.
 */
export async function startGdbServer(options: GdbServerOptions): Promise<GdbServer> {
  const { address, target, log } = options;
  if (address.kind === "tcp" && !isLoopback(address.host) && options.allowRemote !== true) {
    throw new GdbAddressError(
      `--gdb ${address.host}:${address.port}: a gdbstub is full control of the guest, so it listens on loopback only; add --gdb-allow-remote to listen on ${address.host}`,
    );
  }
  if (address.kind === "unix") {
    const problem = await clearSocketPath(address.path);
    if (problem !== undefined) {
      throw new GdbAddressError(`Cannot listen for gdb on unix:${address.path}: ${problem}`);
    }
  }
  let client: Socket | undefined;
  const server: Server = createServer((socket) => {
    if (client !== undefined) {
      socket.destroy();
      return;
    }
    client = socket;
    // One small packet per reply: send it now (GDB waits for each before the next).
    socket.setNoDelay(true);
    log?.("gdb: debugger connected");
    const session = new GdbSession(
      {
        send: (bytes) => {
          if (!socket.destroyed) socket.write(bytes);
        },
        close: () => {
          socket.end();
        },
      },
      { target, planner: options.planner },
    );
    // All-stop: the guest stops before the debugger's first packet is served.
    let queued: Buffer[] | undefined = [];
    void (target.attach?.() ?? Promise.resolve()).then(() => {
      const early = queued ?? [];
      queued = undefined;
      for (const chunk of early) session.receive(chunk);
    });
    socket.on("data", (chunk: Buffer) => {
      if (queued === undefined) session.receive(chunk);
      else queued.push(chunk);
    });
    socket.on("error", () => {
      // A reset connection ends like a closed one ('close' follows).
    });
    socket.on("close", () => {
      client = undefined;
      log?.("gdb: debugger disconnected");
      if (session.ended) return;
      if (options.onDisconnect === "continue") target.detach();
      else if (session.running) target.interrupt();
    });
  });
  try {
    if (address.kind === "unix") await listenPrivate(server, address.path);
    else {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(address.port, address.host, () => {
          resolve();
        });
      });
    }
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new GdbAddressError(`Cannot listen for gdb on ${describe(address)}: ${why}`);
  }
  const bound = server.address();
  const endpoint =
    address.kind === "unix"
      ? address.path
      : `${address.host.includes(":") ? `[${address.host}]` : address.host}:${typeof bound === "object" && bound !== null ? bound.port : address.port}`;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      client?.destroy();
      server.close(() => {
        resolve();
      });
    });
    return closing;
  };
  return { endpoint, close, [Symbol.asyncDispose]: close };
}

function describe(address: GdbAddress): string {
  return address.kind === "unix" ? `unix:${address.path}` : `${address.host}:${address.port}`;
}
