// Preloaded (--import) by test/cli/lazy.test.ts: a resolve hook that makes any import of koffi
// fail, to prove that a command which needs no backend never loads native code.
import { register } from "node:module";

const hook = `export async function resolve(specifier, context, next) {
  if (specifier === "koffi") throw new Error("koffi was loaded");
  return next(specifier, context);
}`;
register("data:text/javascript," + encodeURIComponent(hook));
