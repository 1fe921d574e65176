/**
 * `regvisor restore FILE` over the machine: the snapshot is decoded and checked whole (format,
 * description, RAM layout, device sections), its disks are reattached by path and checked
 * (./machine/state.ts `checkDisk`: a changed or missing disk is refused unless
 * `allowDiskChange`), then an empty machine is built from the description on the injected
 * backend, RAM, registers (the restore policy) and devices are applied, and the guest runs on
 * through the same run loop as `regvisor run FILE` (./runner.ts `runMachine`).
 */
import type { DiskSpec } from "./machine/disks.js";
import { openDisks } from "./machine/disks.js";
import type { MachineBackend, RunMode } from "./machine/backend.js";
import { ConsoleRecord, Machine } from "./machine/machine.js";
import {
  applyVcpuPower,
  applyVcpuState,
  buildEmptyMachine,
  checkDisk,
  decodeMachineSnapshot,
  loadRam,
  restoreDevices,
  type MachineDescription,
  type VcpuStateReport,
} from "./machine/state.js";
import {
  ARCHES,
  MAX_CPUS,
  runMachine,
  runnerIo,
  type RunRequest,
  type RunSummary,
} from "./runner.js";
import { RestoreError } from "./snapshot/errors.js";
import type { RunProgress } from "./snapshot/machine.js";
import { regionLength } from "./snapshot/memory-pages.js";
import type { Snapshot } from "./snapshot/model.js";
import type { RestoreSnapshotOptions } from "./snapshot/restore.js";
import type { ImageArch } from "./image.js";

/** What to restore and how. */
export interface RestoreRequest extends Omit<
  RunRequest,
  "file" | "backendFor" | "backend" | "mode" | "memSize" | "disks"
> {
  /** The decoded snapshot. */
  readonly snapshot: Snapshot;
  /** Gives the backend for the architecture, in `mode` (default: the snapshot's). */
  readonly backendFor: (arch: ImageArch, mode: RunMode | undefined) => MachineBackend;
  readonly mode?: RunMode;
  /** Use the disks as they are even when they changed since the snapshot. */
  readonly allowDiskChange?: boolean;
  /** The register restore policy (`--on-missing`, `--on-extra`, `--on-size-mismatch`). */
  readonly policy?: RestoreSnapshotOptions;
}

/** What a restore did, besides the run. */
export interface RestoreSummary extends RunSummary {
  readonly description: MachineDescription;
  /** Exits the source had handled: the restored machine counts on from here. */
  readonly resumedAt: RunProgress;
  /** The console output recorded before the snapshot (its last MiB). */
  readonly outputBefore: Uint8Array;
  readonly report: VcpuStateReport & {
    readonly memory: { readonly slots: number; readonly bytes: number };
    readonly devices: readonly string[];
  };
}

function machineError(message: string): RestoreError {
  return new RestoreError("RESTORE_MACHINE", message);
}

/**
 * Rebuilds the machine of a snapshot and runs it to its ending.
 * @throws SnapshotFormatError (malformed machine sections), DiskChangedError, DiskError,
 *   RestoreError — all before the guest runs; backend errors pass through.
 */
export async function restoreGuest(request: RestoreRequest): Promise<RestoreSummary> {
  const { snapshot } = request;
  const state = decodeMachineSnapshot(snapshot);
  const { description } = state;
  if (description.cpus > MAX_CPUS)
    throw machineError(`Cannot restore: ${description.cpus} vCPUs, at most ${MAX_CPUS}`);
  if (request.allowDiskChange !== true) for (const disk of description.disks) checkDisk(disk);
  const mode = description.backend === "soft" ? (request.mode ?? description.mode) : undefined;
  if (request.mode !== undefined && description.backend !== "soft")
    throw machineError(
      `Cannot restore with --mode: the snapshot is of a ${description.backend} machine`,
    );
  const backend = request.backendFor(description.arch, mode);
  if (backend.name !== description.backend)
    throw machineError(
      `Cannot restore a ${description.backend} snapshot on the ${backend.name} backend`,
    );
  if (description.cpus > backend.maxVcpus)
    throw machineError(
      `Cannot restore ${description.cpus} vCPUs: the ${backend.name} backend runs at most ${backend.maxVcpus}`,
    );
  const specs: DiskSpec[] = description.disks.map((d) => ({ path: d.path, readOnly: d.readOnly }));
  const disks = openDisks(specs);
  try {
    const outputBefore = state.console;
    const { io, record, unclaimed } = runnerIo(request, new ConsoleRecord(outputBefore));
    const parts = buildEmptyMachine(ARCHES[description.arch], description, backend, io, disks);
    using machine = new Machine(parts, backend, io, {
      guest: description.guest,
      arch: description.arch,
      console: record,
      disks: specs,
      ...(description.cmdline === undefined ? {} : { cmdline: description.cmdline }),
    });
    loadRam(parts.vm, snapshot.memory);
    const vcpuReport = applyVcpuState(parts.vcpus, snapshot.arch, snapshot.vcpus, request.policy);
    applyVcpuPower(parts.vcpus, snapshot.devices);
    restoreDevices(parts.devices, snapshot.devices);
    machine.loadProgress(state.progress);
    const summary = await runMachine(machine, request, {
      format: description.guest,
      entry: 0n,
      unclaimed,
    });
    return {
      ...summary,
      description,
      resumedAt: state.progress,
      outputBefore,
      report: {
        ...vcpuReport,
        memory: {
          slots: snapshot.memory.length,
          bytes: snapshot.memory.reduce((n, r) => n + regionLength(r), 0),
        },
        devices: parts.devices.map((d) => d.device.name),
      },
    };
  } finally {
    for (const disk of disks) disk.close();
  }
}
