import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { KvmError } from "../../../src/abi/kvm/errors.js";
import { createSoftVm } from "../../../src/backends/soft/create.js";
import { SoftWorkerError } from "../../../src/backends/soft/threaded.js";
import { SoftVm, allocGuestMemory } from "../../../src/backends/soft/vm.js";
import { SBI_EID } from "../../../src/backends/soft/sbi.js";
import type { SoftMode } from "../../../src/backends/soft/vcpu.js";
import { I, R, li, place } from "./asm.js";
import { MODES, RAM_BASE, get, guest, reg, set } from "./helpers.js";

const report = (tag: number): number[] => [
  ...li(R.a7, SBI_EID.EXPERIMENTAL_START),
  ...li(R.a6, BigInt(tag)),
  I.ecall(),
];

/** Raises SEIP of vCPU 0 from another thread after `delayMs`, like a device thread would. */
function raiseLater(vm: SoftVm, delayMs: number): Worker {
  const sharedModule = new URL("../../../src/backends/soft/shared.js", import.meta.url).href;
  const code = `
    const { workerData } = require("node:worker_threads");
    import(workerData.sharedModule).then(({ VmShared }) => {
      const shared = new VmShared(workerData.buffer);
      setTimeout(() => shared.setSeip(0, true), workerData.delayMs);
    });`;
  return new Worker(code, {
    eval: true,
    workerData: { sharedModule, buffer: vm.shared.buffer, delayMs },
  });
}

describe("soft backend, threaded specifics", () => {
  it("a threaded VM refuses guest memory that is not a SharedArrayBuffer", () => {
    const threaded = createSoftVm({ mode: "threaded" });
    const plain = new Uint8Array(4096);
    assert.throws(() => {
      threaded.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0n, memory: plain });
    }, TypeError);
    threaded.close();
    const inline = createSoftVm({ mode: "inline" });
    inline.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0n, memory: plain });
    inline.close();
  });

  it("createVcpu reports a worker that cannot load its hart", () => {
    const vm = new SoftVm({
      mode: "threaded",
      hartModule: "data:text/javascript,export const x = 1;",
    });
    assert.throws(() => vm.createVcpu(), SoftWorkerError);
    vm.close();
  });

  it("a batch larger than the mailbox is a RangeError before crossing", () => {
    const vm = createSoftVm({ mode: "threaded" });
    const vcpu = vm.createVcpu();
    const ids = new Array(70_000).fill(reg("a0"));
    assert.throws(() => vcpu.getManyRegs(ids), RangeError);
    assert.equal(vcpu.getManyRegs([reg("a0")]).length, 8); // still usable
    vm.close();
  });

  it("inline and threaded end a program in the same register state", () => {
    const prog = [...li(R.a0, 0x1234_5678_9abc_def0n), ...li(R.s1, -5n), ...report(1), I.jal(0, 0)];
    const state = (mode: SoftMode): Uint8Array => {
      const { vm, vcpu } = guest(mode, prog);
      assert.equal(vcpu.run().kind, "riscv_sbi");
      const ids = vcpu.regList().filter((id) => id !== reg("timer.time"));
      const bytes = vcpu.getManyRegs(ids);
      vm.close();
      return bytes;
    };
    assert.deepEqual(state("threaded"), state("inline"));
  });

  it("kernel refusals cross the worker boundary as the same KvmError", () => {
    const message = (mode: SoftMode): string => {
      const { vm, vcpu } = guest(mode, [I.jal(0, 0)]);
      try {
        set(vcpu, "timer.frequency", 1n);
      } catch (error) {
        assert.ok(error instanceof KvmError);
        return error.message;
      } finally {
        vm.close();
      }
      return "no error";
    };
    assert.equal(message("threaded"), message("inline"));
  });

  for (const mode of MODES) {
    it(`KVM_INTERRUPT from another thread wakes a vCPU blocked in WFI (${mode})`, async () => {
      const prog = [I.wfi(), I.csrrs(R.a0, 0x144, 0), ...report(2)];
      const { vm, vcpu } = guest(mode, prog, { timeSliceMs: 10_000 });
      set(vcpu, "csr.sie", 0x200n);
      const helper = raiseLater(vm, 150);
      await new Promise((resolve) => setTimeout(resolve, 20)); // let the helper start
      const exit = vcpu.run();
      assert.equal(exit.kind, "riscv_sbi");
      assert.equal(get(vcpu, "a0") & 0x200n, 0x200n);
      assert.equal(get(vcpu, "core.pc") >= RAM_BASE, true);
      await helper.terminate();
      vm.close();
    });
  }

  it("the guest's RAM is the VMM's SharedArrayBuffer in both threads", () => {
    const vm = createSoftVm({ mode: "threaded" });
    const ram = allocGuestMemory(1 << 16);
    place(ram, 0, [
      ...li(R.t0, RAM_BASE + 0x100n),
      ...li(R.a0, 0x77n),
      I.sb(R.a0, R.t0, 0),
      ...report(3),
    ]);
    vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: RAM_BASE, memory: ram });
    const vcpu = vm.createVcpu();
    set(vcpu, "core.pc", RAM_BASE);
    assert.equal(vcpu.run().kind, "riscv_sbi");
    assert.equal(ram[0x100], 0x77); // sb a0, 0(t0) by the worker, seen here
    vm.close();
  });
});
