/**
 * Memslot flags survive a snapshot: read-only and dirty-logging slots of a real VM (soft, and
 * KVM when /dev/kvm is there) go through MEMORY sections and come back as the same slots.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { KVM_MEM } from "../../../src/abi/kvm/ioctls.js";
import { KvmSystem, kvmUnavailableReason } from "../../../src/backends/kvm/index.js";
import { createSoftVm } from "../../../src/backends/soft/index.js";
import type { Vm } from "../../../src/backends/vcpu.js";
import {
  decodeSnapshot,
  encodeSnapshot,
  memslotFlags,
  memslotOptions,
} from "../../../src/vmm/snapshot/index.js";
import { sampleSnapshot } from "./samples.js";

const SHAPES = [
  { readOnly: false, logDirty: false },
  { readOnly: true, logDirty: false },
  { readOnly: false, logDirty: true },
] as const;

/** Adds one slot per shape, snapshots them, restores them into `fresh`, compares. */
function roundTrip(source: Vm, fresh: Vm): void {
  SHAPES.forEach((shape, i) => {
    source.addMemory({ guestPhysAddr: BigInt(i) * 0x10000n, size: 0x4000, ...shape });
  });
  const snapshot = {
    ...sampleSnapshot(),
    memory: source.memory.map((m) => ({
      slot: m.slot,
      flags: memslotFlags(m),
      gpa: m.guestPhysAddr,
      data: m.bytes.slice(),
    })),
  };
  const decoded = decodeSnapshot(encodeSnapshot(snapshot));
  for (const region of decoded.memory) {
    fresh.addMemory({
      slot: region.slot,
      guestPhysAddr: region.gpa,
      size: region.data.length,
      ...memslotOptions(region.flags),
    });
  }
  const shape = (vm: Vm): unknown[] =>
    vm.memory.map((m) => [m.slot, m.guestPhysAddr, m.readOnly, m.logDirty]);
  assert.deepEqual(shape(fresh), shape(source));
  assert.deepEqual(
    decoded.memory.map((m) => m.flags),
    [0, KVM_MEM.READONLY, KVM_MEM.LOG_DIRTY_PAGES],
  );
}

describe("memslot flags in snapshots", () => {
  it("soft: read-only and dirty-logging slots come back as they were", () => {
    using source = createSoftVm();
    using fresh = createSoftVm();
    roundTrip(source, fresh);
  });

  it(
    "kvm: read-only and dirty-logging slots come back as they were",
    { skip: kvmUnavailableReason() ?? false },
    () => {
      using system = KvmSystem.open();
      using source = system.createVm();
      using fresh = system.createVm();
      roundTrip(source, fresh);
    },
  );

  it("memslotOptions() refuses flag bits it cannot restore", () => {
    assert.throws(() => memslotOptions(KVM_MEM.GUEST_MEMFD), /flags 0x4: bits 0x4/);
    assert.deepEqual(memslotOptions(KVM_MEM.READONLY | KVM_MEM.LOG_DIRTY_PAGES), {
      readOnly: true,
      logDirty: true,
    });
  });
});
