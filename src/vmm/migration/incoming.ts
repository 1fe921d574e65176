/**
 * `regvisor run --incoming URI`: wait for one migration stream, build the machine it describes
 * (../machine/state.ts `buildEmptyMachine` on the injected backend, RAM with the source's
 * memslot flags, so the guest can move on again), fill it (./destination.ts), check and apply
 * the final state, and after the source's go-ahead run the guest through the same run loop as
 * `regvisor run FILE` (../runner.ts `runMachine`), console on the caller's output. Between
 * listening and the first byte it warms up (`warmUpTargets`), so that building the machine
 * when the stream's META arrives does not hold up round 1's pages.
 *
 * Options that describe the machine, when the user gives them (`--mem`, `--cpus`, `--disk`,
 * `--backend`, `--cmdline`), must match the stream's description: a mismatch is refused with
 * one line before any page is accepted. Disks are reattached by path (shared storage, as QEMU
 * without block migration) and checked by size and SHA-256 at the switchover.
 */
import type { ArchName } from "../../abi/regid.js";
import type { BlockBackend } from "../devices/virtio/disk.js";
import { ramBaseFor } from "../guest-memory.js";
import { hex, type ImageArch } from "../image.js";
import type { BackendName, MachineBackend, RunMode } from "../machine/backend.js";
import { openDisks, type DiskSpec } from "../machine/disks.js";
import { ConsoleRecord, Machine } from "../machine/machine.js";
import {
  applyVcpuPower,
  applyVcpuState,
  buildEmptyMachine,
  captureVcpus,
  checkDisk,
  DESCRIPTION_VERSION,
  parseDescription,
  restoreDevices,
  saveDevices,
  snapshotBackend,
  type MachineDescription,
} from "../machine/state.js";
import type { MachineIo } from "../machine/types.js";
import { ARCHES, runMachine, runnerIo, type RunRequest, type RunSummary } from "../runner.js";
import type { StopSource } from "../runner-types.js";
import { decodeMachineState } from "../snapshot/devices.js";
import type { Snapshot, SnapshotMeta } from "../snapshot/model.js";
import type { RestoreSnapshotOptions } from "../snapshot/restore.js";
import { receiveMigration, type MigrationTarget, type StreamOrigin } from "./destination.js";
import { rehearseState, STREAM_MINOR } from "./stream.js";
import {
  DEFAULT_TIMEOUTS,
  formatUri,
  listenOnce,
  MigrationError,
  type ChannelTimeouts,
  type MigrationUri,
} from "./transport.js";

/** What the command line says the incoming machine must be (only what was given). */
export interface IncomingExpectation {
  readonly backend?: BackendName;
  readonly memSize?: bigint;
  readonly cpus?: number;
  readonly disks?: readonly DiskSpec[];
  readonly cmdline?: string;
}

/** `run --incoming`. */
export interface IncomingRequest extends Omit<
  RunRequest,
  "file" | "backendFor" | "backend" | "mode" | "memSize" | "disks" | "cpus" | "cmdline"
> {
  readonly uri: MigrationUri;
  /** Gives the backend for the architecture, in `mode` (default: the source's). */
  readonly backendFor: (arch: ImageArch, mode: RunMode | undefined) => MachineBackend;
  readonly mode?: RunMode;
  readonly expect?: IncomingExpectation;
  readonly policy?: RestoreSnapshotOptions;
  readonly timeouts?: ChannelTimeouts;
  /** Longest silence of the source, ms (default 30 s). */
  readonly idleMs?: number;
  /** Called once the address listens and the warm-up is over (with the port the OS chose for 0). */
  readonly onListening?: (uri: string) => void;
  /** Called after the go-ahead, before the guest runs. */
  readonly onReceived?: (info: { readonly bytes: number; readonly rounds: number }) => void;
}

/** What an incoming migration and the run after it did. */
export interface IncomingSummary extends RunSummary {
  readonly description: MachineDescription;
}

function refuse(message: string): MigrationError {
  return new MigrationError("rejected", message);
}

/** Refuses a description that does not match what the command line asked for. */
function checkExpectation(d: MachineDescription, want: IncomingExpectation): void {
  const mem = d.ram.reduce((n, r) => n + BigInt(r.size), 0n);
  const mismatch = (option: string, theirs: string, ours: string): MigrationError =>
    refuse(
      `Cannot receive the guest: ${option} is ${ours} here but the incoming machine has ${theirs}; drop ${option} or make it match`,
    );
  if (want.backend !== undefined && want.backend !== d.backend)
    throw mismatch("--backend", d.backend, want.backend);
  if (want.memSize !== undefined && want.memSize !== mem)
    throw mismatch("--mem", `${mem} bytes`, `${want.memSize} bytes`);
  if (want.cpus !== undefined && want.cpus !== d.cpus)
    throw mismatch("--cpus", String(d.cpus), String(want.cpus));
  if (want.cmdline !== undefined && want.cmdline !== (d.cmdline ?? ""))
    throw mismatch("--cmdline", JSON.stringify(d.cmdline ?? ""), JSON.stringify(want.cmdline));
  if (want.disks !== undefined) {
    const theirs = d.disks.map((x) => `${x.path}${x.readOnly ? ",readonly" : ""}`).join(" ");
    const ours = want.disks.map((x) => `${x.path}${x.readOnly ? ",readonly" : ""}`).join(" ");
    if (theirs !== ours) throw mismatch("--disk", theirs || "none", ours || "none");
  }
}

/** The machine a stream is loaded into, and the machine that will run it. */
interface Built {
  readonly machine: Machine;
  readonly target: MigrationTarget;
}

/** What building a target needs besides the description. */
interface TargetContext {
  readonly io: MachineIo;
  readonly record: ConsoleRecord;
  readonly policy: RestoreSnapshotOptions | undefined;
}

/**
 * An empty machine for `description` on `backend`, with `disks` opened in description order,
 * as the target the stream fills: not running, its own state already round-tripped once.
 */
function makeTarget(
  description: MachineDescription,
  origin: StreamOrigin,
  backend: MachineBackend,
  disks: readonly BlockBackend[],
  context: TargetContext,
): Built {
  const { io, record, policy } = context;
  const parts = buildEmptyMachine(ARCHES[description.arch], description, backend, io, disks);
  const machine = new Machine(parts, backend, io, {
    guest: description.guest,
    arch: description.arch,
    console: record,
    disks: description.disks.map((d) => ({ path: d.path, readOnly: d.readOnly })),
    ...(description.cmdline === undefined ? {} : { cmdline: description.cmdline }),
  });
  try {
    // The switchover restores the source's vCPU and device state while the guest is paused on
    // both sides. Restoring this fresh machine's own state through the same path now (a round
    // trip through its register list and the restore policy, then every device's own state)
    // takes what is left of that path's first-run cost out of the pause, and proves this
    // machine's register list restores before any page arrives.
    const own = { vcpus: captureVcpus(parts.vcpus), devices: saveDevices(parts.devices) };
    applyVcpuState(parts.vcpus, description.arch, own.vcpus, policy);
    restoreDevices(parts.devices, own.devices);
    // The same for the stream's decoder of VCPU_STATE and DEVICE frames.
    rehearseState(description.arch, origin.backend, own.vcpus, own.devices);
  } catch (error) {
    machine[Symbol.dispose]();
    throw error;
  }
  const target: MigrationTarget = {
    memory: parts.vm.memory,
    applyVcpus: (vcpus, devices) => {
      const state = decodeMachineState({ devices });
      for (const disk of parseDescription(state.config).disks) checkDisk(disk);
      applyVcpuState(parts.vcpus, origin.arch, vcpus, policy);
      // RISC-V harts' SBI HSM state (section vmm.mp-state): secondaries run on here too.
      applyVcpuPower(parts.vcpus, devices);
    },
    applyDevices: (devices) => {
      const state = decodeMachineState({ devices });
      restoreDevices(parts.devices, devices);
      machine.loadProgress(state.progress);
      record.add(state.output);
    },
    [Symbol.dispose]: () => {
      machine[Symbol.dispose]();
    },
  };
  return { machine, target };
}

/**
 * Times the warm-up decodes the captured state and loads it into its machine. Once leaves that
 * code to V8's interpreter at the switchover, where it took 1-4 ms of CPU and started V8
 * compiling it on background threads, which took cores from the switchover on this 2-core host;
 * after a few more runs here it runs faster and is compiled already.
 */
const WARM_UP_LOADS = 8;

/** Guest RAM of a warm-up machine: its size changes nothing in the code a build runs. */
const WARM_UP_RAM_BYTES = 2 * 1024 * 1024;

/** How the warm-up of one architecture went (`warmUpTargets`). */
export type WarmUp =
  | { readonly arch: ImageArch; readonly ms: number }
  | { readonly arch: ImageArch; readonly skipped: string };

/**
 * Before the first byte arrives: builds a small machine of each architecture this destination
 * could receive (on the backend it would use, in `request.mode`), loads it as a stream would
 * (its own state, captured as the source captures it, through the switchover's checks and
 * apply) and drops it. Measured here: the first build of a machine and the first restore of a
 * register list cost 50-60 ms of CPU in a fresh process, almost all of it V8 compiling the
 * code on its first call; when the stream's META arrives, the build takes 3-8 ms instead, so
 * round 1's pages are stored as they arrive. An architecture whose backend cannot run here,
 * or that `--backend` rules out, is skipped, and so is every one left once `enough()` (a source
 * connected, a stop was asked for); nothing built here survives.
 */
export async function warmUpTargets(
  request: Pick<IncomingRequest, "backendFor" | "mode" | "expect" | "policy">,
  enough: () => boolean = () => false,
): Promise<WarmUp[]> {
  const done: WarmUp[] = [];
  for (const arch of Object.keys(ARCHES) as ImageArch[]) {
    // A turn of the event loop, so that a connection (or a signal) that came is seen.
    await new Promise(setImmediate);
    if (enough()) {
      done.push({ arch, skipped: "the stream came first" });
      continue;
    }
    const start = performance.now();
    try {
      const backend = request.backendFor(arch, request.mode);
      const wanted = request.expect?.backend;
      if (wanted !== undefined && backend.name !== wanted) {
        done.push({ arch, skipped: `--backend ${wanted}` });
        continue;
      }
      backend.check?.();
      const description = warmUpDescription(arch, backend);
      const origin = { arch, backend: snapshotBackend(backend), minor: STREAM_MINOR, flags: 0 };
      const make = (): Built =>
        makeTarget(description, origin, backend, [], {
          io: runnerIo({ output: () => undefined }).io,
          record: new ConsoleRecord(),
          policy: request.policy,
        });
      // The state as a source captures it, from another machine: a capture completes each
      // vCPU's last exit with a run, after which KVM (and the soft backend) refuse changes to
      // some registers (SBI_EXT: EBUSY), so it must not be the target's own.
      const state = await captureAndDrop(make().machine);
      using target = make().target;
      for (let i = 0; i < WARM_UP_LOADS; i++) {
        rehearseState(arch, origin.backend, state.vcpus, state.devices);
        target.applyVcpus(state.vcpus, state.devices);
        target.applyDevices(state.devices);
      }
      done.push({ arch, ms: performance.now() - start });
    } catch (error) {
      // Only a warm-up: a backend that cannot run here refuses the real build again, then with
      // its reason on the stream.
      done.push({ arch, skipped: error instanceof Error ? error.message : String(error) });
    }
  }
  return done;
}

/** `machine`'s state as a source captures it (`Machine.captureState()`); disposes of it. */
async function captureAndDrop(machine: Machine): Promise<Snapshot> {
  using dropped = machine;
  return await dropped.captureState();
}

/** A one-vCPU machine of `arch` with a little RAM where that architecture's RAM starts. */
function warmUpDescription(arch: ImageArch, backend: MachineBackend): MachineDescription {
  return {
    kind: `${arch}-warm-up`,
    version: DESCRIPTION_VERSION,
    arch,
    backend: backend.name,
    ...(backend.mode === undefined ? {} : { mode: backend.mode }),
    guest: "elf",
    cpus: 1,
    ram: [{ slot: 0, gpa: hex(ramBaseFor(arch)), size: WARM_UP_RAM_BYTES, flags: 0 }],
    devices: [],
    disks: [],
    facts: {},
  };
}

/**
 * Receives one migration on `request.uri` and runs the guest to its ending.
 * @throws MigrationError (one line) when the stream is refused, broken or abandoned, before the
 *   guest runs (everything received is discarded); backend errors pass through.
 */
export async function receiveGuest(request: IncomingRequest): Promise<IncomingSummary> {
  await using listener = await listenOnce(request.uri, request.timeouts ?? DEFAULT_TIMEOUTS);
  // Announced once warm: a source that connects on the line finds the fast path. One that
  // connects earlier waits at most for the architecture being warmed.
  const accepted = listener.accept();
  let arrived = false;
  void accepted.then(() => (arrived = true));
  await warmUpTargets(request, () => arrived || request.stop?.requested() !== undefined);
  request.onListening?.(formatUri(listener.uri));
  const channel = await untilStopped(accepted, request.stop, () => undefined);
  let built: (Built & { description: MachineDescription }) | undefined;
  /**
   * The caller's `onMachine` (the CLI starts its control socket there: a listen(2) and a turn
   * of the event loop), started as soon as the machine exists rather than after GO, where it
   * added 1-5 ms to the guest's pause (the bench's 4 MiB migrations: the guest resumed 0.3-6 ms
   * after GO left the source). Its failure still surfaces before the guest runs.
   */
  let machineHook: Promise<{ error: unknown } | undefined> | undefined;
  const disks: ReturnType<typeof openDisks> = [];
  const { io, record, unclaimed } = runnerIo(request, new ConsoleRecord());
  try {
    const factory = {
      arches: Object.keys(ARCHES) as ArchName[],
      build: (origin: StreamOrigin, meta: SnapshotMeta): MigrationTarget => {
        const description = descriptionOf(meta, origin);
        checkExpectation(description, request.expect ?? {});
        const mode =
          description.backend === "soft" ? (request.mode ?? description.mode) : undefined;
        const backend = request.backendFor(description.arch, mode);
        if (backend.name !== description.backend) {
          throw refuse(
            `Cannot receive a ${description.backend} machine on the ${backend.name} backend`,
          );
        }
        const specs = description.disks.map((d) => ({ path: d.path, readOnly: d.readOnly }));
        disks.push(...openDisks(specs));
        const made = makeTarget(description, origin, backend, disks, {
          io,
          record,
          policy: request.policy,
        });
        built = { ...made, description };
        const hook = request.onMachine;
        if (hook !== undefined) {
          const machine = made.machine;
          machineHook = (async () => {
            await hook(machine);
          })().then(
            () => undefined,
            (error: unknown) => ({ error }),
          );
        }
        return made.target;
      },
    };
    const received = await untilStopped(
      // native: this process's only stream comes from another process (the source).
      receiveMigration(channel, factory, {
        native: true,
        ...(request.idleMs === undefined ? {} : { idleMs: request.idleMs }),
      }),
      request.stop,
      () => {
        channel.destroy();
      },
    );
    channel.destroy();
    request.onReceived?.({ bytes: received.bytes, rounds: received.rounds });
    const b = built as (Built & { description: MachineDescription }) | undefined;
    if (b === undefined) throw refuse("the stream built no machine");
    using machine = b.machine;
    const failed = await machineHook;
    if (failed !== undefined) throw failed.error;
    // (already called: see machineHook)
    const summary = await runMachine(
      machine,
      { ...request, onMachine: () => undefined },
      {
        format: b.description.guest,
        entry: 0n,
        unclaimed,
      },
    );
    return { ...summary, description: b.description };
  } finally {
    // A hook still starting when the stream failed: settled first, so that what it started (the
    // CLI's control socket) exists when the caller closes it.
    await machineHook;
    for (const disk of disks) disk.close();
  }
}

/** How often a wait for the source looks for a stop request (SIGINT/SIGTERM), ms. */
const STOP_POLL_MS = 50;

/**
 * Waits for `work` unless `stop` asks to end first: then `abandon()` (drop the connection) and
 * reject with a one-line MigrationError, so a destination still waiting for its guest ends on
 * SIGINT/SIGTERM (the guest never ran here; the source keeps it).
 */
async function untilStopped<T>(
  work: Promise<T>,
  stop: StopSource | undefined,
  abandon: () => void,
): Promise<T> {
  if (stop === undefined) return work;
  let timer: NodeJS.Timeout | undefined;
  const stopped = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      const ending = stop.requested();
      if (ending === undefined) return;
      abandon();
      reject(
        new MigrationError(
          "stopped",
          `Stopped waiting for the migration: ${ending.message}; nothing runs here, the source keeps the guest`,
        ),
      );
    }, STOP_POLL_MS);
  });
  try {
    return await Promise.race([work, stopped]);
  } finally {
    clearInterval(timer);
  }
}

function descriptionOf(meta: SnapshotMeta, origin: StreamOrigin): MachineDescription {
  const json = meta.machine;
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw refuse("Cannot receive the guest: the stream's META has no machine description");
  }
  const description = parseDescription(json as Record<string, unknown>);
  if (description.arch !== origin.arch) {
    throw refuse(
      `Cannot receive the guest: the stream's header says ${origin.arch}, its description ${description.arch}`,
    );
  }
  return description;
}
