/**
 * Exits in progress: KVM finishes a port-I/O IN/OUT (x86) or an SBI call (riscv) only on the
 * next KVM_RUN and shows none of that state to userspace (api.rst, KVM_RUN). These tests show
 * the state a naive capture would miss, that `Machine.captureState()` (which quiesces with a
 * kick, KVM's `immediate_exit`, and one run first) holds the completed state, and that restoring it resumes
 * exactly — in this process; e2e-restore covers the same in a new one.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { lookupReg } from "../../../src/abi/catalog.js";
import { decodeKvmRegs } from "../../../src/abi/kvm/x86-structs.js";
import type { RegId } from "../../../src/abi/regid.js";
import { captureVcpu, type VcpuState } from "../../../src/vmm/snapshot/index.js";
import { counted, demoBaseline, demoSnapshot, restoreDemo } from "./demo-run.js";
import { KVM_SKIP } from "./e2e-helpers.js";

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
    async () => {
      const regsId = lookupReg("x86", "REGS").id;
      const whole = await demoBaseline("kvm", { n: N });
      let naive: ReturnType<typeof decodeKvmRegs> | undefined;
      const stop = await demoSnapshot("kvm", IN_EXIT, {
        n: N,
        inspect: (m) => {
          const [vcpu] = m.vcpus;
          assert.ok(vcpu !== undefined);
          naive = decodeKvmRegs(valueOf(captureVcpu(vcpu), regsId));
        },
      });
      const exit = stop.summary.lastExit;
      assert.ok(exit?.kind === "io" && exit.direction === "in", "exit 66 is the IN of n");
      assert.ok(naive !== undefined);
      assert.notEqual(naive.rax & 0xffffffffn, BigInt(N), "KVM has not written RAX yet");

      const done = decodeKvmRegs(valueOf(stop.snapshot.vcpus[0], regsId));
      assert.equal(done.rax & 0xffffffffn, BigInt(N), "RAX holds the answer");
      assert.equal(done.rip, naive.rip + IN_LENGTH, "RIP is past the IN");

      let fin: ReturnType<typeof decodeKvmRegs> | undefined;
      const restored = await restoreDemo(stop.bytes, {
        afterRun: (m) => {
          const [vcpu] = m.vcpus;
          assert.ok(vcpu !== undefined);
          fin = decodeKvmRegs(valueOf(captureVcpu(vcpu), regsId));
        },
      });
      assert.equal(restored.ending.reason, "halt");
      assert.match(restored.output, /fib\(42\) = 267914296\n$/);
      assert.equal(fin?.r12, BigInt(N));
      assert.equal(fin.rbx, 267914296n, "fib(42) in RBX");
      assert.equal(counted(restored), whole.exits, "no exit repeated or lost");
    },
  );

  it(
    "x86 OUT: the captured RIP is past the `outb`, and the restored guest does not print it twice",
    { skip: KVM_SKIP },
    async () => {
      // Hardware-assisted KVM leaves RIP on a fast-path OUT until the next KVM_RUN; the emulator
      // path (kvm_pvm here) advances it before exiting. Either way the capture must be past it.
      const regsId = lookupReg("x86", "REGS").id;
      const whole = await demoBaseline("kvm");
      const stop = await demoSnapshot("kvm", 10);
      const done = decodeKvmRegs(valueOf(stop.snapshot.vcpus[0], regsId));
      const ram = stop.snapshot.memory.find((r) => r.gpa === 0n)?.data;
      assert.equal(
        ram?.[Number(done.rip) - 1],
        OUTB_AL_DX,
        "the byte before RIP is `outb %al, %dx`",
      );
      const restored = await restoreDemo(stop.bytes);
      assert.equal(stop.output + restored.output, whole.output);
      assert.equal(counted(restored), whole.exits);
    },
  );

  it("riscv SBI call: a0/a1 and pc are only complete after the immediate_exit run", async () => {
    const pc = lookupReg("riscv", "core.pc").id;
    const a0 = lookupReg("riscv", "core.a0").id;
    const a1 = lookupReg("riscv", "core.a1").id;
    let naive: VcpuState | undefined;
    // Exit 1: the DBCN write of the greeting line.
    const stop = await demoSnapshot("soft", 1, {
      inspect: (m) => {
        const [vcpu] = m.vcpus;
        assert.ok(vcpu !== undefined);
        naive = captureVcpu(vcpu);
      },
    });
    const done = stop.snapshot.vcpus[0];
    assert.equal(u64(valueOf(done, pc)), u64(valueOf(naive, pc)) + 4n, "pc past the ecall");
    assert.equal(u64(valueOf(done, a0)), 0n, "SBI_SUCCESS");
    const line = "Hello from a RISC-V guest on regvisor!\n";
    assert.equal(u64(valueOf(done, a1)), BigInt(line.length), "bytes written");
    assert.notEqual(u64(valueOf(naive, a1)), u64(valueOf(done, a1)));
  });
});
