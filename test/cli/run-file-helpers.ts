/**
 * Test helper for `regvisor run FILE`: spawning the CLI, building the repo's own test guests
 * (guests/{riscv,x86}/tests/build.sh) once per test file, and the one-line-error check.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// The shipped executable (package.json "bin"), bundled by scripts/bundle.mjs.
const BIN = fileURLToPath(new URL("../../bin/regvisor.js", import.meta.url));

/** The repository root (from dist/test/cli or test/cli). */
export const REPO = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "guests", "riscv", "tests"))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
})();

/** What a spawned `regvisor` did. */
export interface Spawned {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `regvisor …` with `input` on stdin (empty by default, so the guest sees EOF). */
export function regvisor(argv: readonly string[], input = ""): Spawned {
  const r = spawnSync(process.execPath, [BIN, ...argv], {
    encoding: "utf8",
    input,
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Whether `cmd` is on PATH. */
export function hasCommand(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

/**
 * Runs a guest build script once; returns a skip reason when a tool is missing or the build
 * fails, else undefined (the outputs are in `<dir>/build`).
 */
export function buildGuests(dir: string, tools: readonly string[]): string | undefined {
  const missing = tools.filter((t) => !hasCommand(t));
  if (missing.length > 0) return `${missing.join(", ")} not installed (run scripts/setup.sh)`;
  try {
    execFileSync("bash", [join(REPO, dir, "build.sh")], { stdio: "pipe" });
    return undefined;
  } catch (error) {
    const stderr = error instanceof Error && "stderr" in error ? String(error.stderr) : "";
    return `${dir}/build.sh failed: ${stderr.trim().split("\n")[0] ?? ""}`;
  }
}

/** Asserts an error the user can read: the status, one line on stderr, no stack trace. */
export function assertOneLineError(r: Spawned, status: number, pattern: RegExp): void {
  assert.equal(r.status, status, r.stderr);
  assert.match(r.stderr, /^regvisor: [^\n]+\n$/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.match(r.stderr, pattern);
}

/** The last stderr line (the ending of a run). */
export function lastLine(stderr: string): string {
  const lines = stderr.trimEnd().split("\n");
  return lines[lines.length - 1] ?? "";
}
