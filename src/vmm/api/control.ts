/**
 * What the control socket (./server.ts) can ask of a running machine. The machine
 * (src/vmm/machine) implements it; the API server only translates HTTP+JSON requests into these
 * calls, so it can be tested against any implementation.
 */

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

/** The operations of the control socket. Errors are thrown as `Error`s with one-line messages. */
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
}
