/**
 * The contract between the backend-agnostic run loop (./runner.ts) and its per-architecture
 * machines (./runner-x86.ts on the KVM backend, ./runner-riscv.ts on the soft backend).
 *
 * A machine owns a VM with one vCPU, already loaded and in its start state, plus the devices of
 * its console. The loop calls `run()`, counts and traces the exit, and asks the machine to
 * `handle()` it; what no machine claims (MMIO, failures) the loop treats the same way for every
 * architecture. Endings are values (`RunEnding`), never thrown.
 */
import type { Vcpu, VcpuExit } from "../backends/vcpu.js";
import type { BootPlan } from "./boot-plan.js";
import type { ImageArch } from "./image.js";

/** The backends `regvisor run` drives. */
export type BackendName = "kvm" | "soft";

/** Execution modes of the soft backend (`--mode`). */
export type RunMode = "inline" | "threaded";

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
  /** SIGINT or SIGTERM stopped the run. */
  "signal",
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

/** What the loop gives a machine when it starts one. */
export interface MachineOptions {
  /** Soft backend execution mode. */
  readonly mode?: RunMode;
  /** RISC-V `/chosen/bootargs`. */
  readonly cmdline?: string;
  /** Receives guest console output. */
  readonly output: (bytes: Uint8Array) => void;
  /** Guest console input. */
  readonly input: InputSource;
  /**
   * Reports an access no device claimed and what became of it ("read as all-ones"); the loop
   * logs each (space, address) once when tracing.
   */
  readonly unclaimed: (space: string, address: bigint | number, effect: string) => void;
}

/** A loaded VM with one vCPU in its start state. */
export interface GuestMachine extends Disposable {
  readonly vcpu: Vcpu;
  /** Name of the program counter in messages: "pc" or "rip". */
  readonly pcName: string;
  /** Facts for the summary, e.g. `{ x86Mode: "long" }` or `{ dtbAddress: "0x87e00000" }`. */
  readonly facts: Readonly<Record<string, string>>;
  /**
   * Handles an exit this architecture knows: `"continue"` to run on, an ending to stop, or
   * `undefined` to let the loop apply the common rules.
   */
  handle(exit: VcpuExit): RunEnding | "continue" | undefined;
  /** The current program counter. */
  pc(): bigint;
  /** Guest instructions retired, where the backend counts them. */
  instructions(): bigint | undefined;
  /** Backend detail for an internal-error exit (the soft hart's fault text). */
  faultDetail(exit: VcpuExit): string | undefined;
  /**
   * Makes sure `run()` returns (as `intr`) soon after `deadline` (a `performance.now()` time),
   * even while the guest never exits.
   */
  armDeadline(deadline: number): Disposable;
}

/** What the loop knows about one architecture: its backend and how to start a machine. */
export interface ArchRunner {
  readonly arch: ImageArch;
  readonly backend: BackendName;
  /**
   * Refuses options that do not apply to this architecture, and a `--mem` its backend cannot
   * hold.
   * @throws OptionValueError naming the option.
   */
  check(options: {
    readonly mode?: RunMode;
    readonly cmdline?: string;
    readonly memSize?: bigint;
  }): void;
  /**
   * Creates the VM, writes the plan's image, sets the start state.
   * @throws ImageError when the final boot structures do not fit; backend errors pass through.
   */
  start(plan: BootPlan, options: MachineOptions): GuestMachine;
}
