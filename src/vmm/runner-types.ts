/**
 * Values of a run shared by the machine (./machine/) and the CLI: how a run ended (endings are
 * values, never thrown) and where console input comes from.
 */
export type { BackendName, RunMode } from "./machine/backend.js";

/** Why a run ended; stable strings for `--json`. */
export const RUN_END_REASONS = [
  /** RISC-V SBI SRST shutdown (or the legacy SBI shutdown call). */
  "shutdown",
  /** RISC-V SBI SRST cold or warm reboot: regvisor does not reboot, it ends the run. */
  "reset",
  /** x86 HLT with interrupts disabled (RFLAGS.IF = 0). */
  "halt",
  /** x86 write to the exit port 0xf4. */
  "exit-port",
  /** Something the VMM cannot handle: triple fault, internal error, failed entry, … */
  "fault",
  /** x86 HLT with interrupts enabled: nothing can ever wake the guest. */
  "idle",
  /** `--timeout` expired. */
  "timeout",
  /** A quit request on the control socket. */
  "quit",
  /** The guest was live-migrated away (src/vmm/migration): it runs on at the destination. */
  "migrated",
  /** The reader of the guest console went away (EPIPE). */
  "console-closed",
  /** SIGINT or SIGTERM stopped the run. */
  "signal",
  /** `--snapshot-at-exit N`: the machine stopped after exit N to be snapshotted. */
  "snapshot",
] as const;

/** One of `RUN_END_REASONS`. */
export type RunEndReason = (typeof RUN_END_REASONS)[number];

/** How a run ended. */
export interface RunEnding {
  readonly reason: RunEndReason;
  /** Process exit status for it (see runner-status.ts). */
  readonly status: number;
  /** One line, without the pc: "the guest wrote 42 to the exit port 0xf4". */
  readonly message: string;
  /** The guest's own value, where it gave one: the exit-port value, the SRST reason. */
  readonly value?: bigint;
}

/**
 * How often a run loop polls its `StopSource` (and an async loop lets the event loop run) while
 * exits keep coming without an `intr` among them: a stop request waits at most about this long.
 */
export const POLL_INTERVAL_MS = 20;

/** Something outside the guest that can end a run (a signal, a closed control socket). */
export interface StopSource {
  /** The ending to stop with, or undefined to run on. */
  requested(): RunEnding | undefined;
}

/** Where guest console input comes from: bytes available now, empty if none yet, null at EOF. */
export interface InputSource {
  read(max: number): Uint8Array | null;
}
