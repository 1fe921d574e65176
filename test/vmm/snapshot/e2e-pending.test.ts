/**
 * Exits in progress: KVM finishes a port-I/O IN/OUT (x86) or an SBI call (riscv) only on the
 * next KVM_RUN and shows none of that state to userspace (api.rst, KVM_RUN). These tests show
 * the state a naive capture would miss, that `captureMachine()` (which quiesces with an
 * `immediate_exit` KVM_RUN first) holds the completed state, and that restoring it resumes
 * exactly — in this process; e2e-restore covers the same in a new one.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { lookupReg } from "../../../src/abi/catalog.js";
import { decodeKvmRegs } from "../../../src/abi/kvm/x86-structs.js";
import type { RegId } from "../../../src/abi/regid.js";
import { captureVcpu, encodeSnapshot, type VcpuState } from "../../../src/vmm/snapshot/index.js";
import { RiscvDemoMachine, X86DemoMachine } from "../../../src/vmm/snapshot/machines/index.js";
import { captureMachine, restoreMachine, runMachine } from "../../../src/vmm/snapshot/vm-state.js";
import { KVM_SKIP, baseline } from "./e2e-helpers.js";

const valueOf = (state: VcpuState | undefined, id: RegId): Uint8Array => {
  const v = state?.regs.find((r) => r.id === id)?.value;
  assert.ok(v !== undefined);
  return v;
};
const u64 = (b: Uint8Array): bigint => new DataView(b.buffer, b.byteOffset).getBigUint64(0, true);

/** Exit 66 of the x86 demo is its `inl %dx, %eax` of n (65 greeting characters before it). */
const IN_EXIT = 66;
const N = 42;
/** `inl %dx, %eax` is one byte (0xED). */
const IN_LENGTH = 1n;
/** Opcode of `outb %al, %dx` (Intel SDM vol. 2, OUT: EE). */
const OUTB_AL_DX = 0xee;

describe("an exit in progress at snapshot time", () => {
  it(
    "x86 IN: RAX and RIP are only complete after the immediate_exit run, and restore resumes with them",
    { skip: KVM_SKIP },
    () => {
      const regsId = lookupReg("x86", "REGS").id;
      const whole = baseline(X86DemoMachine.boot({ n: N }));
      using m = X86DemoMachine.boot({ n: N });
      const run = runMachine(m, { stopAtExit: IN_EXIT });
      const exit = run.last?.exit;
      assert.ok(exit?.kind === "io" && exit.direction === "in", "exit 66 is the IN of n");
      const naive = decodeKvmRegs(valueOf(captureVcpu(m.kvmVcpu), regsId));
      assert.notEqual(naive.rax & 0xffffffffn, BigInt(N), "KVM has not written RAX yet");

      const snap = captureMachine(m);
      const done = decodeKvmRegs(valueOf(snap.vcpus[0], regsId));
      assert.equal(done.rax & 0xffffffffn, BigInt(N), "RAX holds the answer");
      assert.equal(done.rip, naive.rip + IN_LENGTH, "RIP is past the IN");

      const restored = restoreMachine(encodeSnapshot(snap));
      using machine = restored.machine;
      assert.equal(runMachine(machine).stopped, "finished");
      const out = new TextDecoder().decode(machine.output());
      assert.match(out, /fib\(42\) = 267914296\n$/);
      const fin = decodeKvmRegs(valueOf(captureVcpu(machine.vcpus[0] ?? m.kvmVcpu), regsId));
      assert.equal(fin.r12, BigInt(N));
      assert.equal(fin.rbx, 267914296n, "fib(42) in RBX");
      assert.equal(machine.progress().exits, whole.exits, "no exit repeated or lost");
    },
  );

  it(
    "x86 OUT: the captured RIP is past the `outb`, and the restored guest does not print it twice",
    { skip: KVM_SKIP },
    () => {
      // Hardware-assisted KVM leaves RIP on a fast-path OUT until the next KVM_RUN; the emulator
      // path (kvm_pvm here) advances it before exiting. Either way the capture must be past it.
      const regsId = lookupReg("x86", "REGS").id;
      const whole = baseline(X86DemoMachine.boot());
      using m = X86DemoMachine.boot();
      runMachine(m, { stopAtExit: 10 });
      const snap = captureMachine(m);
      const done = decodeKvmRegs(valueOf(snap.vcpus[0], regsId));
      const ram = snap.memory.find((r) => r.gpa === 0n)?.data;
      assert.equal(
        ram?.[Number(done.rip) - 1],
        OUTB_AL_DX,
        "the byte before RIP is `outb %al, %dx`",
      );
      const restored = restoreMachine(encodeSnapshot(snap));
      using machine = restored.machine;
      runMachine(machine);
      assert.equal(new TextDecoder().decode(machine.output()), whole.output);
      assert.equal(machine.progress().exits, whole.exits);
    },
  );

  it("riscv SBI call: a0/a1 and pc are only complete after the immediate_exit run", () => {
    const pc = lookupReg("riscv", "core.pc").id;
    const a0 = lookupReg("riscv", "core.a0").id;
    const a1 = lookupReg("riscv", "core.a1").id;
    using m = RiscvDemoMachine.boot();
    runMachine(m, { stopAtExit: 1 }); // DBCN write of the greeting line
    const naive = captureVcpu(m.softVcpu);
    const snap = captureMachine(m);
    const done = snap.vcpus[0];
    assert.equal(u64(valueOf(done, pc)), u64(valueOf(naive, pc)) + 4n, "pc past the ecall");
    assert.equal(u64(valueOf(done, a0)), 0n, "SBI_SUCCESS");
    const line = "Hello from a RISC-V guest on regvisor!\n";
    assert.equal(u64(valueOf(done, a1)), BigInt(line.length), "bytes written");
    assert.notEqual(u64(valueOf(naive, a1)), u64(valueOf(done, a1)));
  });
});
