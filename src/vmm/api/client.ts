/**
 * The client side of the control socket (./server.ts): one HTTP request over the Unix socket,
 * the JSON answer back. Used by `regvisor ctl`; any HTTP client (`curl --unix-socket`) works too.
 */
import { request } from "node:http";
import { RegvisorError } from "../../errors.js";

/** The request did not reach the server, or its answer was not the API's JSON. */
export class ApiClientError extends RegvisorError {
  constructor(message: string, options?: ErrorOptions) {
    super("API_CLIENT", message, options);
  }
}

/** The server's answer: its HTTP status and JSON body. */
export interface ApiResponse {
  readonly status: number;
  readonly body: unknown;
}

/** Largest answer read (statuses and errors are small). */
const MAX_RESPONSE_BYTES = 1024 * 1024;

function connectionHint(path: string, code: string | undefined): string {
  switch (code) {
    case "ENOENT":
      return `no control socket at ${path} (is 'regvisor run --api ${path}' running?)`;
    case "ECONNREFUSED":
      return `nothing is listening on ${path} (the machine has ended)`;
    case "EACCES":
      return `permission denied on ${path} (the socket is 0600: run as the machine's user)`;
    default:
      return `cannot reach ${path}`;
  }
}

/**
 * Sends `method route` with an optional JSON body to the control socket at `socketPath`.
 * @throws ApiClientError when the socket cannot be reached, the connection drops, the answer is
 *   not JSON, or no answer comes within `timeoutMs`.
 */
export function apiRequest(
  socketPath: string,
  method: "GET" | "PUT",
  route: string,
  body?: unknown,
  timeoutMs = 120_000,
): Promise<ApiResponse> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        method,
        path: route,
        headers:
          payload === undefined
            ? {}
            : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            req.destroy(new ApiClientError(`the answer from ${socketPath} is too large`));
          } else chunks.push(chunk);
        });
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown });
          } catch {
            reject(new ApiClientError(`the answer from ${socketPath} is not JSON`));
          }
        });
        res.on("error", (error) => {
          reject(error);
        });
      },
    );
    req.setTimeout(timeoutMs, () =>
      req.destroy(new ApiClientError(`no answer from ${socketPath} within ${timeoutMs} ms`)),
    );
    req.on("error", (error: NodeJS.ErrnoException) => {
      if (error instanceof ApiClientError) reject(error);
      else if (error.code === "ECONNRESET") {
        reject(new ApiClientError(`the connection to ${socketPath} was closed before an answer`));
      } else reject(new ApiClientError(connectionHint(socketPath, error.code), { cause: error }));
    });
    req.end(payload);
  });
}
