/**
 * The `regvisor` executable's body: the CLI (main.ts) over the process's stdout and stderr.
 * src/cli/bin.ts runs it, from the bundle scripts/bundle.mjs makes of this file or from tsc's
 * output.
 */
import { main } from "./main.js";
import { writeAllSync } from "./output.js";

/** Runs `regvisor argv` (without node and script) on this process; resolves to the exit status. */
export function cli(argv: string[]): Promise<number> {
  // stderr carries the one-line reasons; if it is closed too there is nobody left to tell.
  process.stderr.on("error", () => undefined);
  return main(argv, {
    // Synchronous, so a closed or full stdout stops the command at the failing write (output.ts).
    stdout: (text) => {
      writeAllSync(1, text);
    },
    // Guest console output is passed through byte for byte, not re-encoded as UTF-8.
    stdoutBytes: (bytes) => {
      writeAllSync(1, bytes);
    },
    // `run FILE`'s guest console: the stream's write() result is its backpressure, and its
    // 'error' event (EPIPE, ENOSPC) ends the run with status 141 or 74 (console-sink.ts).
    stdoutStream: process.stdout,
  });
}
