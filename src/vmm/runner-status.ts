/**
 * Exit statuses of `regvisor run FILE` and the endings that carry them.
 *
 *   0        clean: SRST shutdown or reset with no reason, x86 HLT with interrupts disabled,
 *            0 written to port 0xf4
 *   1..255   the guest's own value: what it wrote to port 0xf4 (low 8 bits, as the OS keeps
 *            them) or its SRST reason (reasons above 255 give 255)
 *   124      the run timed out (`--timeout`), or an x86 guest halted with interrupts enabled
 *            (no interrupt can ever wake it, so waiting could only end in a timeout)
 *   125      a guest fault the VMM cannot handle (triple fault, internal error, failed entry,
 *            unexpected exit)
 *   130/143  stopped by SIGINT / SIGTERM (128 + the signal number, as a shell reports a process
 *            the signal killed)
 *   141      the reader of the guest console went away (EPIPE): 128 + SIGPIPE, what a shell
 *            shows for a writer killed by a closed pipe
 *   74       the guest console could not be written otherwise (ENOSPC, EIO: EX_IOERR)
 *   0        also: a quit request on the control socket
 * Errors before the guest starts are reported by the CLI: 1 (bad image, backend unusable),
 * 2 (bad command line). 124 and 125 follow `timeout(1)`'s convention; a guest that wants its
 * statuses to be unambiguous uses 3..123, and `--json` always names the reason.
 */
import { hex } from "./image.js";
import type { RunEnding } from "./runner-types.js";

/** Fixed statuses (see the module header). */
export const RUN_STATUS = {
  CLEAN: 0,
  TIMEOUT: 124,
  FAULT: 125,
  CONSOLE_CLOSED: 141,
  CONSOLE_FAILED: 74,
} as const;

/** Signals that stop a run, with their numbers (asm-generic/signal.h; the same on x86-64). */
export const STOP_SIGNALS = { SIGINT: 2, SIGTERM: 15 } as const;

/** A signal that stops a run. */
export type StopSignal = keyof typeof STOP_SIGNALS;

/** Largest status a guest value maps to. */
const MAX_GUEST_STATUS = 255n;

/** SBI SRST reset reasons (SBI spec ch. 10, "System Reset Extension"). */
function srstReasonText(reason: bigint): string {
  if (reason === 0n) return "no reason";
  if (reason === 1n) return "reason 1, system failure";
  return `reason ${reason < 0x1_0000n ? reason.toString() : hex(reason)}`;
}

/** A guest-chosen value as a status: itself up to 255, 255 beyond. */
function guestStatus(value: bigint): number {
  return Number(value > MAX_GUEST_STATUS ? MAX_GUEST_STATUS : value);
}

/** SRST shutdown / reset (`reset` true for cold and warm reboot). */
export function srstEnding(reset: boolean, reason: bigint): RunEnding {
  const what = reset ? "requested a reboot (SRST reset" : "shut down (SRST shutdown";
  return {
    reason: reset ? "reset" : "shutdown",
    status: guestStatus(reason),
    message: `the guest ${what}, ${srstReasonText(reason)})`,
    value: reason,
  };
}

/** x86 OUT to the exit port. */
export function exitPortEnding(value: number): RunEnding {
  return {
    reason: "exit-port",
    status: value & 0xff,
    message: `the guest wrote ${value} to the exit port 0xf4`,
    value: BigInt(value),
  };
}

/** x86 HLT with RFLAGS.IF = 0. */
export function haltEnding(): RunEnding {
  return {
    reason: "halt",
    status: RUN_STATUS.CLEAN,
    message: "the guest halted with interrupts disabled",
  };
}

/** x86 HLT with RFLAGS.IF = 1 while no interrupt source is armed (src/vmm/arch/x86/index.ts). */
export function idleEnding(): RunEnding {
  return {
    reason: "idle",
    status: RUN_STATUS.TIMEOUT,
    message:
      "the guest halted with interrupts enabled, but no interrupt source is armed (COM1's IER is 0, no LAPIC timer), so it would never wake",
  };
}

/** `--timeout` expired. */
export function timeoutEnding(timeoutMs: number): RunEnding {
  return {
    reason: "timeout",
    status: RUN_STATUS.TIMEOUT,
    message: `the guest was still running after the --timeout of ${timeoutMs / 1000} s`,
  };
}

/** The run was stopped by `signal` (status 128 + its number). */
export function signalEnding(signal: StopSignal): RunEnding {
  return {
    reason: "signal",
    status: 128 + STOP_SIGNALS[signal],
    message: `the run was stopped by ${signal}`,
  };
}

/** A guest fault the VMM cannot handle; `what` says which. */
export function faultEnding(what: string): RunEnding {
  return { reason: "fault", status: RUN_STATUS.FAULT, message: `guest fault: ${what}` };
}

/** `--snapshot-at-exit N`: the machine stopped after its N-th exit (`intr` not counted). */
export function snapshotEnding(exit: number): RunEnding {
  return {
    reason: "snapshot",
    status: RUN_STATUS.CLEAN,
    message: `the machine stopped at exit ${exit} for a snapshot`,
  };
}

/** The machine was asked to stop (control socket `quit`). */
export function quitEnding(): RunEnding {
  return {
    reason: "quit",
    status: RUN_STATUS.CLEAN,
    message: "the machine was stopped by a quit request",
  };
}

/** The guest now runs at `where` (a completed live migration). */
export function migratedEnding(where: string): RunEnding {
  return {
    reason: "migrated",
    status: RUN_STATUS.CLEAN,
    message: `the guest was migrated to ${where} and runs on there`,
  };
}

/**
 * Guest console output can no longer be delivered; `why` is the sink's one-line reason. The
 * statuses match the CLI's own stdout failures (src/cli/output.ts): 141 for EPIPE, 74 (EX_IOERR)
 * for any other write error.
 */
export function consoleClosedEnding(why: string, errnoName?: string): RunEnding {
  const status =
    errnoName === undefined || errnoName === "EPIPE"
      ? RUN_STATUS.CONSOLE_CLOSED
      : RUN_STATUS.CONSOLE_FAILED;
  return { reason: "console-closed", status, message: why };
}
