/**
 * Making room for a listening Unix socket (the control socket, the gdbstub): a socket file left
 * behind by a process that died is removed; a live socket or any other file is left alone and
 * reported, so a second regvisor never steals the first one's socket or deletes a user's file.
 */
import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import { connect, type Server } from "node:net";
import { isMainThread } from "node:worker_threads";

/**
 * Clears `path` for `listen()`: undefined when it is free (nothing there, or a stale socket now
 * removed), else why it cannot be used.
 */
export async function clearSocketPath(path: string): Promise<string | undefined> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    return error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error);
  }
  if (!isSocket) return "it exists and is not a socket (remove it or choose another path)";
  const live = await new Promise<boolean>((done) => {
    const probe = connect(path);
    probe.once("connect", () => {
      probe.destroy();
      done(true);
    });
    probe.once("error", () => {
      done(false);
    });
  });
  if (live) return "another process is listening on it";
  unlinkSync(path);
  return undefined;
}

/**
 * Listens on the Unix socket `path` with mode 0600 from its first moment: bind() runs inside
 * `listen()` under a restrictive umask (chmod repeats it where umask is unavailable, in a Worker).
 */
export function listenPrivate(server: Server, path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const previous = isMainThread ? process.umask(0o177) : undefined;
    try {
      server.listen(path, () => {
        server.off("error", reject);
        chmodSync(path, 0o600);
        resolve();
      });
    } finally {
      if (previous !== undefined) process.umask(previous);
    }
  });
}
