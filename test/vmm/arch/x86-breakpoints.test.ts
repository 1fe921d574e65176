import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { KVM_GUESTDBG as G } from "../../../src/abi/kvm/constants.js";
import { KvmSystem, kvmUnavailableReason } from "../../../src/backends/kvm/index.js";
import {
  HW_SLOTS,
  KVM_PVM_DEBUG_FEATURES,
  SW_BREAKPOINT,
  X86Breakpoints,
} from "../../../src/vmm/arch/x86/gdb.js";
import { startRealMode } from "../../backends/kvm/helpers.js";

const VMX_LIKE = { swBreakpoints: true, watchpoints: true };

describe("X86Breakpoints (GDB Z/z on x86 guest debug)", () => {
  it("nothing set: guest debug off; a step alone is ENABLE | SINGLESTEP", () => {
    const b = new X86Breakpoints(KVM_PVM_DEBUG_FEATURES);
    assert.deepEqual(b.guestDebug(false), { control: 0 });
    assert.deepEqual(b.guestDebug(true), {
      control: G.ENABLE | G.SINGLESTEP,
      debugreg: [0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n],
    });
  });

  it("kvm_pvm: Z0 and Z1 take DR0-DR3 execution slots (L<n>, R/W 00, LEN 00); the fifth is an E reply", () => {
    const b = new X86Breakpoints(KVM_PVM_DEBUG_FEATURES);
    assert.equal(b.insert(0, 0x10_0000n, 1), "slot");
    assert.equal(b.insert(1, 0x10_0010n, 1), "slot");
    assert.equal(b.insert(0, 0x10_0000n, 1), "slot", "inserting it again takes no new slot");
    assert.equal(b.insert(0, 0xffff_ffff_8100_0000n, 1), "slot");
    assert.equal(b.insert(0, 0x10_0030n, 1), "slot");
    assert.deepEqual(b.guestDebug(false), {
      control: G.ENABLE | G.USE_HW_BP,
      debugreg: [0x10_0000n, 0x10_0010n, 0xffff_ffff_8100_0000n, 0x10_0030n, 0n, 0n, 0n, 0x455n],
    });
    assert.throws(
      () => b.insert(0, 0x10_0040n, 1),
      (e: unknown) =>
        e instanceof RangeError &&
        e.message ===
          "Cannot set a breakpoint at 0x100040: all 4 x86 debug registers (DR0-DR3) are in use; delete one first",
    );
    assert.equal(HW_SLOTS, 4);
    assert.equal(b.remove(0, 0x10_0010n, 1), false, "a Z1 address is not a Z0");
    assert.equal(b.remove(1, 0x10_0010n, 1), true);
    assert.equal(b.remove(1, 0x10_0010n, 1), false, "already gone");
    assert.equal(b.insert(0, 0x10_0040n, 1), "slot", "the freed slot is reused");
    assert.equal(b.guestDebug(false).debugreg?.[1], 0x10_0040n);
  });

  it("kvm_pvm: watchpoints are refused (empty reply: GDB falls back to software watchpoints)", () => {
    const b = new X86Breakpoints(KVM_PVM_DEBUG_FEATURES);
    for (const type of [2, 3, 4] as const) assert.equal(b.insert(type, 0x9000n, 4), false);
    assert.deepEqual(b.guestDebug(false), { control: 0 });
  });

  it("where the host reports them: Z2 write and Z4 access watchpoints with LEN; Z3 never (x86 has no read-only)", () => {
    const b = new X86Breakpoints(VMX_LIKE);
    assert.equal(b.insert(2, 0x9000n, 4), "slot");
    assert.equal(b.insert(4, 0x9008n, 8), "slot");
    assert.equal(b.insert(3, 0x9010n, 1), false);
    // DR0: L0, R/W 01, LEN 11 (4 bytes); DR1: L1, R/W 11, LEN 10 (8 bytes).
    const dr7 =
      0x400n | 0x1n | (0x1n << 16n) | (0x3n << 18n) | 0x4n | (0x3n << 20n) | (0x2n << 22n);
    assert.deepEqual(b.guestDebug(false).debugreg?.[7], dr7);
    assert.throws(() => b.insert(2, 0x9002n, 4), /watch 1, 2, 4 or 8 bytes aligned/);
    assert.throws(() => b.insert(2, 0x9000n, 3), /watch 1, 2, 4 or 8 bytes aligned/);
    assert.deepEqual(b.stopCause({ exception: 1, dr6: 0xffff_0ff1n }), {
      kind: "watch",
      address: 0x9000n,
    });
    assert.deepEqual(b.stopCause({ exception: 1, dr6: 0xffff_0ff2n }), {
      kind: "awatch",
      address: 0x9008n,
    });
  });

  it("where int3 is intercepted, Z0 is the target's memory breakpoint (USE_SW_BP) and takes no slot", () => {
    const b = new X86Breakpoints(VMX_LIKE);
    assert.equal(b.insert(0, 0x10_0000n, 1), "memory");
    assert.deepEqual(b.memoryBreakpoints(), [0x10_0000n]);
    assert.deepEqual([...SW_BREAKPOINT], [0xcc]);
    assert.deepEqual(b.guestDebug(false), {
      control: G.ENABLE | G.USE_SW_BP,
      debugreg: [0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n],
    });
    assert.deepEqual(b.stopCause({ exception: 3, dr6: 0n }), { kind: "swbreak" });
    assert.equal(b.remove(0, 0x10_0000n, 1), true);
    assert.deepEqual(b.memoryBreakpoints(), []);
  });

  it("stopCause: a Z0 slot is swbreak, a Z1 slot hwbreak, a single step none", () => {
    const b = new X86Breakpoints(KVM_PVM_DEBUG_FEATURES);
    b.insert(1, 0x2000n, 1);
    b.insert(0, 0x1000n, 1);
    assert.deepEqual(b.stopCause({ exception: 1, dr6: 0xffff_0ff1n }), { kind: "hwbreak" });
    assert.deepEqual(b.stopCause({ exception: 1, dr6: 0xffff_0ff2n }), { kind: "swbreak" });
    assert.equal(b.stopCause({ exception: 1, dr6: 0xffff_4ff0n }), undefined);
    assert.equal(b.stopCause({ exception: 1, dr6: 0xffff_0ff8n }), undefined, "DR3 is not ours");
  });

  it("stepOverPc leaves out the execution slot at that pc (it would fire again at once); clear() forgets all", () => {
    const b = new X86Breakpoints(KVM_PVM_DEBUG_FEATURES);
    b.insert(0, 0x1000n, 1);
    b.insert(0, 0x1010n, 1);
    assert.deepEqual(b.guestDebug(true, 0x1000n), {
      control: G.ENABLE | G.SINGLESTEP | G.USE_HW_BP,
      debugreg: [0n, 0x1010n, 0n, 0n, 0n, 0n, 0n, 0x404n],
    });
    b.clear();
    assert.deepEqual(b.guestDebug(false), { control: 0 });
  });
});

const kvmReason = kvmUnavailableReason();

describe(
  "X86Breakpoints on a KVM vCPU",
  { skip: kvmReason === undefined ? false : `needs /dev/kvm: ${kvmReason}` },
  () => {
    it("the DR7 it builds stops a real-mode guest at each breakpoint, and stepping over one moves on", () => {
      using system = KvmSystem.open();
      const vm = system.createVm();
      // nop ×4; hlt at 0x1000 (CS = 0).
      vm.addMemory({ guestPhysAddr: 0, size: 0x10000 }).bytes.set(
        [0x90, 0x90, 0x90, 0x90, 0xf4],
        0x1000,
      );
      const vcpu = vm.createVcpu();
      startRealMode(vcpu, 0x1000n);
      const b = new X86Breakpoints(KVM_PVM_DEBUG_FEATURES);
      b.insert(0, 0x1001n, 1);
      b.insert(1, 0x1003n, 1);
      vcpu.setGuestDebug(b.guestDebug(false));
      let exit = vcpu.run();
      assert.ok(exit.kind === "debug" && exit.pc === 0x1001n);
      assert.deepEqual(b.stopCause(exit), { kind: "swbreak" });
      vcpu.setGuestDebug(b.guestDebug(false, 0x1001n)); // continue from it: no step needed past DR0
      exit = vcpu.run();
      assert.ok(exit.kind === "debug" && exit.pc === 0x1003n, "the Z1 at 0x1003");
      assert.deepEqual(b.stopCause(exit), { kind: "hwbreak" });
      vcpu.setGuestDebug(b.guestDebug(true, 0x1003n));
      exit = vcpu.run();
      assert.ok(exit.kind === "debug" && exit.pc === 0x1004n);
      assert.equal(b.stopCause(exit), undefined, "a step");
      vm.close();
    });
  },
);
