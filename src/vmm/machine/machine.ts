/**
 * The machine: one run loop implementation for every guest kind and architecture (issue 11
 * point 1, DESIGN.md §8). Each vCPU has its own async loop that awaits its exits — on the vCPU's
 * own thread through `runAsync()` where the backend has it, else `run()` after yielding to the
 * event loop — and every exit is answered here, on the main thread, by the arch part's devices.
 *
 * Pause parks every vCPU between exits (the last exit completed), using `kick()` to cut a long
 * run short; resume releases them; quit, `--timeout`, a console reader that went away or the
 * guest's own ending stop every loop. The machine implements the control socket's
 * `MachineControl` (src/vmm/api/control.ts).
 *
 * Rules shared by every architecture: an MMIO access no device claims reads as all-ones and
 * writes are dropped (reported once per address when tracing); `intr` exits only return control;
 * triple faults, internal errors, failed entries and unexpected exits end the run as faults.
 */
import type { Vcpu, VcpuExit } from "../../backends/vcpu.js";
import {
  ControlError,
  type MachineControl,
  type MachineState,
  type MachineStatus,
  type MigrateRequest,
  type SnapshotResult,
} from "../api/control.js";
import type { MigrationController } from "../migration/controller.js";
import type { MigrationSource, MigrationStatus } from "../migration/source.js";
import { writeFileSync } from "node:fs";
import { hex } from "../image.js";
import {
  consoleClosedEnding,
  faultEnding,
  migratedEnding,
  quitEnding,
  snapshotEnding,
  timeoutEnding,
} from "../runner-status.js";
import { encodeConsole, encodeMachineConfig, encodeRunProgress } from "../snapshot/devices.js";
import type { RunProgress } from "../snapshot/machine.js";
import type { Snapshot } from "../snapshot/model.js";
import { detachExit, formatExit } from "../runner-trace.js";
import { POLL_INTERVAL_MS, type RunEnding, type StopSource } from "../runner-types.js";
import type { MachineBackend } from "./backend.js";
import { describeMachine, type MachineDescription } from "./description.js";
import type { ArchMachine, MachineIo } from "./types.js";

/** A guest-debug exit. */
export type DebugExit = Extract<VcpuExit, { kind: "debug" }>;

/** Options of `Machine.run()`. */
export interface MachineRunOptions {
  /** `--timeout` in milliseconds. */
  readonly timeoutMs?: number;
  /** `--trace-exits`: one line per exit. */
  readonly trace?: (line: string) => void;
  /**
   * Asked every `POLL_INTERVAL_MS` while the machine runs: an ending to stop with (SIGINT and
   * SIGTERM through src/cli/signals.ts).
   */
  readonly stop?: StopSource;
  /**
   * `--snapshot-at-exit N`: end the run (reason "snapshot") once N exits (`intr` not counted,
   * all vCPUs together) were handled; 0 ends it before the first run.
   */
  readonly stopAtExit?: number;
}

/** What a run did. */
export interface MachineRunResult {
  readonly ending: RunEnding;
  /** The exit that ended the run (undefined for endings between exits), detached. */
  readonly lastExit: VcpuExit | undefined;
  /** `run()` returns of all vCPUs, the last one included, and their count by kind. */
  readonly exits: number;
  readonly exitKinds: Readonly<Record<string, number>>;
  /** Wall-clock time of the run, in ms. */
  readonly wallMs: number;
}

/** Describes the guest for `status()`. */
export interface MachineIdentity {
  /** "linux", "elf", "flat", "demo". */
  readonly guest: string;
  readonly arch: string;
  /** `--cmdline`, for the description. */
  readonly cmdline?: string;
  /** The disks by path, in virtio-blk order, for the description (reattached on restore). */
  readonly disks?: readonly { readonly path: string; readonly readOnly: boolean }[];
  /** The console output so far, for `vmm.console` (bounded, see `ConsoleRecord`). */
  readonly console?: ConsoleRecord;
}

/**
 * The tail of the guest's console output (at most `limit` bytes), carried in snapshots so that
 * `restore --json` can show what the guest printed before.
 */
export class ConsoleRecord {
  /** The output kept, in `buffer[0..length)`; at most `2 * limit` bytes. */
  private buffer: Uint8Array;
  private length = 0;
  private readonly limit: number;

  constructor(initial: Uint8Array = new Uint8Array(0), limit = 1 << 20) {
    this.limit = limit;
    this.buffer = new Uint8Array(Math.max(1, Math.min(4096, 2 * limit)));
    this.add(initial);
  }

  /**
   * Appends output, copied into one growing buffer: a Linux 6.1 boot writes ~5 K one-byte
   * chunks (SBI putchar), and an array of 5 K tiny copies cost more than the writes.
   */
  add(bytes: Uint8Array): void {
    const n = bytes.length;
    if (n === 0) return;
    if (n >= this.limit) {
      this.buffer = bytes.slice(n - this.limit);
      this.length = this.limit;
      return;
    }
    if (this.length + n > 2 * this.limit) {
      // Keep the last `limit` bytes: with `n < limit` the result stays within `2 * limit`.
      this.buffer.copyWithin(0, this.length - this.limit, this.length);
      this.length = this.limit;
    }
    if (this.length + n > this.buffer.length) {
      let size = this.buffer.length;
      while (size < this.length + n) size *= 2;
      const grown = new Uint8Array(Math.min(size, 2 * this.limit));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    this.buffer.set(bytes, this.length);
    this.length += n;
  }

  /** The last `limit` bytes (a copy). */
  bytes(): Uint8Array {
    return this.buffer.slice(Math.max(0, this.length - this.limit), this.length);
  }
}

/** How often `ArchMachine.poll()` runs (console input latency). */
const POLL_MS = 10;

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/**
 * Most milliseconds of back-to-back exits an inline vCPU serves before the event loop gets a
 * turn (timers, sockets, signals, the console's flush timer). A Linux boot's ~5000 one-byte SBI
 * console exits come tens of microseconds apart: one loop turn each cost more than the exit.
 * Far below the soft backend's 100 ms time slice, which already bounds how long a turn waits.
 */
const YIELD_EVERY_MS = 1;

/** A booted machine; `run()` once, then dispose. */
export class Machine implements MachineControl, Disposable {
  private state: MachineState = "starting";
  private exits = 0;
  private readonly kinds: Record<string, number> = {};
  private startedAt = 0;
  private ending: RunEnding | undefined;
  private lastExit: VcpuExit | undefined;
  private failure: { error: unknown } | undefined;
  private paused = false;
  private parked = 0;
  private live = 0;
  private release: (() => void) | undefined;
  private released: Promise<void> = Promise.resolve();
  private parkWaiters: (() => void)[] = [];
  /** Set by `enableMigration()`; the controller is loaded on the first migration. */
  private migrationSource: ((machine: Machine) => MigrationSource) | undefined;
  private migrations: Promise<MigrationController> | undefined;
  private migrationsLoaded: MigrationController | undefined;
  /** `intr` returns among `exits`: not exits to the VMM, not counted for `--snapshot-at-exit`. */
  private intrs = 0;
  /** When an inline vCPU last let the event loop run (`performance.now()`). */
  private lastYield = 0;
  /** The gdbstub's hook for `debug` exits (./debug.ts); unset, they end the run as faults. */
  private debugHook: ((exit: DebugExit, vcpu: Vcpu) => void) | undefined;
  private endingListeners: ((ending: RunEnding) => void)[] = [];
  private held = new Set<number>();
  private wakeHeld: (() => void) | undefined;
  private heldChanged = new Promise<void>((resolve) => (this.wakeHeld = resolve));

  constructor(
    readonly parts: ArchMachine,
    readonly backend: MachineBackend,
    private readonly io: MachineIo,
    private readonly identity: MachineIdentity,
  ) {
    io.console.onClosed((reason, errnoName) => {
      this.finish(consoleClosedEnding(reason, errnoName), undefined);
    });
  }

  /** The vCPUs, index order. */
  get vcpus(): readonly Vcpu[] {
    return this.parts.vcpus;
  }

  /**
   * Runs every vCPU until an ending.
   * @throws backend errors (a failed KVM_RUN), after every vCPU loop has stopped.
   */
  async run(options: MachineRunOptions = {}): Promise<MachineRunResult> {
    if (this.state !== "starting") throw new Error("Cannot run a machine twice");
    this.state = "running";
    this.startedAt = performance.now();
    const { timeoutMs } = options;
    const deadline = timeoutMs === undefined ? undefined : this.startedAt + timeoutMs;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            this.finish(timeoutEnding(timeoutMs), undefined);
          }, timeoutMs);
    const armed = deadline === undefined ? undefined : this.backend.armDeadline?.(deadline);
    const poll = this.parts.poll?.bind(this.parts);
    const poller = poll === undefined ? undefined : setInterval(poll, POLL_MS);
    const { stop } = options;
    const stopPoller =
      stop === undefined
        ? undefined
        : setInterval(() => {
            const ending = stop.requested();
            if (ending !== undefined) this.finish(ending, undefined);
          }, POLL_INTERVAL_MS);
    if (options.stopAtExit !== undefined && this.counted() >= options.stopAtExit) {
      this.finish(snapshotEnding(options.stopAtExit), undefined);
    }
    try {
      this.live = this.vcpus.length;
      await Promise.all(this.vcpus.map((vcpu) => this.loop(vcpu, deadline, options)));
    } finally {
      clearTimeout(timer);
      clearInterval(poller);
      clearInterval(stopPoller);
      // Stop the KVM kicker before anything else (registers, dispose) touches a vCPU.
      armed?.[Symbol.dispose]();
      this.state = "stopped";
      // Every vCPU has stopped: what they printed goes out before the run's ending is told.
      this.io.console.flush?.();
    }
    if (this.failure !== undefined) throw this.failure.error;
    const ending = this.ending ?? faultEnding("every vCPU stopped without an ending");
    return {
      ending,
      lastExit: this.lastExit,
      exits: this.exits,
      exitKinds: this.intrs === 0 ? { ...this.kinds } : { ...this.kinds, intr: this.intrs },
      wallMs: performance.now() - this.startedAt,
    };
  }

  /** Exits handled so far, `intr` not counted. */
  private counted(): number {
    return this.exits - this.intrs;
  }

  /** Exits handled so far (`intr` not counted) and by kind: the snapshot's `vmm.run`. */
  progress(): RunProgress {
    return { exits: this.counted(), exitKinds: { ...this.kinds } };
  }

  /** Continues the counters of the machine a state came from (before `run()`). */
  loadProgress(progress: RunProgress): void {
    if (this.state !== "starting")
      throw new Error("Cannot load exit counters into a running machine");
    this.exits = progress.exits;
    this.intrs = 0;
    for (const k of Object.keys(this.kinds)) Reflect.deleteProperty(this.kinds, k);
    Object.assign(this.kinds, progress.exitKinds);
  }

  private async loop(
    vcpu: Vcpu,
    deadline: number | undefined,
    options: MachineRunOptions,
  ): Promise<void> {
    try {
      for (;;) {
        // Awaiting only when there is something to wait for: an `await` costs a promise and a
        // microtask turn even on a settled value, and a Linux boot makes ~5 K exits.
        if (this.paused || this.held.size !== 0) await this.gate(vcpu);
        if (this.ending !== undefined) return;
        const exit = this.mayRunNow(vcpu) ? vcpu.run() : await this.enter(vcpu);
        this.exits++;
        if (exit.kind === "intr") this.intrs++;
        else this.kinds[exit.kind] = (this.kinds[exit.kind] ?? 0) + 1;
        if (options.trace !== undefined) {
          // The trace goes to stderr: the console output before this exit goes out first.
          this.io.console.flush?.();
          options.trace(
            `exit ${this.vcpus.length > 1 ? `vcpu${vcpu.index} ` : ""}${formatExit(exit)}`,
          );
        }
        const action =
          this.toDebugger(exit, vcpu) ??
          this.parts.handle(exit, vcpu) ??
          this.commonExit(exit, vcpu);
        if (action === "congested") await this.io.console.drained();
        else if (action !== "continue") {
          this.finish(action, detachExit(exit));
          return;
        }
        const { stopAtExit } = options;
        if (stopAtExit !== undefined && this.counted() >= stopAtExit) {
          this.finish(snapshotEnding(stopAtExit), detachExit(exit));
          return;
        }
        if (deadline !== undefined && performance.now() >= deadline) {
          this.finish(timeoutEnding(options.timeoutMs ?? 0), undefined);
          return;
        }
      }
    } catch (error) {
      this.failure ??= { error };
      this.finish(faultEnding("a vCPU failed"), undefined);
    } finally {
      this.live--;
      this.notifyParked();
    }
  }

  /** Hands a `debug` exit to the debug hook, if one is set. */
  private toDebugger(exit: VcpuExit, vcpu: Vcpu): "continue" | undefined {
    if (exit.kind !== "debug" || this.debugHook === undefined) return undefined;
    this.debugHook(exit, vcpu);
    return "continue";
  }

  /**
   * Whether an inline vCPU may enter now, synchronously: the event loop had a turn less than
   * `YIELD_EVERY_MS` ago (the checks `enter()` would make, without its promise).
   */
  private mayRunNow(vcpu: Vcpu): boolean {
    return vcpu.runAsync === undefined && performance.now() - this.lastYield < YIELD_EVERY_MS;
  }

  /** One trip into the guest, off the main thread where the backend can. */
  private async enter(vcpu: Vcpu): Promise<VcpuExit> {
    if (vcpu.runAsync !== undefined) return vcpu.runAsync();
    if (performance.now() - this.lastYield >= YIELD_EVERY_MS) {
      await yieldToEventLoop();
      this.lastYield = performance.now();
    }
    if (this.ending !== undefined) return { kind: "intr" };
    return vcpu.run();
  }

  /** Parks the calling loop while the machine is paused or its vCPU is held (`hold`). */
  private async gate(vcpu: Vcpu): Promise<void> {
    for (;;) {
      const held = this.held.has(vcpu.index);
      if ((!this.paused && !held) || this.ending !== undefined) return;
      this.parked++;
      this.notifyParked();
      await (this.paused ? this.released : this.heldChanged);
      this.parked--;
    }
  }

  /**
   * Keeps the vCPUs of these indexes parked while the others run (a debugger resuming some
   * threads only: `vCont;c:2`); an empty list holds none. Takes effect at each vCPU's next exit.
   */
  hold(indexes: readonly number[]): void {
    this.held = new Set(indexes);
    this.releaseHeld();
  }

  private releaseHeld(): void {
    const wake = this.wakeHeld;
    this.heldChanged = new Promise((resolve) => (this.wakeHeld = resolve));
    wake?.();
  }

  private notifyParked(): void {
    if (this.parked < this.live) return;
    const waiters = this.parkWaiters;
    this.parkWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Records the first ending and makes every vCPU loop stop. */
  private finish(ending: RunEnding, exit: VcpuExit | undefined): void {
    if (this.ending !== undefined) return;
    this.ending = ending;
    this.lastExit = exit;
    for (const listener of this.endingListeners.splice(0)) listener(ending);
    this.paused = false;
    this.release?.();
    this.releaseHeld();
    for (const vcpu of this.vcpus) vcpu.kick?.();
  }

  /** The rules for exits no arch part claimed (module header). */
  private commonExit(exit: VcpuExit, vcpu: Vcpu): RunEnding | "continue" {
    switch (exit.kind) {
      case "intr":
        return "continue";
      case "mmio":
        if (exit.isWrite) {
          this.io.unclaimed("mmio write", exit.address, "ignored");
        } else {
          exit.data.fill(0xff);
          this.io.unclaimed("mmio read", exit.address, "read as all-ones");
        }
        return "continue";
      case "shutdown":
        return faultEnding(
          "triple fault (KVM_EXIT_SHUTDOWN): an exception the guest cannot handle",
        );
      case "internal_error": {
        const detail = this.backend.faultDetail?.(vcpu);
        const text = detail === undefined || detail === "" ? "" : `: ${detail}`;
        return faultEnding(`internal error, suberror ${exit.suberror}${text}`);
      }
      case "fail_entry":
        return faultEnding(`VM entry failed, hardware reason ${hex(exit.reason)}`);
      case "unsupported":
        return faultEnding(`unsupported exit ${exit.exitReason} (${exit.reason})`);
      default:
        return faultEnding(`unexpected ${exit.kind} exit`);
    }
  }

  /** Where the machine is, for the control socket. */
  status(): MachineStatus {
    const mode = this.backend.mode === undefined ? "" : ` (${this.backend.mode})`;
    return {
      state: this.state === "running" && this.paused ? "paused" : this.state,
      vcpus: this.vcpus.length,
      exits: this.exits,
      uptimeMs: this.state === "starting" ? 0 : Math.round(performance.now() - this.startedAt),
      ...(this.state === "starting" ? {} : { startedAt: performance.timeOrigin + this.startedAt }),
      guest: this.identity.guest,
      arch: this.identity.arch,
      backend: `${this.backend.name}${mode}`,
    };
  }

  /**
   * Routes `debug` exits (guest debug, `Vcpu.setGuestDebug`) to `hook` instead of the fault
   * rule; the vCPU's loop then goes on (parking if the hook paused the machine).
   */
  setDebugHook(hook: ((exit: DebugExit, vcpu: Vcpu) => void) | undefined): void {
    this.debugHook = hook;
  }

  /** Calls `listener` once with the ending when the run ends (at once if it has ended). */
  onEnding(listener: (ending: RunEnding) => void): void {
    if (this.ending !== undefined) listener(this.ending);
    else this.endingListeners.push(listener);
  }

  /**
   * Before `run()`: makes the run start with every vCPU parked, so no guest instruction runs
   * until `resume()` (`run --gdb --gdb-wait`).
   * @throws ControlError 409 once the machine runs.
   */
  holdAtStart(): void {
    if (this.state !== "starting") {
      throw new ControlError(409, `Cannot hold the machine at its start: it is ${this.state}`);
    }
    if (!this.paused) {
      this.paused = true;
      this.released = new Promise((resolve) => (this.release = resolve));
    }
  }

  /** Parks every vCPU between exits; resolves when all are parked. */
  async pause(): Promise<void> {
    // 409 on the control socket: a state conflict, not a failure.
    if (this.state !== "running")
      throw new ControlError(409, `Cannot pause the machine: it is ${this.state}`);
    if (!this.paused) {
      this.paused = true;
      this.released = new Promise((resolve) => (this.release = resolve));
      for (const vcpu of this.vcpus) vcpu.kick?.();
    }
    if (this.parked >= this.live) {
      this.io.console.flush?.();
      return;
    }
    // vCPUs without kick(): a KVM run that never exits needs the signal kicker to come back.
    const kicker = this.vcpus.some((v) => v.kick === undefined)
      ? this.backend.armDeadline?.(performance.now())
      : undefined;
    try {
      await new Promise<void>((resolve) => this.parkWaiters.push(resolve));
    } finally {
      kicker?.[Symbol.dispose]();
      // A paused guest prints nothing more: show what it printed up to the pause.
      this.io.console.flush?.();
    }
  }

  /** Lets parked vCPUs run again. */
  resume(): Promise<void> {
    if (this.state !== "running") {
      return Promise.reject(
        new ControlError(409, `Cannot resume the machine: it is ${this.state}`),
      );
    }
    if (this.paused) {
      this.paused = false;
      this.release?.();
    }
    return Promise.resolve();
  }

  /**
   * Describes the machine (./state.ts); hashes every disk unless `hashDisks` is false.
   * @throws DiskChangedError when a disk file cannot be read.
   */
  describe(options: { readonly hashDisks?: boolean } = {}): MachineDescription {
    const { identity } = this;
    return describeMachine({
      parts: this.parts,
      backend: this.backend,
      guest: identity.guest,
      disks: identity.disks ?? [],
      ...(identity.cmdline === undefined ? {} : { cmdline: identity.cmdline }),
      ...(options.hashDisks === undefined ? {} : { hashDisks: options.hashDisks }),
    });
  }

  /**
   * The whole machine as a snapshot: the description, exit counters and console record, every
   * vCPU's registers (after completing its last exit), RAM as live views (valid until the guest
   * runs again: encode before resuming) and every device's state.
   * @throws ControlError 409 unless the machine is paused, stopped or not started.
   */
  async captureState(meta: Snapshot["meta"] = {}): Promise<Snapshot> {
    const parked = this.state === "running" && this.paused && this.parked >= this.live;
    if (!(parked || this.state === "stopped" || this.state === "starting")) {
      throw new ControlError(409, `Cannot capture the machine's state: it is ${this.state}`);
    }
    // The capture code (and the snapshot planner and x86 catalogs behind it) loads on the
    // first capture, not at every start.
    const {
      captureVcpuPower,
      captureVcpus,
      quiesceVcpus,
      ramRegions,
      saveDevices,
      snapshotBackend,
    } = await import("./state.js");
    await quiesceVcpus(this.vcpus);
    this.io.console.flush?.();
    // Before the registers: reading a RISC-V power state applies a posted HSM hart_start,
    // which resets that hart's registers.
    const power = captureVcpuPower(this.vcpus);
    const description = this.describe();
    const progress = this.progress();
    return {
      arch: this.parts.vm.arch,
      backend: snapshotBackend(this.backend),
      flags: 0,
      meta: {
        guest: description.kind,
        exitCount: progress.exits,
        time: new Date().toISOString(),
        creator: "regvisor",
        ...meta,
      },
      vcpus: captureVcpus(this.vcpus),
      memory: ramRegions(this.parts.vm),
      devices: [
        encodeMachineConfig({ ...description }),
        encodeRunProgress(progress, true),
        encodeConsole(this.identity.console?.bytes() ?? new Uint8Array(0)),
        ...power,
        ...saveDevices(this.parts.devices),
      ],
    };
  }

  /**
   * Writes a snapshot of the whole machine to `path`: pauses a running machine, captures and
   * encodes it, writes the file, and resumes (also when something failed).
   * @throws ControlError 409 when the machine is not running or stopped; 500 when it failed.
   */
  async snapshot(path: string): Promise<SnapshotResult> {
    if (this.state === "starting")
      throw new ControlError(409, `Cannot snapshot to ${path}: the machine has not started`);
    const wasPaused = this.paused;
    if (this.state === "running") await this.pause();
    try {
      // Imported here: only a run that takes a snapshot needs the encoder.
      const { encodeSnapshot } = await import("../snapshot/format.js");
      const bytes = encodeSnapshot(await this.captureState());
      writeFileSync(path, bytes);
      return { path, bytes: bytes.length };
    } catch (error) {
      if (error instanceof ControlError) throw error;
      const why = error instanceof Error ? error.message : String(error);
      throw new ControlError(500, `Cannot snapshot to ${path}: ${why}`, { cause: error });
    } finally {
      if (this.state === "running" && !wasPaused) await this.resume();
    }
  }

  /**
   * Makes the machine migratable (src/vmm/migration): `source` lends its RAM (with dirty
   * logging), pause/resume and state capture to one migration at a time.
   */
  enableMigration(source: (machine: Machine) => MigrationSource): void {
    this.migrationSource = source;
  }

  /** Live-migrates the guest (control socket `PUT /migrate`). */
  migrate(request: MigrateRequest): Promise<MigrationStatus> {
    const source = this.migrationSource;
    if (source === undefined) {
      return Promise.reject(
        new ControlError(
          409,
          "Cannot migrate the machine: it was started without migration support",
        ),
      );
    }
    this.migrations ??= this.loadMigrations(source);
    return this.migrations.then((controller) => controller.migrate(request));
  }

  /**
   * The migration controller, imported on the first migration: a run that never migrates (a
   * Linux boot) does not load src/vmm/migration at start.
   */
  private async loadMigrations(
    source: (machine: Machine) => MigrationSource,
  ): Promise<MigrationController> {
    const { MigrationController } = await import("../migration/controller.js");
    this.migrationsLoaded = new MigrationController({
      state: () => this.status().state,
      source: () => source(this),
      migrated: (where) => {
        this.finish(migratedEnding(where), undefined);
      },
    });
    return this.migrationsLoaded;
  }

  /** The current or last migration (control socket `GET /migrate`). */
  migrationStatus(): MigrationStatus {
    return this.migrationsLoaded?.status() ?? { status: "none" };
  }

  /** Ends the run with reason "quit". */
  quit(): Promise<void> {
    this.finish(quitEnding(), undefined);
    return Promise.resolve();
  }

  [Symbol.dispose](): void {
    this.parts[Symbol.dispose]();
  }
}
