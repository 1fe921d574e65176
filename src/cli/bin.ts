#!/usr/bin/env node
/** Entry point of the `regvisor` executable. */
import { main } from "./main.js";
import { writeAllSync } from "./output.js";
import { setV8Flags } from "./v8-flags.js";

// Before any command runs: V8's tiering and inlining settings for this process (v8-flags.ts).
setV8Flags();

// stderr carries the one-line reasons; if it is closed too there is nobody left to tell.
process.stderr.on("error", () => undefined);

process.exitCode = await main(process.argv.slice(2), {
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
