/**
 * Getting a vCPU out of KVM_RUN at a deadline. A guest spinning without exits keeps the main
 * thread inside the ioctl, where no JavaScript timer can fire. KVM_RUN returns EINTR when a
 * signal with a handler is delivered to the thread running it (virt/kvm/kvm_main.c and
 * arch/x86/kvm/x86.c `vcpu_run`: `signal_pending` → KVM_EXIT_INTR / -EINTR), which the KVM
 * backend reports as an `intr` exit.
 *
 * So: a handler for SIGALRM is installed (Node then routes the signal to libuv instead of the
 * default "terminate"), and a small Worker sleeps until the deadline, then sends SIGALRM to the
 * process every `KICK_INTERVAL_MS` until it is disposed. A process-directed signal goes to the
 * main thread when that thread does not block it (kernel/signal.c `complete_signal` prefers the
 * thread group leader), and the repetition covers a signal that lands just before the ioctl.
 */
import { Worker } from "node:worker_threads";

/** How often the kicker repeats the signal after the deadline. */
export const KICK_INTERVAL_MS = 20;

// CommonJS, evaluated in the Worker: sleep on the flag until the deadline, then signal until
// the flag is set. Atomics.wait returns early when the flag changes (dispose before deadline).
const KICKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const flag = new Int32Array(workerData.flag);
const delay = Math.max(0, workerData.deadline - Date.now());
Atomics.wait(flag, 0, 0, delay);
while (Atomics.load(flag, 0) === 0) {
  process.kill(process.pid, "SIGALRM");
  Atomics.wait(flag, 0, 0, workerData.interval);
}
`;

const ignore = (): void => undefined;

/**
 * Starts kicking the process with SIGALRM `delayMs` from now, until disposed.
 * @throws RangeError when `delayMs` is negative or not finite.
 */
export function startKicker(delayMs: number): Disposable {
  if (!Number.isFinite(delayMs) || delayMs < 0) {
    throw new RangeError(`the kicker delay must be a finite number of ms ≥ 0, got ${delayMs}`);
  }
  const flag = new SharedArrayBuffer(4);
  process.on("SIGALRM", ignore);
  const worker = new Worker(KICKER_SOURCE, {
    eval: true,
    workerData: { flag, deadline: Date.now() + delayMs, interval: KICK_INTERVAL_MS },
  });
  // The worker must never keep the process alive or report into a finished run.
  worker.unref();
  worker.on("error", ignore);
  return {
    [Symbol.dispose]() {
      const word = new Int32Array(flag);
      Atomics.store(word, 0, 1);
      Atomics.notify(word, 0);
      // Keep the handler until the worker is gone: a signal it sent just before seeing the
      // flag must not meet SIGALRM's default action (terminate the process).
      void worker.terminate().finally(() => process.off("SIGALRM", ignore));
    },
  };
}
