/**
 * The C side of the side-by-side benchmarks: compiles a reference program from bench/c/ with
 * the machine's `cc -O2`, starts it once, and asks it for one measurement per round over its
 * stdin/stdout, one line each way.
 *
 * One long-lived process rather than one per round: starting a process forks Node, and the
 * copy-on-write faults Node takes afterwards (thousands per round here) would be charged to
 * whichever TypeScript round runs next. While one side measures, the other is blocked in a
 * read, so they never compete for the CPU they are pinned to.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** Compiles bench/c/<name>.c into `dir`; returns the binary's path or why it could not. */
export function compileReference(dir: string, name: string): { binary: string } | { skip: string } {
  const here = fileURLToPath(new URL(".", import.meta.url));
  const source = [join(here, `c/${name}.c`), join(here, `../../bench/c/${name}.c`)].find((p) =>
    existsSync(p),
  );
  if (source === undefined) return { skip: `bench/c/${name}.c not found` };
  const binary = join(dir, name);
  const cc = spawnSync("cc", ["-O2", "-pthread", "-o", binary, source], { encoding: "utf8" });
  if (cc.error !== undefined) return { skip: `cc unavailable: ${cc.error.message}` };
  if (cc.status !== 0) return { skip: `cc failed: ${cc.stderr.trim()}` };
  return { binary };
}

/** A running reference program that answers one request line with one result line. */
export class CReference {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;
  #stderr = "";

  constructor(binary: string, args: readonly string[]) {
    this.#child = spawn(binary, args, { stdio: ["pipe", "pipe", "pipe"] });
    this.#child.stderr.setEncoding("utf8");
    this.#child.stderr.on("data", (chunk: string) => {
      this.#stderr += chunk;
    });
    this.#lines = createInterface({ input: this.#child.stdout })[Symbol.asyncIterator]();
  }

  /** Sends `request` and resolves with the program's one-line answer. */
  async ask(request: string): Promise<string> {
    this.#child.stdin.write(request + "\n");
    const next = await this.#lines.next();
    if (next.done === true) {
      const code = await this.#exitCode();
      throw new Error(`C reference exited (${code}) on "${request}": ${this.#stderr.trim()}`);
    }
    return next.value;
  }

  #exitCode(): Promise<string> {
    const child = this.#child;
    if (child.exitCode !== null || child.signalCode !== null)
      return Promise.resolve(String(child.exitCode ?? child.signalCode));
    return new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        resolve(String(code ?? signal));
      });
    });
  }

  /** Closes its stdin (it exits at EOF) and waits for it. */
  async close(): Promise<void> {
    this.#child.stdin.end();
    await this.#exitCode();
  }
}
