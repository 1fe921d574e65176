/**
 * The machine-level records a whole-machine snapshot carries besides registers, RAM and device
 * state (./devices.ts encodes them; src/vmm/machine/state.ts fills them from a running machine).
 *
 * Exits are counted the way a VMM sees them: every `run()` return except `intr` (a kick, a
 * signal or the soft backend's time slice), so "exit N" is deterministic for one vCPU.
 */

/** VMM-side progress carried in the snapshot (device "vmm.run"). */
export interface RunProgress {
  /** Exits handled so far (`intr` excluded). */
  readonly exits: number;
  /** The same exits by kind, e.g. `{ io: 66 }`. */
  readonly exitKinds: Readonly<Record<string, number>>;
}

/** Machine configuration carried in the snapshot (device "vmm.machine"), as JSON. */
export interface MachineConfig {
  /** Machine kind, e.g. `"riscv-linux"`, `"x86-demo"` (src/vmm/machine/state.ts). */
  readonly kind: string;
  readonly [key: string]: unknown;
}
