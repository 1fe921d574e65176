/**
 * Whole-machine snapshot and restore over `SnapshotMachine`, backend- and arch-agnostic.
 *
 * Capture (between two exits: after exit N was handled, before the next `run()`):
 *   1. `quiesce()` — complete the handled exit with an `immediate_exit` KVM_RUN, so no state
 *      hides in the kernel (a pending port-I/O IN result, an SBI return value);
 *   2. every vCPU: `regList()` then one `getManyRegs()` (ids unknown to the catalog included);
 *   3. guest RAM, one MEMORY section per memslot (all-zero pages elided by the encoder);
 *   4. devices `vmm.machine`, `vmm.run`, `vmm.console` (devices.ts).
 *
 * Restore into an empty destination (never run): decode and check everything first (format,
 * machine devices, kind, backend, memory layout), then the registers through
 * `restoreSnapshot()` (arch ordering data, all-or-nothing with rollback), then per-arch
 * fixups, then RAM and console/exit counters. A refused restore leaves the destination as it
 * was; the machine then continues its run loop where the source stopped.
 */
import {
  captureVcpu,
  restoreSnapshot,
  type RestoreReport,
  type RestoreSnapshotOptions,
} from "./restore.js";
import { applyArchFixups } from "./arch-fixups.js";
import {
  decodeMachineState,
  encodeConsole,
  encodeMachineConfig,
  encodeRunProgress,
  type MachineState,
} from "./devices.js";
import { RestoreError, SnapshotFormatError } from "./errors.js";
import { decodeSnapshot } from "./format.js";
import {
  layoutOf,
  layoutProblem,
  type MachineStep,
  type RunProgress,
  type SnapshotMachine,
} from "./machine.js";
import {
  MACHINE_KINDS,
  kindLayoutProblem,
  type DestinationOptions,
  type MachineKind,
} from "./machines/index.js";
import { regionLength } from "./memory-pages.js";
import type { Snapshot, SnapshotMeta } from "./model.js";

const PAGE = 4096;

/** Options of `captureMachine()`. */
export interface CaptureOptions {
  /** Extra META fields (e.g. `creator`). */
  readonly meta?: SnapshotMeta;
  /** Copy guest RAM (default true); false keeps live views, valid until the guest runs again. */
  readonly copyMemory?: boolean;
}

/**
 * Captures a whole machine between two exits.
 * @throws {KvmError} if a backend call fails; {Error} if the quiescing run does not return EINTR.
 */
export function captureMachine(m: SnapshotMachine, options: CaptureOptions = {}): Snapshot {
  m.quiesce();
  const progress = m.progress();
  const config = m.config();
  const copy = options.copyMemory ?? true;
  return {
    arch: m.arch,
    backend: m.backend,
    flags: 0,
    meta: {
      guest: config.kind,
      exitCount: progress.exits,
      time: new Date().toISOString(),
      ...options.meta,
    },
    vcpus: m.vcpus.map((v) => captureVcpu(v)),
    memory: m.memory().map((r) => (copy ? { ...r, data: r.data.slice() } : r)),
    devices: [
      encodeMachineConfig(config),
      encodeRunProgress(progress, true),
      encodeConsole(m.output()),
    ],
  };
}

/** How a run loop stopped. */
export interface RunResult {
  /** The last step taken, if any. */
  readonly last: MachineStep | undefined;
  /** `exit`: reached the requested exit; `limit`: `maxExits` steps taken. */
  readonly stopped: "exit" | "finished" | "unexpected" | "limit";
}

/** Runs `m` until its exit count reaches `stopAtExit`, the guest ends, or `maxExits` steps. */
export function runMachine(
  m: SnapshotMachine,
  options: { readonly stopAtExit?: number; readonly maxExits?: number } = {},
): RunResult {
  const maxSteps = options.maxExits ?? 1_000_000;
  let last: MachineStep | undefined;
  for (let steps = 0; ; steps++) {
    if (options.stopAtExit !== undefined && m.progress().exits >= options.stopAtExit)
      return { last, stopped: "exit" };
    if (steps >= maxSteps) return { last, stopped: "limit" };
    last = m.step();
    // Never "interrupted": this loop does not ask for interruptible steps.
    if (last.outcome === "finished" || last.outcome === "unexpected")
      return { last, stopped: last.outcome };
  }
}

/** A snapshot checked for a whole-machine restore. */
export interface PreparedRestore {
  readonly snapshot: Snapshot;
  readonly state: MachineState;
  readonly kind: MachineKind;
}

function machineError(message: string): RestoreError {
  return new RestoreError("RESTORE_MACHINE", message);
}

/**
 * Decodes and checks a snapshot for a whole-machine restore, touching nothing.
 * @throws {SnapshotFormatError} if the bytes or the machine devices are malformed.
 * @throws {RestoreError} RESTORE_MACHINE if the machine kind, backend or layout is unusable.
 */
export function prepareRestore(input: Snapshot | Uint8Array): PreparedRestore {
  const snapshot = input instanceof Uint8Array ? decodeSnapshot(input) : input;
  const state = decodeMachineState(snapshot);
  const kind = MACHINE_KINDS.get(state.config.kind);
  if (kind === undefined)
    throw machineError(`Cannot restore: unknown machine kind "${state.config.kind}"`);
  const problem = kind.configProblem(state.config);
  if (problem !== undefined)
    throw new SnapshotFormatError("SNAPSHOT_MALFORMED", `device "vmm.machine": ${problem}`);
  if (kind.arch !== snapshot.arch || !kind.backends.includes(snapshot.backend)) {
    throw machineError(
      `Cannot restore: a ${kind.kind} machine runs on ${kind.backends.join("/")} (${kind.arch}), the snapshot says ${snapshot.backend} (${snapshot.arch})`,
    );
  }
  // Declared RAM is bounded by what the machine kind has, before anything is allocated.
  const layoutTrouble = kindLayoutProblem(kind, state.config, snapshot.memory.map(layoutOf));
  if (layoutTrouble !== undefined) throw machineError(`Cannot restore: ${layoutTrouble}`);
  for (const m of snapshot.memory) {
    if (m.gpa % BigInt(PAGE) !== 0n || regionLength(m) % PAGE !== 0)
      throw machineError(
        `Cannot restore: memory slot ${m.slot} at 0x${m.gpa.toString(16)} (${regionLength(m)} bytes) is not page-aligned`,
      );
  }
  return { snapshot, state, kind };
}

/** Options of a whole-machine restore. */
export interface MachineRestoreOptions extends RestoreSnapshotOptions, DestinationOptions {}

/** What a whole-machine restore did (JSON-able). */
export interface MachineRestoreReport {
  readonly kind: string;
  /** Exits the source had handled: the restored machine counts on from here. */
  readonly resumedAt: RunProgress;
  readonly registers: RestoreReport;
  readonly memory: { readonly slots: number; readonly bytes: number };
  /** Per-arch post-restore writes (arch-fixups.ts). */
  readonly fixups: readonly string[];
}

/**
 * Restores a snapshot into `m`, an empty machine of the same kind and layout that has not run.
 * @throws {SnapshotFormatError} malformed input: nothing was written.
 * @throws {RestoreError} refused (nothing written) or failed and rolled back (see its code).
 */
export function restoreIntoMachine(
  m: SnapshotMachine,
  input: Snapshot | Uint8Array | PreparedRestore,
  options: MachineRestoreOptions = {},
): MachineRestoreReport {
  const { snapshot, state } = "kind" in input && "state" in input ? input : prepareRestore(input);
  if (m.arch !== snapshot.arch || m.config().kind !== state.config.kind) {
    throw machineError(
      `Cannot restore a ${state.config.kind} (${snapshot.arch}) snapshot into a ${m.config().kind} (${m.arch}) machine`,
    );
  }
  const problem = layoutProblem(snapshot.memory.map(layoutOf), m.memory().map(layoutOf));
  if (problem !== undefined) throw machineError(`Cannot restore: ${problem}`);
  const registers = restoreSnapshot(m.vcpus, snapshot, options);
  const fixups = applyArchFixups(snapshot.arch, m.vcpus, snapshot.vcpus);
  m.loadMemory(snapshot.memory);
  m.loadProgress(state.output, state.progress);
  return {
    kind: state.config.kind,
    resumedAt: state.progress,
    registers,
    memory: {
      slots: snapshot.memory.length,
      bytes: snapshot.memory.reduce((n, r) => n + regionLength(r), 0),
    },
    fixups,
  };
}

/**
 * Builds an empty destination for a checked snapshot (see `prepareRestore`).
 * @throws {TypeError} on options the machine kind refuses; backend errors pass through.
 */
export function emptyMachineFor(
  prepared: PreparedRestore,
  options: DestinationOptions = {},
): SnapshotMachine {
  const { snapshot, state, kind } = prepared;
  return kind.empty(state.config, snapshot.memory.map(layoutOf), snapshot.backend, options);
}

/**
 * Restores a snapshot into a fresh machine (new VM, memslots, vCPUs) ready to continue its run.
 * @throws {SnapshotFormatError} / {RestoreError} as `restoreIntoMachine`.
 */
export function restoreMachine(
  input: Snapshot | Uint8Array,
  options: MachineRestoreOptions = {},
): { machine: SnapshotMachine; report: MachineRestoreReport } {
  const prepared = prepareRestore(input);
  const machine = emptyMachineFor(prepared, options);
  try {
    return { machine, report: restoreIntoMachine(machine, prepared, options) };
  } catch (error) {
    machine.close();
    throw error;
  }
}
