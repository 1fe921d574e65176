/**
 * The package root: the directory of regvisor's own package.json, searched upward from this
 * module. Code runs from src/ (tests through tsc's output keep the tree), from dist/src/ (the
 * library) and from a chunk of the CLI bundle in dist/bin/ (scripts/bundle.mjs), so no fixed
 * number of `../` is right everywhere; the bundled guests and package.json sit at the root.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Whether `dir` holds regvisor's package.json (not a project that depends on regvisor). */
function isRoot(dir: string): boolean {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as unknown;
    return typeof pkg === "object" && pkg !== null && "name" in pkg && pkg.name === "regvisor";
  } catch {
    return false;
  }
}

/**
 * The directory of regvisor's package.json.
 * @throws {Error} when no directory above this module holds it (a copied-out module).
 */
export function packageRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (let dir = here; ; dir = dirname(dir)) {
    if (isRoot(dir)) return dir;
    if (dirname(dir) === dir) {
      throw new Error(`Cannot find regvisor's package.json in ${here} or above it`);
    }
  }
}
