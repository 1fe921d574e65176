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
//   kvm.js, x86-boot.js, catalog-<arch>.js   modules required on first use (see LAZY below)
//   chunk-*.js, <name>-*.js   code shared by entries, and each dynamic import() on its own
// `--splitting` keeps each `await import()` a file of its own, loaded when the command needs it.
//
// The synchronous lazy loads (`createRequire(import.meta.url)` + a literal `require()` of an ES
// module: src/cli/backends.ts, src/abi/catalog.ts, src/vmm/boot-plan.ts) become entries of their
// own, and each `require("<source path>")` is rewritten to `require("./<entry>.js")`, checked to
// be present exactly once so that a change in the source fails here. esbuild could bundle such a
// require() itself, as code run on first call, but it would still be parsed at every start, and
// an external import in it (the KVM backend's koffi) would be hoisted to the top of the chunk
// that requires it, loading koffi (~20 ms) at every start. Node's require() of an ES module
// shares its instances with the import graph: the same classes, the same chunks.
import { build } from "esbuild";
import { readFile, rm } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outdir = join(root, "dist", "bin");
const CATALOG_ARCHES = ["x86", "arm64", "arm", "riscv", "s390", "ppc", "mips", "loongarch"];

/** Lazily required modules: requiring file (from the root) → { specifier: entry name }. */
const LAZY = {
  "src/cli/backends.ts": { "../backends/kvm/index.js": "kvm" },
  "src/vmm/boot-plan.ts": { "./x86-boot.js": "x86-boot" },
  "src/abi/catalog.ts": Object.fromEntries(
    CATALOG_ARCHES.map((arch) => [`./arch/${arch}/index.js`, `catalog-${arch}`]),
  ),
};

/** Source files whose `import.meta.url`-relative paths assume a chunk directly in dist/bin. */
const AT_TOP = [
  "src/backends/soft/create.ts",
  "src/backends/soft/threaded.ts",
  "src/backends/kvm/run-worker.ts",
  ...Object.keys(LAZY),
];

const rewrite = {
  name: "regvisor-lazy-require",
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      const file = relative(root, args.path).split(sep).join("/");
      const lazy = LAZY[file];
      if (lazy === undefined) return undefined;
      let text = await readFile(args.path, "utf8");
      for (const [specifier, entry] of Object.entries(lazy)) {
        const from = `require("${specifier}")`;
        const count = text.split(from).length - 1;
        if (count !== 1) throw new Error(`${file}: expected ${from} once, found ${count}`);
        text = text.replace(from, `require("./${entry}.js")`);
      }
      return { contents: text, loader: "ts" };
    });
  },
};

/** The entry point of each lazily required module, resolved beside its requiring file. */
function lazyEntries() {
  const entries = {};
  for (const [file, lazy] of Object.entries(LAZY)) {
    for (const [specifier, entry] of Object.entries(lazy)) {
      entries[entry] = join(dirname(file), specifier).replace(/\.js$/, ".ts");
    }
  }
  return entries;
}

await rm(outdir, { recursive: true, force: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: {
    regvisor: "src/cli/bin.ts",
    worker: "src/backends/soft/worker.ts",
    "run-thread": "src/backends/kvm/run-thread.ts",
    "riscv/hart": "src/backends/soft/riscv/hart.ts",
    ...lazyEntries(),
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

for (const file of Object.keys(LAZY)) {
  if (!(file in result.metafile.inputs)) throw new Error(`${file} is no longer in the bundle`);
}
for (const [out, meta] of Object.entries(result.metafile.outputs)) {
  const misplaced = AT_TOP.filter((f) => f in meta.inputs);
  if (misplaced.length > 0 && dirname(join(root, out)) !== outdir) {
    throw new Error(`${misplaced.join(", ")} bundled into ${out}, not directly in dist/bin`);
  }
}
