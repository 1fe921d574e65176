/**
 * `regvisor run FILE` over the machine: plan the boot (the image, initrd and device tree are
 * checked against RAM before any VM exists), load and start the architecture's part
 * (src/vmm/arch/<arch>/) on the backend the caller injects, then run every vCPU until an ending
 * (src/vmm/machine/machine.ts) — the guest's own (shutdown, reset, halt, exit port), a fault the
 * VMM cannot handle, `--timeout`, a quit request, or a console reader that went away.
 *
 * This module imports no architecture part: `runGuest` loads the one its guest needs, so a
 * RISC-V boot does not compile the x86 machine (start-up time counts in every guest's boot).
 * ./runner.ts adds `ARCHES` and `prepareRun`, which need every architecture at hand.
 */
import type { VcpuExit } from "../backends/vcpu.js";
import type { NamedRegister } from "../backends/register-view.js";
import { planBoot, type BootPlan } from "./boot-plan.js";
import { ImageError, hex, type GuestFile, type ImageArch } from "./image.js";
import { OnceLog } from "./io.js";
import type { BackendName, MachineBackend, RunMode } from "./machine/backend.js";
import { callbackSink, type ConsoleSink } from "./machine/console-sink.js";
import type { RawDisk } from "./devices/virtio/disk.js";
import type { DiskSpec } from "./machine/disks.js";
import { ConsoleRecord, Machine, type MachineRunResult } from "./machine/machine.js";
import type { ArchDefinition, MachineIo } from "./machine/types.js";
import { noInput } from "./runner-input.js";
import type { InputSource, RunEnding, StopSource } from "./runner-types.js";
import { DEFAULT_MEM_SIZE, OptionValueError, formatSize } from "./size.js";
import type { X86Mode } from "./x86-boot.js";

/** Most vCPUs `--cpus` accepts on any backend. */
export const MAX_CPUS = 64;

/** What to run and how (the parsed command line). */
export interface RunRequest {
  /** The guest file's bytes, or the opened file, read straight into guest RAM (./image.ts). */
  readonly file: Uint8Array | GuestFile;
  /** Gives the backend for the guest's architecture (only src/cli picks concrete ones). */
  readonly backendFor: (arch: ImageArch) => MachineBackend;
  /** `--backend`, when given: refuses an image for the other architecture. */
  readonly backend?: BackendName;
  readonly mode?: RunMode;
  /** Guest RAM; default 128 MiB. */
  readonly memSize?: bigint;
  readonly loadAddr?: bigint;
  readonly entry?: bigint;
  readonly x86Mode?: X86Mode;
  readonly cmdline?: string;
  /** `--initrd` bytes (RISC-V Linux). */
  readonly initrd?: Uint8Array;
  /** `--cpus`; default 1. */
  readonly cpus?: number;
  /** `--disk`s, one virtio-blk device each (RISC-V). */
  readonly disks?: readonly DiskSpec[];
  /** `--virtio-console`: a virtio-console after the disks (RISC-V). */
  readonly virtioConsole?: boolean;
  /** `--timeout` in milliseconds. */
  readonly timeoutMs?: number;
  /** Receives guest console output (an always-ready callback, or a sink with backpressure). */
  readonly output: ((bytes: Uint8Array) => void) | ConsoleSink;
  /** Guest console input; default none. */
  readonly input?: InputSource;
  /** `--trace-exits`: receives one line per exit and per first unclaimed access. */
  readonly trace?: (line: string) => void;
  /** Read the final register view of vCPU 0 (default true). */
  readonly collectRegisters?: boolean;
  /** Asked while the guest runs: an ending to stop with (SIGINT/SIGTERM, src/cli/signals.ts). */
  readonly stop?: StopSource;
  /** Called with the machine once it is built, before it runs (the control socket). */
  readonly onMachine?: (machine: Machine) => Promise<void> | void;
  /** The guest kind when it is not the image's format ("demo"). */
  readonly guest?: string;
  /** x86 demo: the n its port 0xEA answers. */
  readonly demoInput?: number;
  /** x86: the in-kernel irqchip (default true; `MachineShape.irqchip`). */
  readonly irqchip?: boolean;
  /** `--snapshot-at-exit N`: end the run after N exits (reason "snapshot"). */
  readonly stopAtExit?: number;
  /** Called with the machine after its run, before it is disposed (write a snapshot). */
  readonly afterRun?: (machine: Machine, result: MachineRunResult) => Promise<void> | void;
}

/** One register of the final state, by catalog name. */
export type FinalRegister = NamedRegister;

/** What a run did. */
export interface RunSummary {
  readonly arch: ImageArch;
  readonly backend: BackendName;
  /** Soft backend only. */
  readonly mode: RunMode | undefined;
  /** "elf", "flat", "linux", "demo". */
  readonly format: string;
  readonly entry: bigint;
  readonly cpus: number;
  /** Per-architecture facts (x86 mode; RISC-V DTB address, ISA, timebase). */
  readonly facts: Readonly<Record<string, string>>;
  readonly ending: RunEnding;
  /** "pc" or "rip", and vCPU 0's value when the run ended. */
  readonly pcName: string;
  readonly pc: bigint;
  /** `run()` returns of every vCPU, the last one included, and their count by kind. */
  readonly exits: number;
  readonly exitKinds: Readonly<Record<string, number>>;
  /** The exit that ended the run (undefined for an ending between exits), detached. */
  readonly lastExit: VcpuExit | undefined;
  /** Accesses no device claimed (ports, MMIO, forwarded SBI calls). */
  readonly unclaimed: number;
  /** Guest instructions retired by every vCPU (soft backend). */
  readonly instructions: bigint | undefined;
  /** Wall-clock time of the run loop, in ms. */
  readonly wallMs: number;
  /** Final register view of vCPU 0 (empty when not collected); `registersError` if reading failed. */
  readonly registers: readonly FinalRegister[];
  readonly registersError: string | undefined;
}

const BACKEND_ARCH: Readonly<Record<BackendName, ImageArch>> = { kvm: "x86", soft: "riscv" };

/** Imports the arch part of one architecture (each is a module graph of its own). */
const ARCH_LOADERS: Readonly<Record<ImageArch, () => Promise<ArchDefinition>>> = {
  x86: async () => (await import("./arch/x86/index.js")).archMachine,
  riscv: async () => (await import("./arch/riscv/index.js")).archMachine,
};

/** The arch part of `arch`, loaded on first use. */
function loadArch(arch: ImageArch): Promise<ArchDefinition> {
  return ARCH_LOADERS[arch]();
}

/** A validated plan and the arch part for it. */
export interface PreparedRun {
  readonly plan: BootPlan;
  readonly arch: ArchDefinition;
  readonly cpus: number;
}

/** A validated boot plan before its arch part has checked the options (see `checkArch`). */
export interface PlannedRun {
  readonly plan: BootPlan;
  readonly cpus: number;
}

/**
 * The architecture-independent half of `prepareRun` (./runner.ts): `--cpus`, the image and its
 * placement in RAM with the initrd and device tree, the architecture against `--backend`.
 * @throws ImageError, OptionValueError.
 */
export function planRun(request: Omit<RunRequest, "backendFor" | "output">): PlannedRun {
  const cpus = request.cpus ?? 1;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > MAX_CPUS) {
    throw new OptionValueError(
      "--cpus",
      `must be a whole number from 1 to ${MAX_CPUS}, got ${cpus}`,
    );
  }
  const wanted = request.backend === undefined ? undefined : BACKEND_ARCH[request.backend];
  try {
    const plan = planBoot({
      file: request.file,
      memSize: request.memSize ?? DEFAULT_MEM_SIZE,
      cpus,
      virtioDevices: (request.disks?.length ?? 0) + (request.virtioConsole === true ? 1 : 0),
      ...(wanted === undefined ? {} : { arch: wanted }),
      ...(request.loadAddr === undefined ? {} : { loadAddr: request.loadAddr }),
      ...(request.entry === undefined ? {} : { entry: request.entry }),
      ...(request.x86Mode === undefined ? {} : { x86Mode: request.x86Mode }),
      ...(request.cmdline === undefined ? {} : { cmdline: request.cmdline }),
      ...(request.initrd === undefined ? {} : { initrd: request.initrd }),
    });
    return { plan, cpus };
  } catch (error) {
    if (error instanceof ImageError && error.code === "IMAGE_WRONG_ARCH" && request.backend) {
      const hint = `--backend ${request.backend}; omit --backend to choose it from the file`;
      throw new ImageError(error.code, `${error.message} (${hint})`, { cause: error });
    }
    throw error;
  }
}

/**
 * The arch half of `prepareRun`: `arch` (the plan's) refuses options that do not apply to it.
 * @throws OptionValueError.
 */
export function checkArch(
  request: Omit<RunRequest, "backendFor" | "output">,
  { plan, cpus }: PlannedRun,
  arch: ArchDefinition,
): PreparedRun {
  arch.check({
    cpus,
    disks: request.disks?.length ?? 0,
    ...(request.virtioConsole === true ? { virtioConsole: true } : {}),
    ...(request.cmdline === undefined ? {} : { cmdline: request.cmdline }),
    ...(request.mode === undefined ? {} : { mode: request.mode }),
  });
  return { plan, arch, cpus };
}

/**
 * Loads and runs a guest to its ending (the arch part of its guest only).
 * @throws ImageError / OptionValueError before the guest starts (see `prepareRun`); backend
 *   errors (KvmError, KvmUnavailableError) when the VM cannot be created or run.
 */
export async function runGuest(request: RunRequest): Promise<RunSummary> {
  const planned = planRun(request);
  const prepared = checkArch(request, planned, await loadArch(planned.plan.arch));
  const { plan, cpus } = prepared;
  const backend = request.backendFor(plan.arch);
  if (cpus > backend.maxVcpus) {
    throw new OptionValueError(
      "--cpus",
      `the ${backend.name} backend runs at most ${backend.maxVcpus} vCPUs, got ${cpus}`,
    );
  }
  if (backend.maxMemBytes !== undefined && plan.ram.size > BigInt(backend.maxMemBytes)) {
    const most = BigInt(backend.maxMemBytes);
    throw new OptionValueError(
      "--mem",
      `${formatSize(plan.ram.size)} is more than the ${backend.name} backend holds: it keeps guest RAM in one typed array, at most ${formatSize(most)} in Node 20; use --mem ${most % (1n << 30n) === 0n ? `${most >> 30n}G` : `${most >> 20n}M`} or less`,
    );
  }
  // virtio-blk's file code is loaded only for a machine with disks.
  const specs = request.disks ?? [];
  const disks = specs.length === 0 ? [] : (await import("./machine/disks.js")).openDisks(specs);
  try {
    return await startAndRun(request, prepared, backend, disks);
  } finally {
    for (const disk of disks) disk.close();
  }
}

/** What the machine lends its arch part, and the count of unclaimed accesses it reports. */
export interface RunnerIo {
  readonly io: MachineIo;
  readonly record: ConsoleRecord;
  readonly unclaimed: () => number;
}

/** The machine's I/O for a run: console (recorded for snapshots), input, unclaimed accesses. */
export function runnerIo(
  request: Pick<RunRequest, "output" | "input" | "trace">,
  record = new ConsoleRecord(),
): RunnerIo {
  const trace = request.trace;
  const once = new OnceLog();
  let unclaimed = 0;
  const sink = typeof request.output === "function" ? callbackSink(request.output) : request.output;
  const console: ConsoleSink = {
    write(bytes) {
      record.add(bytes);
      return sink.write(bytes);
    },
    drained: () => sink.drained(),
    onClosed: (listener) => {
      sink.onClosed(listener);
    },
    flush: () => {
      sink.flush?.();
    },
  };
  const io: MachineIo = {
    console,
    input: request.input ?? noInput(),
    unclaimed(space, address, effect) {
      unclaimed++;
      if (trace !== undefined && once.first(space, address)) {
        trace(`unclaimed ${space} ${hex(address)}: ${effect} (reported once per address)`);
      }
    },
  };
  return { io, record, unclaimed: () => unclaimed };
}

/** Runs a built machine to its ending and sums it up (`run FILE` and `restore`). */
export async function runMachine(
  machine: Machine,
  request: Omit<RunRequest, "file" | "backendFor" | "output">,
  facts: {
    readonly format: RunSummary["format"];
    readonly entry: bigint;
    readonly unclaimed: () => number;
  },
): Promise<RunSummary> {
  const { parts, backend } = machine;
  const trace = request.trace;
  await request.onMachine?.(machine);
  const result = await machine.run({
    ...(request.timeoutMs === undefined ? {} : { timeoutMs: request.timeoutMs }),
    ...(trace === undefined ? {} : { trace }),
    ...(request.stop === undefined ? {} : { stop: request.stop }),
    ...(request.stopAtExit === undefined ? {} : { stopAtExit: request.stopAtExit }),
  });
  await request.afterRun?.(machine, result);
  const [boot] = parts.vcpus;
  if (boot === undefined) throw new RangeError("a machine has at least one vCPU");
  let registers: FinalRegister[] = [];
  let registersError: string | undefined;
  if (request.collectRegisters !== false) {
    try {
      registers = (await import("../backends/register-view.js")).readRegisterView(boot);
    } catch (error) {
      registersError = error instanceof Error ? error.message : String(error);
    }
  }
  const counted = parts.vcpus.map((v) => backend.instructions?.(v));
  const instructions = counted.every((n) => n !== undefined)
    ? counted.reduce((a, b) => a + b, 0n)
    : undefined;
  return {
    arch: backend.arch,
    backend: backend.name,
    mode: backend.mode,
    format: facts.format,
    entry: facts.entry,
    cpus: parts.vcpus.length,
    facts: parts.facts,
    ending: result.ending,
    pcName: parts.pcName,
    pc: parts.pc(boot),
    exits: result.exits,
    exitKinds: result.exitKinds,
    lastExit: result.lastExit,
    unclaimed: facts.unclaimed(),
    instructions,
    wallMs: result.wallMs,
    registers,
    registersError,
  };
}

async function startAndRun(
  request: RunRequest,
  { plan, arch, cpus }: PreparedRun,
  backend: MachineBackend,
  disks: readonly RawDisk[],
): Promise<RunSummary> {
  const { io, record, unclaimed } = runnerIo(request);
  const shape = {
    cpus,
    disks,
    ...(request.cmdline === undefined ? {} : { cmdline: request.cmdline }),
    ...(request.virtioConsole === true ? { virtioConsole: true } : {}),
    ...(request.demoInput === undefined ? {} : { demoInput: request.demoInput }),
    ...(request.irqchip === undefined ? {} : { irqchip: request.irqchip }),
  };
  const parts = arch.start(plan, shape, backend, io);
  const guest = request.guest ?? plan.image.format;
  using machine = new Machine(parts, backend, io, {
    guest,
    arch: plan.arch,
    console: record,
    disks: request.disks ?? [],
    ...(request.cmdline === undefined ? {} : { cmdline: request.cmdline }),
  });
  return await runMachine(machine, request, {
    format: guest,
    entry: plan.image.entry,
    unclaimed,
  });
}
