/**
 * A machine that can be snapshotted whole: its vCPUs, guest RAM, and the VMM-side state the
 * guest needs to resume (console output so far, the exit count). vm-state.ts captures and
 * restores any `SnapshotMachine` without knowing its backend or arch; the machines in
 * machines/ implement it for the bundled demo guests (x86 on KVM, RISC-V on the soft backend).
 *
 * Exits are counted the way a VMM sees them: every `run()` return except `intr` (EINTR from a
 * signal, `immediate_exit` or the soft backend's time slice), so "exit N" is deterministic.
 */
import type { ArchName } from "../../abi/regid.js";
import type { Vcpu, VcpuExit } from "../../backends/vcpu.js";
import { regionLength } from "./memory-pages.js";
import type { MemoryRegion, SnapshotBackend } from "./model.js";

/** What one `step()` did. */
export interface MachineStep {
  /** The exit that was handled (or not). */
  readonly exit: VcpuExit;
  /**
   * `continue`: handled, the guest can run on; `finished`: the guest ended (x86 HLT, SBI SRST
   * shutdown); `unexpected`: an exit this machine's VMM does not handle (the run stops);
   * `interrupted`: only with `StepOptions.interruptible`, an `intr` exit (a signal, the soft
   * backend's time slice), not counted: nothing for the VMM to do, the caller may check a
   * deadline and step again.
   */
  readonly outcome: "continue" | "finished" | "unexpected" | "interrupted";
}

/** Options of `SnapshotMachine.step()`. */
export interface StepOptions {
  /** Return `interrupted` on an `intr` exit instead of running on (default false). */
  readonly interruptible?: boolean;
}

/** Where guest RAM sits, without its bytes: what a fresh destination must recreate. */
export interface MemoryLayout {
  readonly slot: number;
  readonly flags: number;
  readonly gpa: bigint;
  readonly size: number;
}

/** VMM-side progress carried in the snapshot (device "vmm.run"). */
export interface RunProgress {
  /** Exits handled so far (`intr` excluded). */
  readonly exits: number;
  /** The same exits by kind, e.g. `{ io: 66 }`. */
  readonly exitKinds: Readonly<Record<string, number>>;
}

/** Machine configuration carried in the snapshot (device "vmm.machine"), as JSON. */
export interface MachineConfig {
  /** Machine kind, e.g. `"x86-demo"`; selects the code that rebuilds the machine. */
  readonly kind: string;
  readonly [key: string]: unknown;
}

/** A whole VM whose state a snapshot can carry. */
export interface SnapshotMachine extends Disposable {
  readonly arch: ArchName;
  readonly backend: SnapshotBackend;
  /** The vCPUs, in index order. */
  readonly vcpus: readonly Vcpu[];
  /** The configuration needed to rebuild an empty machine of this shape. */
  config(): MachineConfig;
  /** Exits handled so far and by kind. */
  progress(): RunProgress;
  /** Everything the guest printed so far. */
  output(): Uint8Array;
  /** Runs the guest to its next exit that needs the VMM and handles it. */
  step(options?: StepOptions): MachineStep;
  /**
   * Completes the last exit without running guest code (KVM_RUN with `immediate_exit`): KVM
   * finishes a pending port-I/O IN/OUT, MMIO or SBI call only on the next KVM_RUN and keeps
   * that state out of userspace's view (api.rst, "KVM_RUN"), so a snapshot must follow this.
   * A no-op when nothing is pending.
   */
  quiesce(): void;
  /** Guest RAM as live views (not copies), one per memslot. */
  memory(): MemoryRegion[];
  /**
   * Copies snapshot RAM into the machine's memslots (same layout, checked by the caller),
   * which are still as the backend handed them out, all zero: only the pages the snapshot
   * holds are written (memory-pages.ts `forEachStoredPage`), so a restore costs what the file
   * holds, not the declared RAM.
   */
  loadMemory(regions: readonly MemoryRegion[]): void;
  /** Sets console output and exit counters from a snapshot (the machine must not have run). */
  loadProgress(output: Uint8Array, progress: RunProgress): void;
  close(): void;
}

/** A region's layout. */
export function layoutOf(m: MemoryRegion): MemoryLayout {
  return { slot: m.slot, flags: m.flags, gpa: m.gpa, size: regionLength(m) };
}

/** Why two layouts differ, or undefined when they are the same (order ignored). */
export function layoutProblem(
  want: readonly MemoryLayout[],
  have: readonly MemoryLayout[],
): string | undefined {
  const text = (l: MemoryLayout): string =>
    `slot ${l.slot} at 0x${l.gpa.toString(16)} (${l.size} bytes, flags 0x${l.flags.toString(16)})`;
  const bySlot = new Map(have.map((l) => [l.slot, l]));
  for (const w of want) {
    const h = bySlot.get(w.slot);
    if (h === undefined) return `the destination has no memory ${text(w)}`;
    if (h.gpa !== w.gpa || h.size !== w.size || h.flags !== w.flags)
      return `memory ${text(w)} is ${text(h)} on the destination`;
  }
  if (have.length !== want.length)
    return `the destination has ${have.length} memory slots, the snapshot ${want.length}`;
  return undefined;
}

/** Exit counting shared by the machines: bumps `progress` for a non-`intr` exit. */
export class ExitCounter {
  exits = 0;
  readonly kinds: Record<string, number> = {};

  /** Records one exit. */
  count(exit: VcpuExit): void {
    this.exits++;
    this.kinds[exit.kind] = (this.kinds[exit.kind] ?? 0) + 1;
  }

  /** The counters as `RunProgress`. */
  progress(): RunProgress {
    return { exits: this.exits, exitKinds: { ...this.kinds } };
  }

  /** Sets the counters (restore). */
  load(p: RunProgress): void {
    this.exits = p.exits;
    for (const k of Object.keys(this.kinds)) Reflect.deleteProperty(this.kinds, k);
    Object.assign(this.kinds, p.exitKinds);
  }
}
