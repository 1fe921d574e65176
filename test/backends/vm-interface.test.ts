import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { lookupReg } from "../../src/abi/catalog.js";
import { regSize } from "../../src/abi/regid.js";
import type { Vm } from "../../src/backends/vcpu.js";
import { KvmSystem, kvmUnavailableReason } from "../../src/backends/kvm/index.js";
import { createSoftVm } from "../../src/backends/soft/index.js";

/** One VMM routine written against the shared `Vm` interface only. */
function exercise(vm: Vm, base: bigint): void {
  const mem = vm.addMemory({ guestPhysAddr: base, size: 0x10000 });
  assert.equal(mem.bytes.length, 0x10000);
  assert.equal(mem.guestPhysAddr, base);
  assert.ok(mem.bytes.every((b) => b === 0));
  mem.bytes[0x123] = 0x5a;
  assert.equal(vm.memory.length, 1);
  assert.equal(vm.memory[0]?.bytes[0x123], 0x5a, "memory view shares the guest bytes");
  const second = vm.addMemory({ guestPhysAddr: base + 0x10000n, size: 0x1000 });
  assert.notEqual(second.slot, mem.slot, "the next free slot is chosen");
  assert.throws(() => vm.addMemory({ guestPhysAddr: base, size: 1000 }), RangeError);
  const vcpu = vm.createVcpu();
  assert.equal(vcpu.arch, vm.arch);
  const ids = vcpu.regList();
  assert.ok(ids.length > 0);
  const bytes = vcpu.getManyRegs(ids);
  assert.equal(
    bytes.length,
    ids.reduce((n, id) => n + regSize(id), 0),
  );
  vm.close();
  vm.close();
}

describe("the Vm interface", () => {
  it("a soft VM (inline) serves the shared VMM routine", () => {
    exercise(createSoftVm({ mode: "inline" }), 0x8000_0000n);
  });

  it("a soft VM (threaded) serves the shared VMM routine", () => {
    exercise(createSoftVm({ mode: "threaded" }), 0x8000_0000n);
  });

  it("a KVM VM serves the shared VMM routine", { skip: kvmUnavailableReason() ?? false }, () => {
    using kvm = KvmSystem.open();
    exercise(kvm.createVm(), 0n);
  });

  it("the soft VM rejects overlapping memory like KVM (EEXIST)", () => {
    using vm = createSoftVm();
    vm.addMemory({ guestPhysAddr: 0x8000_0000n, size: 0x2000 });
    assert.throws(
      () => vm.addMemory({ guestPhysAddr: 0x8000_1000n, size: 0x1000 }),
      (e: unknown) => e instanceof Error && "errnoName" in e && e.errnoName === "EEXIST",
    );
    assert.equal(vm.memory.length, 1, "a refused region changes nothing");
    assert.equal(lookupReg("riscv", "pc").arch, vm.arch);
  });
});
