/**
 * Child-Node probes of V8's optimization state, shared by the warm-up tests (fast-warm.test.ts,
 * ref-warm.test.ts): V8's status is only visible with --allow-natives-syntax, so a test runs its
 * script in a child with that flag, --expose-gc and --trace-deopt, and reads what follows
 * PROBE_MARK on the child's stdout — V8's deoptimization lines, then the script's JSON line.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

/** Full collections a probe runs after priming: enough for V8 to drop maps no live object uses. */
export const PROBE_GCS = 20;
/** What a probe prints right before its guest runs. */
export const PROBE_MARK = "guest starts";
/** V8's OptimizationStatus bit for TurboFan code (src/runtime/runtime.h, V8 11.3). */
export const TURBOFANNED = 1 << 6;

/** Runs `script` (an ES module) in a child Node; returns its stdout lines after PROBE_MARK. */
export function probeAfterMark(script: string): string[] {
  const r = spawnSync(
    process.execPath,
    ["--allow-natives-syntax", "--expose-gc", "--trace-deopt", "--input-type=module", "-e", script],
    { encoding: "utf8", timeout: 60_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  return lines.slice(lines.indexOf(PROBE_MARK) + 1);
}

/** The --trace-deopt lines of `lines` that deoptimize one of the functions named `names`. */
export function deoptsOf(lines: readonly string[], names: readonly string[]): string[] {
  return lines.filter(
    (l) => l.includes("bailout") && names.some((n) => l.includes(`<JSFunction ${n} `)),
  );
}
