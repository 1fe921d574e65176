/**
 * The control socket of `regvisor run --api PATH`: a small HTTP/1.1 + JSON API on a Unix socket,
 * in Firecracker's style (HTTP over a Unix socket, JSON bodies), so `curl --unix-socket PATH`
 * works as a client. The socket is created with mode 0600: whoever can connect controls the guest.
 *
 *   GET  /status                       → 200 MachineStatus
 *   PUT  /pause                        → 200 MachineStatus (every vCPU parked between exits)
 *   PUT  /resume                       → 200 MachineStatus
 *   PUT  /snapshot  {"path": "FILE"}   → 200 {"path": absolute path, "bytes": n}
 *   PUT  /quit                         → 200 MachineStatus (the run then ends with reason "quit")
 *   PUT  /gdb  {"address": "HOST:PORT"|"unix:PATH"}  → 200 {"endpoint": …} (a gdbstub listens;
 *                                        a debugger that connects stops the guest)
 *   PUT  /migrate   {"uri": "tcp:HOST:PORT"|"unix:PATH", "downtimeLimitMs"?: n, "maxBandwidth"?: n}
 *                                      → 200 MigrationStatus when it is over ("completed": the
 *                                        run then ends with reason "migrated"; "failed": the
 *                                        guest runs on as before)
 *   GET  /migrate                      → 200 MigrationStatus of the current or last migration
 *
 * Errors are `{"error": "one line"}` with 400 (malformed request: not JSON, not an object, an
 * unknown or mistyped field), 404 (unknown path), 405 (wrong method; `Allow` says which), 409
 * (not possible in the machine's state), 413 (body over `maxBodyBytes`) or 500 (the operation
 * failed). A malformed request changes nothing: it is refused before the machine is called.
 * Operations run one at a time in arrival order; `GET /status` is answered at once.
 */
import { lstatSync, unlinkSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { resolve } from "node:path";
import { RegvisorError } from "../../errors.js";
import { clearSocketPath, listenPrivate } from "../unix-socket.js";
import { parseMigrationUri } from "../migration/transport.js";
import { ControlError, type MachineControl, type MigrateRequest } from "./control.js";

/** Largest request body accepted by default (a snapshot path fits many times over). */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/** How long `close()` waits for replies being prepared. */
const CLOSE_GRACE_MS = 1000;

/** `sizeof(sockaddr_un.sun_path) - 1` on Linux (include/uapi/linux/un.h: UNIX_PATH_MAX 108). */
const MAX_SOCKET_PATH_BYTES = 107;

/** The control socket could not be created. */
export class ApiServerError extends RegvisorError {
  constructor(message: string, options?: ErrorOptions) {
    super("API_SERVER", message, options);
  }
}

/** Options of `startApiServer`. */
export interface ApiServerOptions {
  /** Filesystem path of the Unix socket. */
  readonly path: string;
  readonly control: MachineControl;
  /** Largest request body (default 64 KiB). */
  readonly maxBodyBytes?: number;
  /** `PUT /gdb`: starts a gdbstub at the address; absent, the endpoint answers 409. */
  readonly gdb?: (address: string) => Promise<{ endpoint: string }>;
}

/** A listening control socket. */
export interface ApiServer extends AsyncDisposable {
  /** The socket's absolute path. */
  readonly path: string;
  /** Stops listening, drops open connections and removes the socket file. */
  close(): Promise<void>;
}

type Handler = (body: unknown) => Promise<unknown>;

/** A request refused before the machine is called. */
class RequestError extends Error {
  constructor(
    readonly status: 400 | 404 | 405 | 413,
    message: string,
    readonly allow?: string,
  ) {
    super(message);
  }
}

function routesFor(
  control: MachineControl,
  gdb: ApiServerOptions["gdb"],
): Record<string, Readonly<Record<string, Handler>>> {
  const noBody =
    (op: () => Promise<void>): Handler =>
    async (body) => {
      expectFields(body, []);
      await op();
      return control.status();
    };
  return {
    "/status": {
      GET: (body) => {
        expectFields(body, []);
        return Promise.resolve(control.status());
      },
    },
    "/pause": { PUT: noBody(() => control.pause()) },
    "/resume": { PUT: noBody(() => control.resume()) },
    "/quit": { PUT: noBody(() => control.quit()) },
    "/gdb": {
      PUT: (body) => {
        expectFields(body, ["address"], ["address"]);
        const address = (body as { address?: unknown }).address;
        if (typeof address !== "string" || address.length === 0 || address.includes("\0")) {
          throw new RequestError(400, `"address" must be a non-empty string without NUL bytes`);
        }
        if (gdb === undefined) {
          return Promise.reject(
            new ControlError(409, "Cannot start a gdbstub: this machine has none"),
          );
        }
        return gdb(address);
      },
    },
    "/snapshot": {
      PUT: async (body) => {
        expectFields(body, ["path"], ["path"]);
        const path = (body as { path?: unknown }).path;
        if (typeof path !== "string" || path.length === 0 || path.includes("\0")) {
          throw new RequestError(400, `"path" must be a non-empty string without NUL bytes`);
        }
        return control.snapshot(resolve(path));
      },
    },
    "/migrate": {
      GET: (body) => {
        expectFields(body, []);
        return Promise.resolve(control.migrationStatus?.() ?? { status: "none" });
      },
      PUT: (body) => {
        const request = migrateRequest(body);
        if (control.migrate === undefined) {
          throw new ControlError(
            409,
            "Cannot migrate this machine: it does not support live migration",
          );
        }
        return control.migrate(request);
      },
    },
  };
}

/** Checks a `PUT /migrate` body before the machine sees it. */
function migrateRequest(body: unknown): MigrateRequest {
  expectFields(body, ["uri", "downtimeLimitMs", "maxBandwidth"], ["uri"]);
  const b = body as { uri?: unknown; downtimeLimitMs?: unknown; maxBandwidth?: unknown };
  if (typeof b.uri !== "string") throw new RequestError(400, `"uri" must be a string`);
  try {
    parseMigrationUri(b.uri);
  } catch (error) {
    throw new RequestError(400, oneLine(error));
  }
  const positive = (name: string, v: unknown): number | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      throw new RequestError(400, `"${name}" must be a positive integer`);
    }
    return v;
  };
  const downtimeLimitMs = positive("downtimeLimitMs", b.downtimeLimitMs);
  const maxBandwidth = positive("maxBandwidth", b.maxBandwidth);
  return {
    uri: b.uri,
    ...(downtimeLimitMs === undefined ? {} : { downtimeLimitMs }),
    ...(maxBandwidth === undefined ? {} : { maxBandwidth }),
  };
}

/** Accepts no body, `{}`, or an object with only `allowed` fields (and every `required` one). */
function expectFields(body: unknown, allowed: readonly string[], required: readonly string[] = []) {
  if (body === undefined && required.length === 0) return;
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new RequestError(400, "the request body must be a JSON object");
  }
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) throw new RequestError(400, `unknown field "${key}"`);
  }
  for (const key of required) {
    if (!(key in body)) throw new RequestError(400, `missing field "${key}"`);
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) {
    return Promise.reject(new RequestError(413, `the body is over ${limit} bytes`));
  }
  return new Promise((resolveBody, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new RequestError(413, `the body is over ${limit} bytes`));
        req.pause();
        return;
      }
      chunks.push(chunk);
    });
    req.on("error", reject);
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8").trim();
      if (text === "") {
        resolveBody(undefined);
        return;
      }
      try {
        resolveBody(JSON.parse(text) as unknown);
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error);
        reject(new RequestError(400, `the request body is not valid JSON: ${why}`));
      }
    });
  });
}

function reply(res: ServerResponse, status: number, data: unknown, extra?: Record<string, string>) {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(data) + "\n";
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...(status === 413 ? { connection: "close" } : {}),
    ...extra,
  });
  res.end(text);
}

function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0] ?? "";
}

/**
 * Serves `control` on a Unix socket at `path` (mode 0600).
 * @throws ApiServerError when the path is too long, taken by a live server or by a non-socket.
 */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const path = resolve(options.path);
  const limit = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new ApiServerError(
      `Cannot create the control socket ${path}: the path is ${Buffer.byteLength(path)} bytes, Unix sockets allow ${MAX_SOCKET_PATH_BYTES}`,
    );
  }
  const problem = await clearSocketPath(path);
  if (problem !== undefined) {
    throw new ApiServerError(`Cannot use ${path} for the control socket: ${problem}`);
  }
  const routes = routesFor(options.control, options.gdb);
  let queue: Promise<unknown> = Promise.resolve();

  const server: Server = createServer({ requestTimeout: 60_000, headersTimeout: 10_000 });
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    void handle(req, res);
  });
  server.on("clientError", (_error, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    else socket.destroy();
  });

  // Replies being prepared: close() lets them go out first (a completed migration ends the
  // machine, and with it this server, before its PUT /migrate is answered).
  const pending = new Set<Promise<void>>();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const answered = new Promise<void>((done) => {
      res.on("close", done);
    });
    pending.add(answered);
    void answered.then(() => pending.delete(answered));
    try {
      const route = routes[new URL(req.url ?? "/", "http://regvisor").pathname];
      if (route === undefined) throw new RequestError(404, `no such endpoint: ${req.url ?? ""}`);
      const handler = route[req.method ?? ""];
      const allow = Object.keys(route).join(", ");
      if (handler === undefined) {
        throw new RequestError(405, `${req.url ?? ""} takes ${allow}`, allow);
      }
      const body = await readBody(req, limit);
      // One operation at a time: a pause, a snapshot and a quit never interleave.
      const result =
        req.method === "GET"
          ? handler(body)
          : (queue = queue.then(
              () => handler(body),
              () => handler(body),
            ));
      reply(res, 200, await result);
    } catch (error) {
      if (error instanceof RequestError) {
        reply(
          res,
          error.status,
          { error: error.message },
          error.allow ? { allow: error.allow } : {},
        );
      } else if (error instanceof ControlError) {
        reply(res, error.httpStatus, { error: error.message });
      } else {
        reply(res, 500, { error: oneLine(error) });
      }
    }
  }

  try {
    await listenPrivate(server, path);
  } catch (error) {
    throw new ApiServerError(`Cannot create the control socket ${path}: ${oneLine(error)}`);
  }

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= Promise.race([
      Promise.all(pending),
      new Promise((done) => setTimeout(done, CLOSE_GRACE_MS).unref()),
    ])
      .then(
        () =>
          new Promise<void>((done) => {
            server.close(() => {
              done();
            });
            server.closeAllConnections();
          }),
      )
      .then(() => {
        try {
          if (lstatSync(path).isSocket()) unlinkSync(path);
        } catch {
          // Already gone: nothing to remove.
        }
      });
    return closed;
  };
  return { path, close, [Symbol.asyncDispose]: close };
}
