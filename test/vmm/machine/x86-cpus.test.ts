/**
 * `--cpus N` for bare-metal x86 guests on /dev/kvm: every vCPU starts at the entry in the same
 * mode, with `rdi` = its index (src/vmm/arch/x86/index.ts). Skips visibly without /dev/kvm.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { X86_PSEUDO, structFromPseudoValue } from "../../../src/abi/arch/x86/pseudo.js";
import { decodeKvmRegs } from "../../../src/abi/kvm/x86-structs.js";
import { kvmUnavailableReason } from "../../../src/backends/kvm/index.js";
import { backendPicker } from "../../../src/cli/backends.js";
import { runGuest } from "../../../src/vmm/runner.js";

const skip = kvmUnavailableReason();

describe("x86 machine with several vCPUs", () => {
  it("starts every vCPU at the entry with rdi = its index", { skip }, async () => {
    using backends = backendPicker();
    const seen: { rip: bigint; rdi: bigint }[] = [];
    // cli; hlt — a real-mode flat binary at 0x7c00: each vCPU halts with interrupts off.
    const s = await runGuest({
      file: new Uint8Array([0xfa, 0xf4]),
      backendFor: backends.backendFor,
      backend: "kvm",
      loadAddr: 0x7c00n,
      memSize: 1n << 20n,
      cpus: 3,
      output: () => undefined,
      collectRegisters: false,
      onMachine: (machine) => {
        for (const vcpu of machine.vcpus) {
          const value = vcpu.getOneReg(X86_PSEUDO.REGS.id);
          const regs = decodeKvmRegs(structFromPseudoValue(X86_PSEUDO.REGS, value));
          seen.push({ rip: regs.rip, rdi: regs.rdi });
        }
      },
    });
    assert.equal(s.ending.reason, "halt");
    assert.equal(s.cpus, 3);
    assert.deepEqual(
      seen.map((r) => r.rdi),
      [0n, 1n, 2n],
    );
    assert.ok(seen.every((r) => r.rip === seen[0]?.rip));
  });
});
