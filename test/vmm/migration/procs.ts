/**
 * Test helper: a live migration between two `regvisor run` processes — the source runs a guest
 * with `--api`, the destination waits with `--incoming` — driven through `regvisor ctl migrate`.
 */
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const BIN = fileURLToPath(new URL("../../../src/cli/bin.js", import.meta.url));

/** A spawned regvisor whose output is collected. */
export interface Proc {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  /** Resolves with the exit status. */
  readonly exited: Promise<number | null>;
  /** Resolves once stdout matches. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

/** Spawns `regvisor argv` (extra: a wrapper command such as `ip netns exec NS`). */
export function start(argv: readonly string[], wrapper: readonly string[] = []): Proc {
  const [cmd, ...rest] = [...wrapper, process.execPath, BIN, ...argv];
  const child = spawn(cmd ?? process.execPath, rest, { stdio: ["ignore", "pipe", "pipe"] });
  const proc: Proc = {
    child,
    stdout: "",
    stderr: "",
    exited: new Promise((resolve) => {
      child.on("exit", (code) => {
        resolve(code);
      });
    }),
    waitFor: (pattern, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        const check = (): boolean => {
          if (!pattern.test(proc.stdout)) return false;
          clearTimeout(timer);
          child.stdout.off("data", check);
          resolve();
          return true;
        };
        const timer = setTimeout(() => {
          reject(
            new Error(
              `no ${String(pattern)} within ${timeoutMs} ms\nstdout: ${proc.stdout.slice(-400)}\nstderr: ${proc.stderr}`,
            ),
          );
        }, timeoutMs);
        if (!check()) child.stdout.on("data", check);
      }),
  };
  child.stdout.on("data", (b: Buffer) => (proc.stdout += b.toString()));
  child.stderr.on("data", (b: Buffer) => (proc.stderr += b.toString()));
  return proc;
}

/** Runs `regvisor ctl …` to its end. */
export function ctl(
  argv: readonly string[],
  wrapper: readonly string[] = [],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, ...rest] = [...wrapper, process.execPath, BIN, "ctl", ...argv];
  return new Promise((resolve) => {
    execFile(cmd ?? process.execPath, rest, { timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Directories tempDir() made, removed when the test process exits. */
const made: string[] = [];

/** A fresh directory for sockets, removed (with what is in it) when the test process exits. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "rgv-migr-"));
  if (made.length === 0) {
    process.on("exit", () => {
      for (const d of made) rmSync(d, { recursive: true, force: true });
    });
  }
  made.push(dir);
  return dir;
}

/** The tick numbers of a dirtier guest's progress lines, in order. */
export function ticks(stdout: string): number[] {
  return [...stdout.matchAll(/^tick (\d+) /gm)].map((m) => Number(m[1]));
}

/**
 * Asserts the guest's console, the source's output followed by the destination's (a line may
 * be cut where the guest moved), holds every progress line once and in order — the source's
 * last and the destination's first are consecutive, guest time went on — and ends with the
 * guest's own PASS (every page as last written). The destination printed ticks of its own.
 */
export function assertContinued(
  source: string,
  destination: string,
  ended = true,
  destinationTicks = true,
): void {
  const all = ticks(source + destination);
  assert.ok(ticks(source).length > 0, `the source printed no progress: ${source.slice(-300)}`);
  assert.ok(
    !destinationTicks || /tick \d+ /.test(destination),
    `the destination printed no progress: ${destination.slice(-300)}`,
  );
  assert.deepEqual(
    all,
    all.map((_, i) => i + 1),
    "the guest's ticks continue across the move",
  );
  if (ended) assert.match(destination, /^PASS dirty \d+ pages/m);
  assert.doesNotMatch(source + destination, /FAIL/);
}

/** Attempts a test makes when the race it depends on is lost (`RaceLost`), before it fails. */
export const RACE_ATTEMPTS = 3;

/** Thrown by an attempt that lost a timing race the test cannot close (not a product failure). */
export class RaceLost extends Error {}

/**
 * Pauses the guest behind `api` the moment /init started, or throws RaceLost when /init had
 * already finished its report ("init: power off" on `proc`'s console): /init runs for well
 * under a second on a fast engine, and nothing in it waits for the host.
 */
export async function pauseAfterInitStarted(api: string, proc: Proc): Promise<void> {
  const { apiRequest } = await import("../../../src/vmm/api/client.js");
  let status: number | undefined;
  try {
    status = (await apiRequest(api, "PUT", "/pause")).status;
  } catch (error) {
    // The guest may have powered off, taking its control socket with it, before its last
    // console lines reached us: give the process a moment to end and its output to arrive.
    await Promise.race([proc.exited, new Promise((resolve) => setTimeout(resolve, 2000))]);
    if (/^init: power off/m.test(proc.stdout)) throw new RaceLost("the guest powered off first");
    throw error;
  }
  if (/^init: power off/m.test(proc.stdout)) throw new RaceLost("the guest powered off first");
  assert.equal(status, 200, `PUT /pause answered ${String(status)}`);
}

/** The skip option of a Linux migration test: the reason when the Image is not built. */
export function linuxSkip(
  found: { readonly image: string } | { readonly skip: string },
): string | false {
  return "skip" in found
    ? `Linux guest not built (bash scripts/build-linux.sh): ${found.skip}`
    : false;
}

/**
 * Runs `attempt` until it does not lose its race, at most RACE_ATTEMPTS times; each lost race is
 * reported as a diagnostic of test `t`, so a retry is visible in the test output.
 */
export async function withRaceRetries(
  t: { diagnostic(line: string): void },
  attempt: () => Promise<void>,
): Promise<void> {
  for (let n = 1; ; n++) {
    try {
      await attempt();
      return;
    } catch (error) {
      if (!(error instanceof RaceLost) || n >= RACE_ATTEMPTS) throw error;
      t.diagnostic(`attempt ${n} lost its race (${error.message}); trying again`);
    }
  }
}

/** Resolves once the processes' stdout, joined in order, matches `pattern` (a guest that moved). */
export async function joinedConsoleMatches(
  procs: readonly Proc[],
  pattern: RegExp,
  timeoutMs = 20_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const joined = procs.map((p) => p.stdout).join("");
    if (pattern.test(joined)) return;
    if (Date.now() > end) {
      throw new Error(
        `no ${String(pattern)} within ${timeoutMs} ms\nconsole: ${joined.slice(-400)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Resolves once a `run --incoming` process says it listens (its stderr line). */
export async function listening(proc: Proc, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!proc.stderr.includes("waiting for a migration")) {
    if (Date.now() > end) throw new Error(`the destination never listened: ${proc.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
