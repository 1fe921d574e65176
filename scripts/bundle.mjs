// Bundles the `regvisor` executable (src/cli/bin.ts) into dist/bin/ with esbuild: Node then
// reads, compiles and links a few large files instead of ~110 small modules at every start
// (issue 13: process start counts in the Linux boot benchmark). Run by `npm run build` after
// tsc; the library entry points (package.json "exports") stay tsc's output in dist/src/.
//
// Layout, all in dist/bin/ (one directory, so every `new URL("./x.js", import.meta.url)` in a
// chunk names a file beside it):
//   regvisor.js     the CLI (package.json "bin")
//   worker.js       the soft backend's vCPU worker (src/backends/soft/threaded.ts loads ./worker.js)
//   run-thread.js   the KVM backend's KVM_RUN thread (src/backends/kvm/run-worker.ts)
//   riscv/hart.js   the built-in hart, imported by workers (src/backends/soft/create.ts)
//   kvm.js          the KVM backend, required on first use (src/cli/backends.ts)
//   chunk-*.js, <name>-*.js   code shared by entries, and each dynamic import() on its own
// `--splitting` keeps each `await import()` a file of its own, loaded when the command needs it.
//
// The synchronous lazy loads (`createRequire(import.meta.url)` + `require()` of an ES module)
// are rewritten, each checked to be present exactly once so a change in the source fails here:
// - src/abi/catalog.ts and src/vmm/boot-plan.ts: esbuild bundles a plain `require()` of an ES
//   module as code that runs on the first call (still lazy), so their createRequire line goes;
// - src/cli/backends.ts: the KVM backend imports koffi, and esbuild would hoist that import to
//   the top of the chunk that requires it, loading koffi (~20 ms) at every start; so the backend
//   is the entry kvm.js, required by Node at run time (Node's require() of an ES module shares
//   its instances with the import graph: the same classes, the same chunks).
import { build } from "esbuild";
import { readFile, rm } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outdir = join(root, "dist", "bin");
const CREATE_REQUIRE = "const require = createRequire(import.meta.url);";

/** Source rewrites: file (from the root) → [from, to] pairs, each present exactly once. */
const REWRITES = {
  "src/abi/catalog.ts": [[CREATE_REQUIRE, ""]],
  "src/vmm/boot-plan.ts": [[CREATE_REQUIRE, ""]],
  "src/cli/backends.ts": [['require("../backends/kvm/index.js")', 'require("./kvm.js")']],
};

/** Source files whose `import.meta.url`-relative paths assume a chunk directly in dist/bin. */
const AT_TOP = [
  "src/backends/soft/create.ts",
  "src/backends/soft/threaded.ts",
  "src/backends/kvm/run-worker.ts",
  "src/cli/backends.ts",
];

const rewrite = {
  name: "regvisor-lazy-require",
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      const file = relative(root, args.path).split(sep).join("/");
      const pairs = REWRITES[file];
      if (pairs === undefined) return undefined;
      let text = await readFile(args.path, "utf8");
      for (const [from, to] of pairs) {
        const count = text.split(from).length - 1;
        if (count !== 1) throw new Error(`${file}: expected "${from}" once, found ${count}`);
        text = text.replace(from, to);
      }
      return { contents: text, loader: "ts" };
    });
  },
};

await rm(outdir, { recursive: true, force: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: {
    regvisor: "src/cli/bin.ts",
    worker: "src/backends/soft/worker.ts",
    "run-thread": "src/backends/kvm/run-thread.ts",
    "riscv/hart": "src/backends/soft/riscv/hart.ts",
    kvm: "src/backends/kvm/index.ts",
  },
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // koffi ships a native library per platform: it stays a package, resolved from node_modules.
  external: ["koffi"],
  plugins: [rewrite],
  metafile: true,
  logLevel: "warning",
});

for (const file of Object.keys(REWRITES)) {
  if (!(file in result.metafile.inputs)) throw new Error(`${file} is no longer in the bundle`);
}
for (const [out, meta] of Object.entries(result.metafile.outputs)) {
  const misplaced = AT_TOP.filter((f) => f in meta.inputs);
  if (misplaced.length > 0 && dirname(join(root, out)) !== outdir) {
    throw new Error(`${misplaced.join(", ")} bundled into ${out}, not directly in dist/bin`);
  }
}
