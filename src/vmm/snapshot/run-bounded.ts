/**
 * Running a restored machine to its end with the same ending options as `regvisor run FILE`:
 * a deadline (`--timeout`, status 124) and a stop request (SIGINT/SIGTERM, 128 + signo).
 *
 * A guest that spins without exits keeps KVM_RUN busy forever, so a deadline arms the SIGALRM
 * kicker (../runner-kick.ts), which makes KVM_RUN return EINTR; the soft backend returns at
 * every time slice anyway. Steps are interruptible, so every `intr` exit comes back here, where
 * the loop checks the deadline and lets the event loop run (for signal handlers).
 */
import { turnEventLoop } from "../event-loop.js";
import { startKicker } from "../runner-kick.js";
import { timeoutEnding } from "../runner-status.js";
import { POLL_INTERVAL_MS, type RunEnding, type StopSource } from "../runner-types.js";
import type { MachineStep, SnapshotMachine } from "./machine.js";

/** Options of `runMachineBounded()`. */
export interface BoundedRunOptions {
  /** Stop after this long (ms) with the timeout ending. */
  readonly timeoutMs?: number;
  /** Asked at every poll point: an ending to stop with. */
  readonly stop?: StopSource;
}

/** How a bounded run ended. */
export interface BoundedRun {
  /** The last exit the machine handled, if any. */
  readonly last: MachineStep | undefined;
  /** `finished`/`unexpected` as `runMachine`; `ended`: the timeout or a stop request. */
  readonly stopped: "finished" | "unexpected" | "ended";
  /** With `ended`: the timeout or stop ending (its status is the exit status). */
  readonly ending: RunEnding | undefined;
}

/**
 * Runs `m` until the guest ends, the deadline passes or `stop` asks; yields to the event loop
 * at every poll point.
 * @throws backend errors from `step()`.
 */
export async function runMachineBounded(
  m: SnapshotMachine,
  options: BoundedRunOptions = {},
): Promise<BoundedRun> {
  const start = performance.now();
  const { timeoutMs } = options;
  const deadline = timeoutMs === undefined ? undefined : start + timeoutMs;
  const kicker = timeoutMs === undefined ? undefined : startKicker(timeoutMs);
  try {
    return await loop(m, deadline, options, start);
  } finally {
    kicker?.[Symbol.dispose]();
  }
}

async function loop(
  m: SnapshotMachine,
  deadline: number | undefined,
  { timeoutMs, stop }: BoundedRunOptions,
  start: number,
): Promise<BoundedRun> {
  let last: MachineStep | undefined;
  let nextPoll = start + POLL_INTERVAL_MS;
  for (;;) {
    const step = m.step({ interruptible: true });
    if (step.outcome === "finished" || step.outcome === "unexpected")
      return { last: step, stopped: step.outcome, ending: undefined };
    if (step.outcome === "continue") last = step;
    const now = performance.now();
    if (deadline !== undefined && now >= deadline)
      return { last, stopped: "ended", ending: timeoutEnding(timeoutMs ?? 0) };
    if (step.outcome === "interrupted" || now >= nextPoll) {
      await turnEventLoop();
      nextPoll = performance.now() + POLL_INTERVAL_MS;
      const ending = stop?.requested();
      if (ending !== undefined) return { last, stopped: "ended", ending };
    }
  }
}
