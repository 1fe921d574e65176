/**
 * KVM `runAsync()` specifics beyond the conformance cases: the vCPU refuses other calls while
 * its thread is in KVM_RUN, and closing the VM mid-run ends the run instead of hanging.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { KvmSystem, kvmUnavailableReason, type KvmVcpu } from "../../../src/backends/kvm/index.js";
import type { KvmVm } from "../../../src/backends/kvm/vm.js";
import { VcpuBusyError } from "../../../src/backends/vcpu.js";
import { startRealMode } from "./helpers.js";

const skip = kvmUnavailableReason() ?? false;

/** A real-mode vCPU at 0x1000 spinning on `jmp $`. */
function spinner(system: KvmSystem): { vm: KvmVm; vcpu: KvmVcpu } {
  const vm = system.createVm();
  vm.addMemory({ guestPhysAddr: 0, size: 0x10000 }).bytes.set([0xeb, 0xfe], 0x1000);
  const vcpu = vm.createVcpu();
  startRealMode(vcpu, 0x1000n);
  return { vm, vcpu };
}

describe("KVM runAsync()", { skip }, () => {
  it("refuses register access and a second run while KVM_RUN is on its thread; kick ends it", async () => {
    using system = KvmSystem.open();
    const { vm, vcpu } = spinner(system);
    const running = vcpu.runAsync();
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.throws(() => vcpu.getRegs(), VcpuBusyError);
    assert.throws(() => vcpu.run(), VcpuBusyError);
    await assert.rejects(vcpu.runAsync(), VcpuBusyError);
    vcpu.kick();
    assert.equal((await running).kind, "intr");
    assert.equal(vcpu.getRegs().rip, 0x1000n, "the guest was in its loop");
    assert.equal(vcpu.immediateExit, false, "the consumed kick clears immediate_exit");
    vm.close();
  });

  it("closing the VM during a run ends the run with intr", async () => {
    using system = KvmSystem.open();
    const { vm, vcpu } = spinner(system);
    const running = vcpu.runAsync();
    await new Promise((resolve) => setTimeout(resolve, 30));
    vm.close();
    assert.equal((await running).kind, "intr");
  });
});
