/**
 * The running machine as a migration source (./source.ts), over the machine state API
 * (../machine/state.ts): its RAM and dirty logs, pause/resume between exits, and the state
 * capture of a paused machine (`Machine.captureState()`: every vCPU's last exit completed, one
 * `getManyRegs` batch per vCPU over its `regList()`, every device's state — device I/O is
 * synchronous on the main thread, so a paused machine has no request in flight).
 *
 * META carries the machine's description (disks by path, not hashed: they are checked at the
 * switchover through the `vmm.machine` section, which does hash them).
 */
import { ControlError } from "../api/control.js";
import type { Machine } from "../machine/machine.js";
import { snapshotBackend } from "../machine/state.js";
import type { MigrationSource } from "./source.js";

/** Time slice of an inline soft vCPU while its machine migrates, ms. */
const INLINE_SLICE_MS = 2;

/**
 * A source over `machine` as it is now.
 * @throws ControlError 409 when its backend cannot log dirty pages.
 */
export function machineSource(machine: Machine): MigrationSource {
  const { vm } = machine.parts;
  const getDirtyLog = vm.getDirtyLog?.bind(vm);
  const setLogging = vm.setDirtyLogging?.bind(vm);
  if (getDirtyLog === undefined || setLogging === undefined) {
    throw new ControlError(
      409,
      `Cannot migrate the machine: the ${machine.backend.name} backend cannot log dirty pages`,
    );
  }
  // A machine the user paused stays paused when a migration fails.
  const wasPaused = machine.status().state === "paused";
  // Inline soft vCPUs run on the main thread, which also feeds the socket: short slices while
  // the pre-copy runs (else the event loop turns once per 100 ms slice), the default after.
  const inline = machine.backend.mode === "inline";
  const slice = (ms: number | undefined): void => {
    if (!inline) return;
    for (const vcpu of machine.vcpus) {
      try {
        machine.backend.timeSlice?.(vcpu, ms);
      } catch {
        // The machine ended meanwhile (its vCPUs are closed): the migration fails on its own.
      }
    }
  };
  return {
    arch: vm.arch,
    backend: snapshotBackend(machine.backend),
    ram: { memory: vm.memory, getDirtyLog },
    describe: () => {
      const description = machine.describe({ hashDisks: false });
      return { creator: "regvisor", guest: description.kind, machine: { ...description } };
    },
    // Logging only while migrating: on at the start of the pre-copy, off again when it fails.
    // A soft memslot change needs the vCPUs parked (KVM takes it while they run; one path).
    setDirtyLogging: async (enabled, parked) => {
      const running = machine.status().state === "running";
      if (running) await machine.pause();
      try {
        for (const m of vm.memory) setLogging(m.slot, enabled);
        await parked?.();
      } finally {
        if (running) await machine.resume();
      }
    },
    start: () => {
      slice(INLINE_SLICE_MS);
    },
    end: () => {
      slice(undefined);
    },
    pause: () => machine.pause(),
    resume: () => (wasPaused ? Promise.resolve() : machine.resume()),
    capture: async () => {
      const state = await machine.captureState();
      return { vcpus: state.vcpus, devices: state.devices };
    },
  };
}
