/**
 * The bundled CLI's loader (src/cli/code-cache.ts, src/cli/bin.ts): a script runs the same with
 * its code cache, without it, and with a cache that is corrupt, truncated, made for another
 * script or under other V8 flags; only the time differs. And the cache `npm run build` writes
 * is the one a run uses (a V8 flag set after the CLI is compiled would make V8 reject it).
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { IMPORT_META_URL } from "../../src/cli/code-cache.js";
import { REPO } from "./run-file-helpers.js";

const dir = mkdtempSync(join(tmpdir(), "regvisor-code-cache-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A CommonJS script using what the loader passes in, with a function compiled lazily. */
function fixture(name: string, factor: number): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    [
      `// ${name}`,
      `const { basename } = require("node:path");`,
      `function scale(x) { return x * ${String(factor)}; }`,
      `module.exports = { scale, file: basename(__filename), url: ${IMPORT_META_URL}, self: exports === module.exports };`,
      "",
    ].join("\n"),
  );
  return file;
}

const LOADER = pathToFileURL(join(REPO, "dist/src/cli/code-cache.js")).href;

/**
 * Runs `code` (an ES module that has `loadScript` and `writeCodeCache`) in a new node process:
 * V8 keeps each script it compiled in an in-memory cache and would not even look at the code
 * cache of a source compiled before in the same process.
 */
function inNode(code: string, flags: readonly string[] = []): string {
  const head = `import { loadScript, writeCodeCache } from ${JSON.stringify(LOADER)};`;
  const r = spawnSync(process.execPath, [...flags, "--input-type=module", "-e", head + code], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

/** Writes the code cache of `file` after calling its lazily compiled function. */
function makeCache(file: string, cache: string, flags: readonly string[] = []): void {
  inNode(
    `const l = loadScript(${JSON.stringify(file)}, "");
     l.exports.scale(1);
     writeCodeCache(l, ${JSON.stringify(cache)});`,
    flags,
  );
}

/** Loads `file` with `cache` in a new process, checks what it exports; says what V8 did. */
function loadChecked(file: string, cache: string, factor: number): string {
  const out = inNode(
    `const l = loadScript(${JSON.stringify(file)}, ${JSON.stringify(cache)});
     const e = l.exports;
     console.log(JSON.stringify({ cache: l.cache, scaled: e.scale(7), file: e.file, url: e.url, self: e.self }));`,
  );
  const seen = JSON.parse(out) as Record<string, unknown>;
  assert.deepEqual(
    { ...seen, cache: undefined },
    {
      cache: undefined,
      scaled: 7 * factor,
      file: file.slice(dir.length + 1),
      url: pathToFileURL(file).href,
      self: true,
    },
  );
  return String(seen.cache);
}

/** A copy of `from` with one byte flipped at `at` (from the start of V8's data). */
function damaged(
  from: string,
  to: string,
  script: string,
  at: (dataLength: number) => number,
): void {
  const bytes = readFileSync(from);
  const start = 8 + readFileSync(script).length;
  const i = start + at(bytes.length - start);
  bytes[i] = (bytes[i] ?? 0) ^ 0xff;
  writeFileSync(to, bytes);
}

describe("loadScript() runs a script the same with or without its code cache", () => {
  it("without a cache file", () => {
    const script = fixture("a1.cjs", 3);
    assert.equal(loadChecked(script, join(dir, "missing.cache"), 3), "absent");
  });

  it("with the cache written after a run: V8 takes it", () => {
    const script = fixture("a2.cjs", 3);
    makeCache(script, join(dir, "a2.cache"));
    assert.equal(loadChecked(script, join(dir, "a2.cache"), 3), "accepted");
  });

  it("with a flipped byte anywhere in V8's data: V8 rejects it", () => {
    const script = fixture("a3.cjs", 3);
    makeCache(script, join(dir, "a3.cache"));
    const bad = join(dir, "a3-bad.cache");
    for (const at of [(n: number) => n >> 1, (n: number) => n - 64, (n: number) => n - 1]) {
      damaged(join(dir, "a3.cache"), bad, script, at);
      assert.notEqual(loadChecked(script, bad, 3), "accepted");
    }
  });

  it("with a truncated cache, or one that is not a cache", () => {
    const script = fixture("a4.cjs", 3);
    makeCache(script, join(dir, "a4.cache"));
    const bytes = readFileSync(join(dir, "a4.cache"));
    const cut = join(dir, "a4-cut.cache");
    const start = 8 + readFileSync(script).length;
    for (const length of [0, 3, 8, start, start + ((bytes.length - start) >> 1)]) {
      writeFileSync(cut, bytes.subarray(0, length));
      assert.notEqual(loadChecked(script, cut, 3), "accepted", `cut at ${String(length)}`);
    }
    writeFileSync(cut, "not a cache at all");
    assert.equal(loadChecked(script, cut, 3), "absent");
  });

  it("with the cache of another script of the same length: not used", () => {
    const script = fixture("a5.cjs", 3);
    makeCache(script, join(dir, "a5.cache"));
    const other = fixture("b5.cjs", 5);
    assert.equal(readFileSync(other).length, readFileSync(script).length);
    assert.equal(loadChecked(other, join(dir, "a5.cache"), 5), "absent");
  });

  it("with a cache made under other V8 flags: V8 rejects it", () => {
    const script = fixture("a6.cjs", 3);
    makeCache(script, join(dir, "a6.cache"), ["--wasm-tiering-budget=1234"]);
    assert.equal(loadChecked(script, join(dir, "a6.cache"), 3), "rejected");
  });
});

describe("the regvisor executable with its code cache, without it and with a bad one", () => {
  // A copy of the package's dist/bin, so the cache can be removed and damaged.
  const pkg = join(dir, "pkg");
  const bin = join(pkg, "dist", "bin");
  mkdirSync(join(pkg, "dist"), { recursive: true });
  cpSync(join(REPO, "dist", "bin"), bin, { recursive: true });
  cpSync(join(REPO, "package.json"), join(pkg, "package.json"));
  for (const link of ["guests", "node_modules", "build"]) {
    symlinkSync(join(REPO, link), join(pkg, link));
  }
  const cacheFile = join(bin, "cli.cache");
  const built = readFileSync(cacheFile);

  function regvisor(argv: string[]): { status: number | null; out: string; cache: string } {
    const r = spawnSync(process.execPath, [join(bin, "regvisor.js"), ...argv], {
      encoding: "utf8",
      env: { ...process.env, NODE_DEBUG: "regvisor" },
    });
    const cache = /^REGVISOR \d+: code cache (\w+)$/m.exec(r.stderr)?.[1] ?? "(not said)";
    const stderr = r.stderr.replace(/^REGVISOR \d+: .*\n/m, "");
    return { status: r.status, out: `${r.stdout}\n--- stderr\n${stderr}`, cache };
  }

  const COMMANDS = [
    ["--version"],
    ["run", "--backend", "soft"],
    ["run", "--backend", "soft", "--bogus"],
  ];

  it("runs each command the same way in every case", () => {
    const corrupt = Buffer.from(built);
    const at = corrupt.length - 64;
    corrupt[at] = (corrupt[at] ?? 0) ^ 0xff;
    const cases: [string, Buffer | undefined, string][] = [
      ["as built", built, "accepted"],
      ["absent", undefined, "absent"],
      ["corrupt", corrupt, "rejected"],
    ];
    const outputs = new Map<string, string>();
    for (const [name, bytes, expected] of cases) {
      rmSync(cacheFile, { force: true });
      if (bytes !== undefined) writeFileSync(cacheFile, bytes);
      for (const argv of COMMANDS) {
        const r = regvisor(argv);
        assert.equal(r.cache, expected, `${name}: ${argv.join(" ")}`);
        const seen = `status ${String(r.status)}\n${r.out}`;
        const key = argv.join(" ");
        const first = outputs.get(key);
        if (first === undefined) outputs.set(key, seen);
        else assert.equal(seen, first, `${name}: ${key}`);
      }
    }
    assert.match(outputs.get("--version") ?? "", /^status 0\n\d+\.\d+\.\d+\n/);
    assert.match(outputs.get("run --backend soft") ?? "", /^status 0\n[^]*fib\(90\) = /);
    assert.match(outputs.get("run --backend soft --bogus") ?? "", /^status 2\n/);
  });

  it("the built cache is the one a soft run uses (npm run build wrote it for these flags)", () => {
    writeFileSync(cacheFile, built);
    const r = regvisor(["run", "--backend", "soft"]);
    assert.equal(r.status, 0, r.out);
    assert.equal(r.cache, "accepted");
  });
});
