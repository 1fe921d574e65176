// Preloaded (--import) by test/cli/lazy.test.ts: reports on stderr every regvisor module the
// process loads ("loaded src/…"), and "loaded node:crypto" at exit when that was loaded, so a
// test can check what a command pays for at start.
import { register } from "node:module";

const hook = `export async function load(url, context, next) {
  const at = url.indexOf("/dist/src/");
  if (at >= 0) process.stderr.write("loaded " + url.slice(at + 6) + "\\n");
  return next(url, context);
}`;
register("data:text/javascript," + encodeURIComponent(hook));
process.on("exit", () => {
  if (process.moduleLoadList.includes("NativeModule crypto")) {
    process.stderr.write("loaded node:crypto\n");
  }
});
