/**
 * What the control socket (./server.ts) can ask of a running machine. The machine
 * (src/vmm/machine) implements it; the API server only translates HTTP+JSON requests into these
 * calls, so it can be tested against any implementation.
 */
import { RegvisorError } from "../../errors.js";
import type { MigrationStatus } from "../migration/source.js";

/**
 * A request the machine refuses in its current state (e.g. a snapshot of a stopped machine), or
 * that failed. `httpStatus` is what the control socket answers: 409 for a state conflict, 400 for
 * a bad argument, 500 for a failure while doing it.
 */
export class ControlError extends RegvisorError {
  readonly httpStatus: 400 | 409 | 500;

  constructor(httpStatus: 400 | 409 | 500, message: string, options?: ErrorOptions) {
    super("CONTROL", message, options);
    this.httpStatus = httpStatus;
  }
}

/** Where a machine is in its life. */
export type MachineState = "starting" | "running" | "paused" | "stopped";

/** The answer to a status request. */
export interface MachineStatus {
  readonly state: MachineState;
  /** Number of vCPUs. */
  readonly vcpus: number;
  /** `run()` returns so far, all vCPUs together. */
  readonly exits: number;
  /** Milliseconds since the machine started running. */
  readonly uptimeMs: number;
  /**
   * When the machine started running, in milliseconds since the Unix epoch with sub-millisecond
   * digits (`performance.timeOrigin + performance.now()`: comparable across processes on one
   * host); absent before it runs. For a migrated guest: when it resumed at the destination.
   */
  readonly startedAt?: number;
  /** The guest kind (e.g. "linux", "elf", "flat", "demo") and architecture. */
  readonly guest: string;
  readonly arch: string;
  /** The backend and, for the soft backend, its mode. */
  readonly backend: string;
}

/** What a snapshot request wrote. */
export interface SnapshotResult {
  readonly path: string;
  readonly bytes: number;
}

/**
 * The operations of the control socket. Refusals are thrown as `ControlError`s with one-line
 * messages; anything else thrown is reported as a 500 with its message.
 */
export interface MachineControl {
  status(): MachineStatus;
  /** Parks every vCPU between exits; resolves when all are parked. A no-op when paused. */
  pause(): Promise<void>;
  /** Lets parked vCPUs run again. A no-op when running. */
  resume(): Promise<void>;
  /** Writes a snapshot of the whole machine to `path` (pausing around it if running). */
  snapshot(path: string): Promise<SnapshotResult>;
  /** Ends the machine: the run ends with reason "quit". */
  quit(): Promise<void>;
  /**
   * Live-migrates the guest to `request.uri` (src/vmm/migration/source.ts); resolves when done
   * with the final status. "completed": the machine then ends with reason "migrated"; "failed":
   * it runs on as before. Optional: a machine without it answers 409.
   */
  migrate?(request: MigrateRequest): Promise<MigrationStatus>;
  /** The current (or last) migration's status; `{"status": "none"}` before any. */
  migrationStatus?(): MigrationStatus;
}

/** The body of `PUT /migrate`. */
export interface MigrateRequest {
  /** `tcp:HOST:PORT` or `unix:PATH` of a `regvisor run --incoming` destination. */
  readonly uri: string;
  /** `--downtime-limit`, ms (default 300). */
  readonly downtimeLimitMs?: number;
  /** `--max-bandwidth`, bytes per second (default unlimited). */
  readonly maxBandwidth?: number;
}
