/**
 * `regvisor run --incoming URI`: wait for one migration stream, build the machine it describes
 * (../machine/state.ts `buildEmptyMachine` on the injected backend, RAM with the source's
 * memslot flags, so the guest can move on again), fill it (./destination.ts), check and apply
 * the final state, and after the source's go-ahead run the guest through the same run loop as
 * `regvisor run FILE` (../runner.ts `runMachine`), console on the caller's output.
 *
 * Options that describe the machine, when the user gives them (`--mem`, `--cpus`, `--disk`,
 * `--backend`, `--cmdline`), must match the stream's description: a mismatch is refused with
 * one line before any page is accepted. Disks are reattached by path (shared storage, as QEMU
 * without block migration) and checked by size and SHA-256 at the switchover.
 */
import type { ArchName } from "../../abi/regid.js";
import type { ImageArch } from "../image.js";
import type { BackendName, MachineBackend, RunMode } from "../machine/backend.js";
import { openDisks, type DiskSpec } from "../machine/disks.js";
import { ConsoleRecord, Machine } from "../machine/machine.js";
import {
  applyVcpuState,
  buildEmptyMachine,
  captureVcpus,
  saveDevices,
  checkDisk,
  parseDescription,
  type MachineDescription,
} from "../machine/state.js";
import { applyVcpuPower, restoreDevices } from "../machine/state.js";
import { ARCHES, runMachine, runnerIo, type RunRequest, type RunSummary } from "../runner.js";
import type { StopSource } from "../runner-types.js";
import { decodeMachineState } from "../snapshot/devices.js";
import type { SnapshotMeta } from "../snapshot/model.js";
import type { RestoreSnapshotOptions } from "../snapshot/restore.js";
import { receiveMigration, type MigrationTarget, type StreamOrigin } from "./destination.js";
import { rehearseState } from "./stream.js";
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
  /** Called once the address listens (with the port the OS chose for port 0). */
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

/**
 * Receives one migration on `request.uri` and runs the guest to its ending.
 * @throws MigrationError (one line) when the stream is refused, broken or abandoned, before the
 *   guest runs (everything received is discarded); backend errors pass through.
 */
export async function receiveGuest(request: IncomingRequest): Promise<IncomingSummary> {
  await using listener = await listenOnce(request.uri, request.timeouts ?? DEFAULT_TIMEOUTS);
  request.onListening?.(formatUri(listener.uri));
  const channel = await untilStopped(listener.accept(), request.stop, () => undefined);
  let built: { machine: Machine; description: MachineDescription } | undefined;
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
        const parts = buildEmptyMachine(ARCHES[description.arch], description, backend, io, disks);
        const machine = new Machine(parts, backend, io, {
          guest: description.guest,
          arch: description.arch,
          console: record,
          disks: specs,
          ...(description.cmdline === undefined ? {} : { cmdline: description.cmdline }),
        });
        built = { machine, description };
        // The switchover restores the source's vCPU and device state while the guest is paused
        // on both sides. Restoring this fresh machine's own state through the same path now (a
        // round trip through its register list and the restore policy, then every device's own
        // state) takes the first-run cost of that path — 8-15 ms of the downtime here — out of
        // the pause, and proves this machine's register list restores before any page arrives.
        const own = { vcpus: captureVcpus(parts.vcpus), devices: saveDevices(parts.devices) };
        applyVcpuState(parts.vcpus, description.arch, own.vcpus, request.policy);
        restoreDevices(parts.devices, own.devices);
        // The same for the stream's decoder of VCPU_STATE and DEVICE frames.
        rehearseState(description.arch, origin.backend, own.vcpus, own.devices);
        return {
          memory: parts.vm.memory,
          applyVcpus: (vcpus, devices) => {
            const state = decodeMachineState({ devices });
            for (const disk of parseDescription(state.config).disks) checkDisk(disk);
            applyVcpuState(parts.vcpus, origin.arch, vcpus, request.policy);
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
    const b = built as { machine: Machine; description: MachineDescription } | undefined;
    if (b === undefined) throw refuse("the stream built no machine");
    using machine = b.machine;
    const summary = await runMachine(machine, request, {
      format: b.description.guest,
      entry: 0n,
      unclaimed,
    });
    return { ...summary, description: b.description };
  } finally {
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
