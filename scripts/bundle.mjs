// Bundles the `regvisor` executable into dist/bin/ with esbuild, and writes V8's code cache for
// it (issue 13: process start counts in the Linux boot benchmark). Run by `npm run build` after
// tsc; the library entry points (package.json "exports") stay tsc's output in dist/src/.
//
// Layout, all in dist/bin/ (one directory, so every `new URL("./x.js", import.meta.url)` in the
// bundle names a file beside it):
//   regvisor.js     the executable (package.json "bin", src/cli/bin.ts): loads cli.cjs with its
//                   code cache (src/cli/code-cache.ts)
//   cli.cjs         the CLI (src/cli/cli.ts) and everything it may load, one CommonJS script
//   cli.cache       V8's code cache for cli.cjs, written after a run of the RISC-V demo
//   worker.js       the soft backend's vCPU worker (src/backends/soft/threaded.ts loads ./worker.js)
//   run-thread.js   the KVM backend's KVM_RUN thread (src/backends/kvm/run-worker.ts)
//   riscv/hart.js   the built-in hart, imported by workers (src/backends/soft/create.ts)
//   chunk-*.js      code the three worker entries share (ES modules)
//
// Why one script: Node 20 keeps no compile cache for ES modules, and loading the CLI as ~50
// chunks cost ~60 ms per start (compiling, resolving, reading and linking them); a script
// compiled with V8's cache skips all of that. Code the command does not use is not run: each
// `await import()` becomes a module initialized on first use, and so does each synchronous lazy
// load (`createRequire(import.meta.url)` + a literal `require()` of an ES module:
// src/cli/backends.ts, src/abi/catalog.ts, src/vmm/boot-plan.ts): here their `require` is the
// script's own, which esbuild follows, so the KVM backend's koffi is required when the backend
// is, not at every start. `import.meta.url` is the script's file URL, passed in by the loader.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outdir = join(root, "dist", "bin");
// tsc has run (`npm run build`): the loader's names come from its output, one fact in one place.
const { CACHE_OUT_ENV, IMPORT_META_URL } = await import(
  pathToFileURL(join(root, "dist/src/cli/code-cache.js")).href
);

/** Files that load ES modules synchronously through their own `createRequire(import.meta.url)`. */
const LAZY = ["src/cli/backends.ts", "src/vmm/boot-plan.ts", "src/abi/catalog.ts"];
const OWN_REQUIRE = "const require = createRequire(import.meta.url);";

/**
 * The worker entries are ES modules named .mjs in dist/bin, whose package.json says CommonJS
 * (for regvisor.js): source file → [the URL its `new URL(…, import.meta.url)` names, renamed].
 */
const WORKER_URLS = {
  "src/backends/soft/threaded.ts": ['new URL("./worker.js"', 'new URL("./worker.mjs"'],
  "src/backends/kvm/run-worker.ts": ['new URL("./run-thread.js"', 'new URL("./run-thread.mjs"'],
  "src/backends/soft/create.ts": ['new URL("./riscv/hart.js"', 'new URL("./riscv/hart.mjs"'],
};

/** Source files whose `import.meta.url`-relative paths assume they run from dist/bin. */
const AT_TOP = Object.keys(WORKER_URLS);

const fromRoot = (path) => relative(root, path).split(sep).join("/");

/** `text` with `from` replaced by `to`, which must occur exactly once (a source change fails here). */
function replaceOnce(file, text, from, to) {
  const count = text.split(from).length - 1;
  if (count !== 1) throw new Error(`${file}: expected ${from} once, found ${count}`);
  return text.replace(from, to);
}

/**
 * Source edits for dist/bin: the worker URLs (both builds) and, in the CLI script only, the
 * LAZY files' `require`, made the script's own so that esbuild bundles what they require.
 */
function rewrite(script) {
  return {
    name: "regvisor-rewrite",
    setup(b) {
      b.onLoad({ filter: /\.ts$/ }, async (args) => {
        const file = fromRoot(args.path);
        const url = WORKER_URLS[file];
        const lazy = script && LAZY.includes(file);
        if (url === undefined && !lazy) return undefined;
        let text = await readFile(args.path, "utf8");
        if (url !== undefined) text = replaceOnce(file, text, url[0], url[1]);
        if (lazy) text = replaceOnce(file, text, OWN_REQUIRE, "");
        return { contents: text, loader: "ts" };
      });
    },
  };
}

/** The executable imports the CLI's modules only where no cli.cjs sits beside it (tsc's output). */
const binOnly = {
  name: "regvisor-bin",
  setup(b) {
    b.onResolve({ filter: /^\.\/cli\.js$/ }, (args) =>
      fromRoot(args.importer) === "src/cli/bin.ts"
        ? { path: args.path, external: true }
        : undefined,
    );
  },
};

const common = {
  absWorkingDir: root,
  bundle: true,
  platform: "node",
  target: "node20",
  // koffi ships a native library per platform: it stays a package, resolved from node_modules.
  external: ["koffi"],
  metafile: true,
  logLevel: "warning",
};

/** CommonJS output: `import.meta.url` is an identifier, the loader's argument or the banner's. */
const commonJs = { format: "cjs", define: { "import.meta.url": IMPORT_META_URL } };

await rm(outdir, { recursive: true, force: true });
const [script, workers] = await Promise.all([
  build({
    ...common,
    ...commonJs,
    entryPoints: ["src/cli/cli.ts"],
    outfile: join(outdir, "cli.cjs"),
    minifyWhitespace: true,
    charset: "ascii",
    plugins: [rewrite(true)],
  }),
  build({
    ...common,
    entryPoints: {
      worker: "src/backends/soft/worker.ts",
      "run-thread": "src/backends/kvm/run-thread.ts",
      "riscv/hart": "src/backends/soft/riscv/hart.ts",
    },
    outdir,
    outExtension: { ".js": ".mjs" },
    splitting: true,
    format: "esm",
    plugins: [rewrite(false)],
  }),
  build({
    ...common,
    ...commonJs,
    entryPoints: ["src/cli/bin.ts"],
    outfile: join(outdir, "regvisor.js"),
    banner: {
      js: `const ${IMPORT_META_URL} = require("node:url").pathToFileURL(__filename).href;`,
    },
    plugins: [binOnly],
  }),
  mkdir(outdir, { recursive: true }).then(() =>
    writeFile(join(outdir, "package.json"), JSON.stringify({ type: "commonjs" }, null, 2) + "\n"),
  ),
]);

for (const file of LAZY) {
  if (!(file in script.metafile.inputs)) throw new Error(`${file} is no longer in the CLI script`);
  // In an ES module chunk their require() would name a source path that dist/bin does not have.
  if (file in workers.metafile.inputs) throw new Error(`${file} is now in a worker's bundle`);
}
for (const [out, meta] of Object.entries(workers.metafile.outputs)) {
  const misplaced = AT_TOP.filter((f) => f in meta.inputs);
  if (misplaced.length > 0 && dirname(join(root, out)) !== outdir) {
    throw new Error(`${misplaced.join(", ")} bundled into ${out}, not directly in dist/bin`);
  }
}

// The code cache: written by the executable itself after a run of the RISC-V demo on the soft
// backend, so it holds what such a run compiles and was made under the flags a run sets.
const bin = join(outdir, "regvisor.js");
const cache = join(outdir, "cli.cache");
const made = spawnSync(process.execPath, [bin, "run", "--backend", "soft"], {
  encoding: "utf8",
  env: { ...process.env, [CACHE_OUT_ENV]: cache },
});
if (made.status !== 0 || !existsSync(cache)) {
  throw new Error(`the run writing ${cache} failed (status ${made.status}): ${made.stderr}`);
}
// And V8 takes it: a flag the program sets after loading the CLI would make it reject the cache.
const check = spawnSync(process.execPath, [bin, "--version"], {
  encoding: "utf8",
  env: { ...process.env, NODE_DEBUG: "regvisor" },
});
if (!/code cache accepted/.test(check.stderr)) {
  throw new Error(`${cache} is not used by a run: ${check.stderr}`);
}
