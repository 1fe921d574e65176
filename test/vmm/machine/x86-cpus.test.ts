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

  it(
    "runs the secondary vCPUs at once, although the in-kernel LAPIC would hold them for INIT/SIPI",
    { skip },
    async () => {
      using backends = backendPicker();
      // Real mode at 0x7c00: vCPU n > 0 sets byte 0x600 + n and spins; vCPU 0 waits for bytes
      // 0x601 and 0x602, then writes 7 to the exit port. Left UNINITIALIZED, vCPUs 1 and 2 never
      // run and vCPU 0 spins until the timeout.
      //   85 ff 75 12        test %di,%di; jnz ap
      //   80 3e 01 06 01 75 f9   bsp: cmpb $1,0x601; jne bsp
      //   80 3e 02 06 01 75 f2   cmpb $1,0x602; jne bsp
      //   b0 07 e6 f4        mov $7,%al; out %al,$0xf4
      //   c6 85 00 06 01 eb fe   ap: movb $1,0x600(%di); jmp .
      const code = Buffer.from(
        "85ff7512" + "803e01060175f9" + "803e02060175f2" + "b007e6f4" + "c685000601ebfe",
        "hex",
      );
      const s = await runGuest({
        file: new Uint8Array(code),
        backendFor: backends.backendFor,
        backend: "kvm",
        loadAddr: 0x7c00n,
        memSize: 1n << 20n,
        cpus: 3,
        timeoutMs: 5000,
        output: () => undefined,
        collectRegisters: false,
      });
      assert.equal(s.ending.reason, "exit-port", s.ending.message);
      assert.equal(s.ending.status, 7);
    },
  );
});
