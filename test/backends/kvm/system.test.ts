import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { KvmError } from "../../../src/abi/kvm/errors.js";
import { KVM_CAP, KVM_SYNC_X86 } from "../../../src/abi/kvm/ioctls.js";
import { KvmClosedError, KvmSystem } from "../../../src/backends/kvm/index.js";
import { KVM_SKIP } from "./helpers.js";

describe("KvmSystem", () => {
  it("open() of a missing device names it, the errno and a fix", () => {
    assert.throws(
      () => KvmSystem.open({ path: "/nonexistent/kvm" }),
      (e: unknown) =>
        e instanceof KvmError &&
        e.is("ENOENT") &&
        e.message.startsWith("Cannot open /nonexistent/kvm: open failed with ENOENT") &&
        e.message.includes("modprobe"),
    );
  });

  it("open() checks the API version and answers capabilities", { skip: KVM_SKIP }, () => {
    using system = KvmSystem.open();
    assert.equal(system.apiVersion, 12);
    assert.equal(system.checkExtension("KVM_CAP_ONE_REG"), 1);
    assert.ok(system.vcpuMmapSize() >= 3 * 4096);
    using vm = system.createVm();
    assert.equal(vm.checkExtension(KVM_CAP.KVM_CAP_SYNC_REGS), KVM_SYNC_X86.VALID_FIELDS);
  });

  it(
    "getMsrIndexList() and getSupportedCpuid() return the host's tables",
    { skip: KVM_SKIP },
    () => {
      using system = KvmSystem.open();
      const msrs = system.getMsrIndexList();
      assert.ok(msrs.length > 10);
      assert.ok(msrs.includes(0x10), "IA32_TSC (0x10, Intel SDM vol. 4) is always saved");
      const cpuid = system.getSupportedCpuid();
      const ext = cpuid.find((e) => e.function === 0x80000001);
      assert.ok(ext !== undefined);
      // CPUID.80000001H:EDX bit 29 = long mode (Intel SDM vol. 2A, CPUID).
      assert.equal((ext.edx >>> 29) & 1, 1);
    },
  );

  it("close() twice is a no-op and later use names the closed object", { skip: KVM_SKIP }, () => {
    const system = KvmSystem.open();
    const vm = system.createVm();
    const vcpu = vm.createVcpu();
    vcpu.close();
    vcpu.close();
    assert.throws(
      () => vcpu.run(),
      (e: unknown) => e instanceof KvmClosedError && e.message.includes("vCPU 0 is closed"),
    );
    assert.throws(() => vcpu.getRegs(), KvmClosedError);
    assert.throws(() => vcpu.sync.valid, KvmClosedError);
    assert.throws(() => vcpu.regList(), KvmClosedError);
    system.close();
    system.close();
    assert.ok(vm.closed, "closing the system closes its VMs");
    assert.throws(() => vm.createVcpu(), KvmClosedError);
    assert.throws(() => system.createVm(), KvmClosedError);
  });
});
