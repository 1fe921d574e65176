/**
 * SIGINT and SIGTERM during a run: the first one asks the run loop to stop (it ends with the
 * usual final line and status 128 + signo); a second one while the loop has not stopped yet
 * ends the process at once with that status.
 *
 * With a handler installed, a signal that lands while the main thread is inside KVM_RUN makes
 * the ioctl return EINTR (arch/x86/kvm/x86.c `vcpu_run`: `signal_pending` → -EINTR), which the
 * backend reports as an `intr` exit; the loop then yields to the event loop, where the handler
 * below runs; the machine polls the request (src/vmm/machine/machine.ts, `MachineRunOptions.stop`).
 */
import { signalEnding, STOP_SIGNALS, type StopSignal } from "../vmm/runner-status.js";
import type { RunEnding, StopSource } from "../vmm/runner-types.js";

/** Listens for SIGINT/SIGTERM until disposed; `requested()` is the ending for the first one. */
export function listenForStopSignals(): StopSource & Disposable {
  let first: StopSignal | undefined;
  const handlers = new Map<StopSignal, () => void>();
  for (const signal of ["SIGINT", "SIGTERM"] as const satisfies readonly StopSignal[]) {
    const handler = (): void => {
      if (first !== undefined) process.exit(128 + STOP_SIGNALS[signal]);
      first = signal;
    };
    handlers.set(signal, handler);
    process.on(signal, handler);
  }
  return {
    requested(): RunEnding | undefined {
      return first === undefined ? undefined : signalEnding(first);
    },
    [Symbol.dispose](): void {
      for (const [signal, handler] of handlers) process.off(signal, handler);
    },
  };
}
