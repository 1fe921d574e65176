/**
 * Loads the bundled CLI (dist/bin/cli.cjs, written by scripts/bundle.mjs) as one script with
 * V8's code cache beside it (dist/bin/cli.cache), so a start deserializes the bytecode of the
 * functions a run needs instead of parsing and compiling them.
 *
 * Why (issue 13: process start to the Linux guest's first line is part of the boot benchmark):
 * loading the CLI as ~50 ES module chunks cost ~60 ms of a soft run's start (compiling their
 * source, resolving and reading each file, linking), and Node 20 keeps no compile cache for ES
 * modules; `vm.Script` takes V8's `cachedData`. The cache is written at build time after a real
 * run (src/cli/bin.ts, `CACHE_OUT_ENV`), so it also holds the functions compiled lazily while
 * that run went on (V8: "the code cache contains the functions compiled so far").
 *
 * Cache file: "RVCC", the script's length in bytes (u32, little-endian), a copy of the script,
 * then V8's data. V8 itself checks its version, its flags and the source's length, and the
 * data's checksum only under `--verify-snapshot-checksum` (off in release builds: a flipped
 * byte in the data was taken and crashed Node 20 with SIGSEGV), so both sides here turn that
 * flag on around V8's part, and the copy, compared with the script byte for byte (a memcmp,
 * ~0.1 ms, where a checksum of our own meant loading zlib or crypto, 2-3 ms), ties the cache to
 * the exact script. A cache for another script, a truncated or corrupt file, or data V8 rejects
 * (another Node, other V8 flags) each cost the compile time it would have saved, never a
 * different behaviour.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { pathToFileURL } from "node:url";
import { setFlagsFromString } from "node:v8";
import { Script } from "node:vm";

/**
 * The name the bundle uses for its own `import.meta.url` (scripts/bundle.mjs defines
 * `import.meta.url` as this identifier): a CommonJS script has no `import.meta`.
 */
export const IMPORT_META_URL = "__regvisorImportMetaUrl";

/** The environment variable naming the file the bin writes the code cache to after its run. */
export const CACHE_OUT_ENV = "REGVISOR_CODE_CACHE_OUT";

/** What became of the code cache. */
export type CacheUse = "accepted" | "rejected" | "absent";

/** A script run by `loadScript`. */
export interface LoadedScript {
  /** What the script put in `module.exports`. */
  readonly exports: unknown;
  /** The compiled script, for `writeCodeCache`. */
  readonly script: Script;
  /** The script's bytes as read (a cache written for it holds a copy). */
  readonly source: Buffer;
  /** Whether V8 used the cache. */
  readonly cache: CacheUse;
}

const MAGIC = 0x43435652; // "RVCC"
const HEADER = 8;

// The script runs as a CommonJS module body, as Node's own loader wraps one.
const HEAD = `(function (exports, require, module, __filename, __dirname, ${IMPORT_META_URL}) {`;
const TAIL = "\n})";

/**
 * Runs `fn` under V8's `--verify-snapshot-checksum`, which makes a code cache carry a checksum
 * and be checked against it. Turned off again unless node's command line set it: the flag also
 * checksums the start-up snapshot of every new isolate (measured: +20-50 ms per Worker start).
 */
function withChecksums<T>(fn: () => T): T {
  const given = process.execArgv.some((a) => a.includes("verify-snapshot-checksum"));
  if (!given) setFlagsFromString("--verify-snapshot-checksum");
  try {
    return fn();
  } finally {
    if (!given) setFlagsFromString("--no-verify-snapshot-checksum");
  }
}

/** The V8 data of `cacheFile` if it was written for exactly `source`; otherwise undefined. */
function cacheFor(cacheFile: string, source: Buffer): Buffer | undefined {
  let file: Buffer;
  try {
    file = readFileSync(cacheFile);
  } catch {
    return undefined;
  }
  if (file.length < HEADER || file.readUInt32LE(0) !== MAGIC) return undefined;
  const end = HEADER + file.readUInt32LE(4);
  if (end >= file.length || !file.subarray(HEADER, end).equals(source)) return undefined;
  return file.subarray(end);
}

/**
 * Runs the CommonJS script `file` with the code cache in `cacheFile` (when there is one made for
 * this script) and returns its exports.
 * @throws what reading `file` or running it throws (a missing or broken bundle).
 */
export function loadScript(file: string, cacheFile: string): LoadedScript {
  const source = readFileSync(file);
  const cachedData = cacheFor(cacheFile, source);
  const text = HEAD + source.toString("utf8") + TAIL;
  const script =
    cachedData === undefined
      ? new Script(text, { filename: file })
      : withChecksums(() => new Script(text, { filename: file, cachedData }));
  const cache: CacheUse =
    cachedData === undefined
      ? "absent"
      : script.cachedDataRejected === true
        ? "rejected"
        : "accepted";
  const wrapper: unknown = script.runInThisContext();
  if (typeof wrapper !== "function") throw new TypeError(`${file} did not compile to a function`);
  const module = { exports: {} as unknown };
  const url = pathToFileURL(file).href;
  wrapper.call(
    module.exports,
    module.exports,
    createRequire(file),
    module,
    file,
    dirname(file),
    url,
  );
  return { exports: module.exports, script, source, cache };
}

/** Writes the code cache of `loaded` (with everything compiled so far) to `cacheFile`. */
export function writeCodeCache(loaded: LoadedScript, cacheFile: string): void {
  const data = withChecksums(() => loaded.script.createCachedData());
  const header = Buffer.alloc(HEADER);
  header.writeUInt32LE(MAGIC, 0);
  header.writeUInt32LE(loaded.source.length, 4);
  writeFileSync(cacheFile, Buffer.concat([header, loaded.source, data]));
}
