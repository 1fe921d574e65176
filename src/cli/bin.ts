#!/usr/bin/env node
/** Entry point of the `regvisor` executable. */
import { main } from "./main.js";

process.exitCode = await main(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  // Guest console output is passed through byte for byte, not re-encoded as UTF-8.
  stdoutBytes: (bytes) => process.stdout.write(bytes),
  stdoutStream: process.stdout,
});
