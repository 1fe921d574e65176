/**
 * The run loop of `regvisor run FILE`, the same for every architecture: plan the boot (the
 * image is checked against RAM before any VM exists), start the architecture's machine on its
 * backend (./runner-x86.ts, ./runner-riscv.ts), then run the vCPU until an ending — the guest's
 * own (shutdown, reset, halt, exit port), a fault the VMM cannot handle, or `--timeout`.
 *
 * Rules shared by every architecture live here: an MMIO access no device claims reads as
 * all-ones and writes are dropped (never fatal; reported once per address when tracing);
 * `intr` exits just return control for the deadline check; triple faults, internal errors,
 * failed entries and exits nobody expects end the run as faults.
 */
import { readRegisterView, type NamedRegister } from "../backends/register-view.js";
import type { VcpuExit } from "../backends/vcpu.js";
import { planBoot, type BootPlan } from "./boot-plan.js";
import { turnEventLoop } from "./event-loop.js";
import { ImageError, hex, type ImageArch } from "./image.js";
import { OnceLog } from "./io.js";
import { noInput } from "./runner-input.js";
import { riscvRunner } from "./runner-riscv.js";
import { faultEnding, timeoutEnding } from "./runner-status.js";
import { detachExit, formatExit } from "./runner-trace.js";
import {
  POLL_INTERVAL_MS,
  type ArchRunner,
  type BackendName,
  type GuestMachine,
  type InputSource,
  type MachineOptions,
  type RunEnding,
  type RunMode,
  type StopSource,
} from "./runner-types.js";
import { x86Runner } from "./runner-x86.js";
import { DEFAULT_MEM_SIZE } from "./size.js";
import type { X86Mode } from "./x86-boot.js";

/** What to run and how (the parsed command line). */
export interface RunRequest {
  /** The guest file's bytes. */
  readonly file: Uint8Array;
  /** `--backend`; default: the one for the ELF's architecture. */
  readonly backend?: BackendName;
  readonly mode?: RunMode;
  /** Guest RAM; default 128 MiB. */
  readonly memSize?: bigint;
  readonly loadAddr?: bigint;
  readonly entry?: bigint;
  readonly x86Mode?: X86Mode;
  readonly cmdline?: string;
  /** `--timeout` in milliseconds. */
  readonly timeoutMs?: number;
  /** Receives guest console output. */
  readonly output: (bytes: Uint8Array) => void;
  /** Guest console input; default none. */
  readonly input?: InputSource;
  /** `--trace-exits`: receives one line per exit and per first unclaimed access. */
  readonly trace?: (line: string) => void;
  /** Read the final register view (default true). */
  readonly collectRegisters?: boolean;
  /**
   * Asked at every poll point (an `intr` exit, or `POLL_INTERVAL_MS` of running): an ending to
   * stop with, e.g. on SIGINT. Only `runGuestAsync` lets signal handlers run between polls.
   */
  readonly stop?: StopSource;
}

/** One register of the final state, by catalog name. */
export type FinalRegister = NamedRegister;

/** What a run did. */
export interface RunSummary {
  readonly arch: ImageArch;
  readonly backend: BackendName;
  /** Soft backend only. */
  readonly mode: RunMode | undefined;
  readonly format: "elf" | "flat";
  readonly entry: bigint;
  /** Per-architecture facts (x86 mode; RISC-V DTB address, ISA, timebase). */
  readonly facts: Readonly<Record<string, string>>;
  readonly ending: RunEnding;
  /** "pc" or "rip", and its value when the run ended. */
  readonly pcName: string;
  readonly pc: bigint;
  /** `run()` returns, the last one included, and their count by kind. */
  readonly exits: number;
  readonly exitKinds: Readonly<Record<string, number>>;
  /** The exit that ended the run (undefined for a timeout between exits), detached. */
  readonly lastExit: VcpuExit | undefined;
  /** Accesses no device claimed (ports, MMIO, forwarded SBI calls). */
  readonly unclaimed: number;
  /** Guest instructions retired (soft backend). */
  readonly instructions: bigint | undefined;
  /** Wall-clock time of the run loop, in ms. */
  readonly wallMs: number;
  /** Final register view (empty when not collected); `registersError` if reading failed. */
  readonly registers: readonly FinalRegister[];
  readonly registersError: string | undefined;
}

const RUNNERS: Readonly<Record<ImageArch, ArchRunner>> = { x86: x86Runner, riscv: riscvRunner };
const BACKEND_ARCH: Readonly<Record<BackendName, ImageArch>> = { kvm: "x86", soft: "riscv" };

/** A validated plan and the runner for its architecture. */
export interface PreparedRun {
  readonly plan: BootPlan;
  readonly runner: ArchRunner;
}

/**
 * Everything that can be refused before a VM exists: the image, its placement in RAM, the
 * architecture against `--backend`, options that do not apply.
 * @throws ImageError, OptionValueError.
 */
export function prepareRun(request: RunRequest): PreparedRun {
  const wanted = request.backend === undefined ? undefined : BACKEND_ARCH[request.backend];
  let plan: BootPlan;
  try {
    plan = planBoot({
      file: request.file,
      memSize: request.memSize ?? DEFAULT_MEM_SIZE,
      ...(wanted === undefined ? {} : { arch: wanted }),
      ...(request.loadAddr === undefined ? {} : { loadAddr: request.loadAddr }),
      ...(request.entry === undefined ? {} : { entry: request.entry }),
      ...(request.x86Mode === undefined ? {} : { x86Mode: request.x86Mode }),
      ...(request.cmdline === undefined ? {} : { cmdline: request.cmdline }),
    });
  } catch (error) {
    if (error instanceof ImageError && error.code === "IMAGE_WRONG_ARCH" && request.backend) {
      const hint = `--backend ${request.backend}; omit --backend to choose it from the file`;
      throw new ImageError(error.code, `${error.message} (${hint})`, { cause: error });
    }
    throw error;
  }
  const runner = RUNNERS[plan.arch];
  runner.check(request);
  return { plan, runner };
}

/** The rules for exits no machine claimed (module header). */
function commonExit(
  exit: VcpuExit,
  machine: GuestMachine,
  options: MachineOptions,
): RunEnding | "continue" {
  switch (exit.kind) {
    case "intr":
      return "continue";
    case "mmio":
      if (exit.isWrite) {
        options.unclaimed("mmio write", exit.address, "ignored");
      } else {
        exit.data.fill(0xff);
        options.unclaimed("mmio read", exit.address, "read as all-ones");
      }
      return "continue";
    case "shutdown":
      return faultEnding("triple fault (KVM_EXIT_SHUTDOWN): an exception the guest cannot handle");
    case "internal_error": {
      const detail = machine.faultDetail(exit);
      return faultEnding(
        `internal error, suberror ${exit.suberror}${detail === undefined ? "" : `: ${detail}`}`,
      );
    }
    case "fail_entry":
      return faultEnding(`VM entry failed, hardware reason ${hex(exit.reason)}`);
    case "unsupported":
      return faultEnding(`unsupported exit ${exit.exitReason} (${exit.reason})`);
    default:
      return faultEnding(`unexpected ${exit.kind} exit`);
  }
}

interface LoopResult {
  readonly ending: RunEnding;
  readonly lastExit: VcpuExit | undefined;
  readonly exits: number;
  readonly kinds: Readonly<Record<string, number>>;
}

/**
 * Runs the vCPU until an ending; `start` is when the run began (for `--timeout`). Yields at
 * every poll point (an `intr` exit, or `POLL_INTERVAL_MS` since the last one), then asks
 * `request.stop`; the driver decides what happens in between (runGuestAsync: the event loop).
 */
function* runLoop(
  machine: GuestMachine,
  options: MachineOptions,
  request: RunRequest,
  start: number,
): Generator<void, LoopResult> {
  const { trace, timeoutMs, stop } = request;
  const kinds: Record<string, number> = {};
  let exits = 0;
  const deadline = timeoutMs === undefined ? undefined : start + timeoutMs;
  const armed = deadline === undefined ? undefined : machine.armDeadline(deadline);
  let nextPoll = start + POLL_INTERVAL_MS;
  try {
    for (;;) {
      const exit = machine.vcpu.run();
      exits++;
      kinds[exit.kind] = (kinds[exit.kind] ?? 0) + 1;
      trace?.(`exit ${formatExit(exit)}`);
      const action = machine.handle(exit) ?? commonExit(exit, machine, options);
      if (action !== "continue")
        return { ending: action, lastExit: detachExit(exit), exits, kinds };
      const now = performance.now();
      if (deadline !== undefined && now >= deadline) {
        return { ending: timeoutEnding(timeoutMs ?? 0), lastExit: undefined, exits, kinds };
      }
      if (exit.kind === "intr" || now >= nextPoll) {
        yield;
        nextPoll = performance.now() + POLL_INTERVAL_MS;
        const stopped = stop?.requested();
        if (stopped !== undefined) return { ending: stopped, lastExit: undefined, exits, kinds };
      }
    }
  } finally {
    // Stop the KVM kicker before anything else (registers, dispose) touches the vCPU.
    armed?.[Symbol.dispose]();
  }
}

/**
 * Loads and runs a guest to its ending, without ever returning to the event loop (so signal
 * handlers and timers cannot run; `--timeout` still works, see `armDeadline`).
 * @throws ImageError / OptionValueError before the guest starts (see `prepareRun`); backend
 *   errors (KvmError, KvmUnavailableError) when the VM cannot be created or run; whatever
 *   `request.output` throws, after the VM is closed.
 */
export function runGuest(request: RunRequest): RunSummary {
  const steps = runGuestSteps(request);
  for (;;) {
    const next = steps.next();
    if (next.done === true) return next.value;
  }
}

/**
 * `runGuest`, returning to the event loop at every poll point, so a signal handler (SIGINT,
 * SIGTERM) can set what `request.stop` answers.
 * @throws as `runGuest`.
 */
export async function runGuestAsync(request: RunRequest): Promise<RunSummary> {
  const steps = runGuestSteps(request);
  for (;;) {
    const next = steps.next();
    if (next.done === true) return next.value;
    await turnEventLoop();
  }
}

/** The one body of `runGuest` and `runGuestAsync`: yields at every poll point. */
function* runGuestSteps(request: RunRequest): Generator<void, RunSummary> {
  const { plan, runner } = prepareRun(request);
  const trace = request.trace;
  const once = new OnceLog();
  let unclaimed = 0;
  const options: MachineOptions = {
    ...(request.mode === undefined ? {} : { mode: request.mode }),
    ...(request.cmdline === undefined ? {} : { cmdline: request.cmdline }),
    output: request.output,
    input: request.input ?? noInput(),
    unclaimed(space, address, effect) {
      unclaimed++;
      if (trace !== undefined && once.first(space, address)) {
        trace(`unclaimed ${space} ${hex(address)}: ${effect} (reported once per address)`);
      }
    },
  };
  using machine = runner.start(plan, options);
  const start = performance.now();
  const { ending, lastExit, exits, kinds } = yield* runLoop(machine, options, request, start);
  const wallMs = performance.now() - start;
  let registers: FinalRegister[] = [];
  let registersError: string | undefined;
  if (request.collectRegisters !== false) {
    try {
      registers = readRegisterView(machine.vcpu);
    } catch (error) {
      registersError = error instanceof Error ? error.message : String(error);
    }
  }
  return {
    arch: plan.arch,
    backend: runner.backend,
    mode: runner.backend === "soft" ? (request.mode ?? "inline") : undefined,
    format: plan.image.format,
    entry: plan.image.entry,
    facts: machine.facts,
    ending,
    pcName: machine.pcName,
    pc: machine.pc(),
    exits,
    exitKinds: kinds,
    lastExit,
    unclaimed,
    instructions: machine.instructions(),
    wallMs,
    registers,
    registersError,
  };
}
