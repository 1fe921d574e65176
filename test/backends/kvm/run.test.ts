import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { KvmError } from "../../../src/abi/kvm/errors.js";
import { KVM_SYNC_X86 } from "../../../src/abi/kvm/ioctls.js";
import { KvmSystem, type KvmVcpu } from "../../../src/backends/kvm/index.js";
import { FLAT_LOAD_ADDRESS } from "../../../src/backends/kvm/flat-guest.js";
import { runDemo } from "../../vmm/snapshot/demo-run.js";
import type { VcpuExit } from "../../../src/backends/vcpu.js";
import { KVM_SKIP, exitLoop, x86, startRealMode } from "./helpers.js";

// guests/x86/exit-loop.S loops on `outb %al, $0x10`.
const LOOP_PORT = 0x10;

function ioExit(vcpu: KvmVcpu): Extract<VcpuExit, { kind: "io" }> {
  const exit = vcpu.run();
  assert.equal(exit.kind, "io");
  return exit;
}

describe("KVM run loop", { skip: KVM_SKIP }, () => {
  it("the demo prints the greeting and fib(n) computed in long mode, then halts", async () => {
    const result = await runDemo("kvm", {});
    assert.equal(
      result.output,
      "Hello from the regvisor demo guest, running in 64-bit long mode.\nfib(90) = 2880067194370816120\n",
    );
    assert.equal(result.lastExit?.kind, "hlt");
    assert.equal(result.exitKinds.hlt, 1);
    const rbx = result.registers.find((r) => r.name === "REGS");
    assert.ok(rbx !== undefined);
    assert.ok(rbx.pseudo);
    // kvm_regs.rbx is the second u64 (ABI doc §5.1).
    assert.equal(new DataView(rbx.value.buffer).getBigUint64(8, true), 2880067194370816120n);
    assert.ok(result.registers.some((r) => r.name === "LSTAR" && r.value.length === 8));
    assert.match((await runDemo("kvm", { n: 10 })).output, /fib\(10\) = 55\n$/);
  });

  it("an OUT exit carries port, size and the guest's byte", () => {
    using guest = exitLoop();
    const { vcpu } = guest;
    const exit = ioExit(vcpu);
    assert.equal(exit.direction, "out");
    assert.equal(exit.port, LOOP_PORT);
    assert.equal(exit.size, 1);
    assert.equal(exit.count, 1);
    const rax = vcpu.getRegs().rax;
    assert.equal(exit.data[0], Number(rax & 0xffn));
  });

  it("immediate_exit makes run() return an intr exit without entering the guest", () => {
    using guest = exitLoop();
    const { vcpu } = guest;
    ioExit(vcpu);
    const rip = vcpu.getRegs().rip;
    vcpu.immediateExit = true;
    assert.equal(vcpu.run().kind, "intr");
    assert.equal(vcpu.getRegs().rip, rip);
    vcpu.immediateExit = false;
    assert.equal(ioExit(vcpu).port, LOOP_PORT);
  });

  it("sync regs: a bit outside KVM_CAP_SYNC_REGS makes KVM_RUN fail with EINVAL", () => {
    using guest = exitLoop();
    const { vcpu } = guest;
    // Bit 31 is the probe the kernel selftest uses (x86/sync_regs_test.c).
    vcpu.sync.valid = 0x80000000;
    assert.throws(
      () => vcpu.run(),
      (e: unknown) => e instanceof KvmError && e.is("EINVAL") && e.ioctl === "KVM_RUN",
    );
    vcpu.sync.valid = 0;
    vcpu.sync.dirty = 0x80000000;
    assert.throws(
      () => vcpu.run(),
      (e: unknown) => e instanceof KvmError && e.is("EINVAL"),
    );
    vcpu.sync.dirty = 0;
    assert.equal(ioExit(vcpu).port, LOOP_PORT);
  });

  it("sync regs: requested groups are filled at every exit", () => {
    using guest = exitLoop();
    const { vcpu } = guest;
    assert.equal(vcpu.sync.supported, KVM_SYNC_X86.VALID_FIELDS);
    vcpu.sync.enableAll();
    ioExit(vcpu);
    assert.deepEqual(vcpu.sync.readRegs(), vcpu.getRegs());
    assert.deepEqual(vcpu.sync.readSregs(), vcpu.getSregs());
    assert.deepEqual(vcpu.sync.readEvents(), vcpu.getVcpuEvents());
    assert.equal(vcpu.sync.gprs[16], vcpu.getRegs().rip);
  });

  it("sync regs: a dirty REGS change is applied on the next run, and the bit is cleared", () => {
    using guest = exitLoop();
    const { vcpu } = guest;
    vcpu.sync.valid = KVM_SYNC_X86.REGS;
    ioExit(vcpu);
    const rax = vcpu.sync.gprs[0] ?? 0n;
    vcpu.sync.gprs[0] = rax + 0x100n;
    vcpu.sync.gprs[3] = 0xdddddddn; // rdx
    vcpu.sync.markDirty(KVM_SYNC_X86.REGS);
    assert.equal(ioExit(vcpu).data[0], Number((rax + 0x100n) & 0xffn), "the guest saw the new rax");
    assert.equal(vcpu.sync.dirty, 0);
    assert.equal(vcpu.getRegs().rdx, 0xdddddddn);
    // Without the dirty bit an edit is ignored.
    vcpu.sync.gprs[3] = 1n;
    ioExit(vcpu);
    assert.equal(vcpu.getRegs().rdx, 0xdddddddn);
  });

  it("MMIO: a write exits with its data, a read is completed from the exit's data", () => {
    using system = KvmSystem.open();
    using vm = system.createVm();
    // One page of RAM holds the code; 0x2000 has no memory slot, so accesses there are MMIO.
    const ram = vm.addMemory({ guestPhysAddr: FLAT_LOAD_ADDRESS, size: 4096 });
    // 16-bit real-mode code: mov $0x42,%al; mov %al,0x2000; mov 0x2000,%al; out %al,$0x10; hlt
    ram.bytes.set([0xb0, 0x42, 0xa2, 0x00, 0x20, 0xa0, 0x00, 0x20, 0xe6, 0x10, 0xf4]);
    using vcpu = vm.createVcpu();
    startRealMode(vcpu, FLAT_LOAD_ADDRESS);
    const write = vcpu.run();
    assert.ok(write.kind === "mmio" && write.isWrite);
    assert.equal(write.address, 0x2000n);
    assert.deepEqual([...write.data], [0x42]);
    const read = vcpu.run();
    assert.ok(read.kind === "mmio" && !read.isWrite);
    read.data[0] = 0x99;
    const out = vcpu.run();
    assert.ok(out.kind === "io" && out.direction === "out");
    assert.equal(out.data[0], 0x99);
    assert.equal(vcpu.run().kind, "hlt");
  });

  it("an exit's data view is empty (or zeros) after close instead of faulting", () => {
    const guest = exitLoop();
    const exit = ioExit(guest.vcpu);
    guest.vcpu.close();
    assert.equal(exit.data.length === 0 || exit.data[0] === 0, true);
    assert.throws(() => guest.vcpu.getOneReg(x86("LSTAR")), /vCPU 0 is closed/);
    guest[Symbol.dispose]();
  });
});
