// Preloaded (--import) by test/cli/lazy.test.ts: reports on stderr every regvisor module the
// process loads ("loaded src/…"), imported or require()d (src/abi/catalog.ts and
// src/cli/backends.ts require ES modules on first use, which Node 20's load hooks do not see),
// and "loaded node:crypto" at exit when that was loaded, so a test can check what a command pays
// for at start.
import Module, { register } from "node:module";

const hook = `export async function load(url, context, next) {
  const at = url.indexOf("/dist/src/");
  if (at >= 0) process.stderr.write("loaded " + url.slice(at + 6) + "\\n");
  return next(url, context);
}`;
register("data:text/javascript," + encodeURIComponent(hook));
const load = Module._load;
Module._load = function (request, parent, isMain) {
  const path = Module._resolveFilename(request, parent, isMain);
  const at = path.indexOf("/dist/src/");
  if (at >= 0) process.stderr.write("loaded " + path.slice(at + 6) + "\n");
  return load.call(this, request, parent, isMain);
};
process.on("exit", () => {
  if (process.moduleLoadList.includes("NativeModule crypto")) {
    process.stderr.write("loaded node:crypto\n");
  }
});
