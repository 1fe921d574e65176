#!/usr/bin/env node
/**
 * Entry point of the `regvisor` executable. Built (scripts/bundle.mjs: a CommonJS file, as Node
 * loads one without its ES module loader's asynchronous reads), it runs the bundled CLI beside
 * it (cli.cjs) with its code cache (./code-cache.ts); from tsc's output, where no bundle sits
 * beside it, it imports the CLI's modules.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
// Sets V8's wasm tiering budget now, as the CLI would on its first use of the wasm tier: V8's
// flags are part of the code cache's check, and the cache is written after a run (below), so
// every flag the program sets must be set before the CLI is compiled, or V8 rejects the cache.
import "../backends/soft/riscv/wasm-api.js";
import { CACHE_OUT_ENV, type LoadedScript, loadScript, writeCodeCache } from "./code-cache.js";
import { setV8Flags } from "./v8-flags.js";

// Before any command runs and before the CLI script is compiled (V8 rejects a code cache made
// under other flags; the build writes the cache through this file, with these flags set):
// V8's tiering and inlining settings for this process (v8-flags.ts).
setV8Flags();

type Cli = (argv: string[]) => Promise<number>;

function isCliModule(exports: unknown): exports is { cli: Cli } {
  return typeof exports === "object" && exports !== null && "cli" in exports;
}

/** Status when the event loop empties before the CLI settles, as Node's for a top-level await. */
const STATUS_UNSETTLED = 13;

async function start(): Promise<void> {
  const here = dirname(fileURLToPath(import.meta.url));
  const bundle = join(here, "cli.cjs");
  let loaded: LoadedScript | undefined;
  let cli: Cli;
  if (existsSync(bundle)) {
    loaded = loadScript(bundle, join(here, "cli.cache"));
    if (/\bregvisor\b/i.test(process.env.NODE_DEBUG ?? "")) {
      process.stderr.write(`REGVISOR ${String(process.pid)}: code cache ${loaded.cache}\n`);
    }
    if (!isCliModule(loaded.exports)) throw new Error(`${bundle} does not export the CLI`);
    cli = loaded.exports.cli;
  } else {
    cli = (await import("./cli.js")).cli;
  }
  process.exitCode = await cli(process.argv.slice(2));
  // `npm run build` runs the demo guest once through this file to write the cache (bundle.mjs).
  const cacheOut = process.env[CACHE_OUT_ENV];
  if (loaded !== undefined && cacheOut !== undefined && cacheOut !== "") {
    writeCodeCache(loaded, cacheOut);
  }
}

let settled = false;
// Emitted only when the event loop empties (never on process.exit()).
process.once("beforeExit", () => {
  if (!settled) process.exitCode = STATUS_UNSETTLED;
});
start().then(
  () => {
    settled = true;
  },
  (error: unknown) => {
    // Only a missing or broken bundle gets here: the CLI turns its own errors into a status.
    settled = true;
    throw error;
  },
);
