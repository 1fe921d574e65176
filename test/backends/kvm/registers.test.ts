import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { decodeReg } from "../../../src/abi/catalog.js";
import { KvmError } from "../../../src/abi/kvm/errors.js";
import { isPseudoRegId, pseudoRegId, X86_PSEUDO } from "../../../src/abi/arch/x86/index.js";
import { formatRegId, regSize, type RegId } from "../../../src/abi/regid.js";
import { encodeKvmRegs, decodeKvmRegs } from "../../../src/abi/kvm/x86-structs.js";
import { KVM_SKIP, exitLoop, recordIoctls, x86 } from "./helpers.js";

// Registers whose value moves on its own between two reads.
const VOLATILE = new Set<RegId>([x86("IA32_TSC")]);

function u64(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, value, true);
  return out;
}

describe("KVM x86 register view", { skip: KVM_SKIP }, () => {
  it("regList() holds MSRs and pseudo-registers, and every id reads back at its size", () => {
    using guest = exitLoop();
    const ids = guest.vcpu.regList();
    assert.equal(new Set(ids).size, ids.length, "no duplicate ids");
    for (const name of [
      "IA32_TSC",
      "LSTAR",
      "REGS",
      "SREGS",
      "FPU",
      "XSAVE",
      "VCPU_EVENTS",
      "MP_STATE",
      "CPUID",
    ]) {
      assert.ok(ids.includes(x86(name)), `${name} is in the view`);
    }
    for (const id of guest.vcpu.kernelRegList()) assert.ok(ids.includes(id));
    const packed = guest.vcpu.getManyRegs(ids);
    let offset = 0;
    for (const id of ids) {
      const value = guest.vcpu.getOneReg(id);
      assert.equal(value.length, regSize(id), `${formatRegId(id)} size`);
      if (!VOLATILE.has(id)) {
        assert.deepEqual(
          packed.subarray(offset, offset + value.length),
          value,
          decodeReg(id).known ? String(id) : "",
        );
      }
      offset += value.length;
    }
    assert.equal(packed.length, offset);
  });

  it("writing back what was read succeeds for every id, and new values round-trip", () => {
    // With the in-kernel irqchip: KVM_ASYNC_PF_INT reads without one but refuses writes
    // (kvm_pv_enable_async_pf_int needs an in-kernel LAPIC), and LAPIC joins the view.
    using guest = exitLoop({ irqchip: true });
    const { vcpu } = guest;
    vcpu.run(); // past the first run, where some state becomes immutable
    const ids = vcpu.regList();
    assert.ok(ids.includes(x86("LAPIC")));
    for (const id of ids) vcpu.setOneReg(id, vcpu.getOneReg(id));
    vcpu.setManyRegs(ids, vcpu.getManyRegs(ids));
    const msrs: [string, bigint][] = [
      ["LSTAR", 0xffffffff81000000n],
      ["STAR", 0x0023001000000000n],
      ["CSTAR", 0xffffffff81000040n],
      ["SYSCALL_MASK", 0x47700n],
      ["KERNEL_GS_BASE", 0xffff888000000000n],
      ["IA32_SYSENTER_CS", 0x10n],
      ["IA32_SYSENTER_ESP", 0x1234000n],
      ["IA32_SYSENTER_EIP", 0xffffffff81001000n],
      ["IA32_CR_PAT", 0x0007040600070406n],
    ];
    for (const [name, value] of msrs) {
      vcpu.setOneReg(x86(name), value);
      assert.deepEqual(vcpu.getOneReg(x86(name)), u64(value), name);
    }
    const regs = decodeKvmRegs(vcpu.getOneReg(x86("REGS")));
    regs.r13 = 0x1313131313131313n;
    const value = new Uint8Array(X86_PSEUDO.REGS.size);
    value.set(encodeKvmRegs(regs));
    vcpu.setOneReg(x86("REGS"), value);
    assert.equal(vcpu.getRegs().r13, 0x1313131313131313n);
    const debug = vcpu.getDebugRegs();
    vcpu.setDebugRegs({ ...debug, db: [0x1000n, 0x2000n, 0n, 0n] });
    assert.deepEqual(vcpu.getDebugRegs().db, [0x1000n, 0x2000n, 0n, 0n]);
  });

  it("an unknown MSR id gives a KvmError naming the register", () => {
    using guest = exitLoop();
    const id = x86("MSR(0xdeadbeef)");
    assert.throws(
      () => guest.vcpu.getOneReg(id),
      (e: unknown) =>
        e instanceof KvmError &&
        e.is("EINVAL") &&
        e.ioctl === "KVM_GET_ONE_REG" &&
        e.regId === id &&
        e.regName === "x86 MSR(0xdeadbeef)" &&
        e.message.includes(formatRegId(id)),
    );
  });

  it("a wrong-size value is a RangeError before any syscall", () => {
    using guest = exitLoop();
    const seen = recordIoctls(() => {
      assert.throws(() => {
        guest.vcpu.setOneReg(x86("LSTAR"), new Uint8Array(4));
      }, RangeError);
      assert.throws(() => {
        guest.vcpu.setOneReg(x86("REGS"), new Uint8Array(144));
      }, RangeError);
      assert.throws(() => {
        guest.vcpu.setOneReg(x86("LSTAR"), 1n << 64n);
      }, RangeError);
      assert.throws(() => {
        guest.vcpu.setManyRegs([x86("LSTAR")], new Uint8Array(7));
      }, RangeError);
    });
    assert.deepEqual(seen, []);
  });

  it("pseudo-register ids never reach the kernel", () => {
    using guest = exitLoop();
    const { vcpu } = guest;
    const pseudo = vcpu.regList().filter((id) => isPseudoRegId(id));
    assert.ok(pseudo.length >= 9);
    const control = recordIoctls(() => vcpu.getOneReg(x86("LSTAR")));
    assert.deepEqual(control, ["KVM_GET_ONE_REG"], "the recorder sees ONE_REG when it is used");
    const seen = recordIoctls(() => {
      for (const id of pseudo) vcpu.setOneReg(id, vcpu.getOneReg(id));
      vcpu.setManyRegs(pseudo, vcpu.getManyRegs(pseudo));
      assert.throws(
        () => vcpu.getOneReg(pseudoRegId(200, 8)),
        (e: unknown) => e instanceof KvmError && e.is("EINVAL"),
      );
    });
    assert.ok(seen.length > 0);
    assert.ok(
      !seen.includes("KVM_GET_ONE_REG") && !seen.includes("KVM_SET_ONE_REG"),
      seen.join(","),
    );
    assert.ok(seen.includes("KVM_GET_SREGS") && seen.includes("KVM_SET_XSAVE"));
  });

  it("getManyRegs() plans all MSRs into one KVM_GET_MSRS and each struct into one ioctl", () => {
    using guest = exitLoop();
    const { vcpu } = guest;
    const ids = [x86("LSTAR"), x86("REGS"), x86("STAR"), x86("REGS"), x86("IA32_TSC")];
    const seen = recordIoctls(() => vcpu.getManyRegs(ids));
    assert.deepEqual(seen.sort(), ["KVM_GET_MSRS", "KVM_GET_REGS"]);
  });

  it("setManyRegs() with one bad entry names its index and id and changes nothing", () => {
    using guest = exitLoop();
    const { vcpu } = guest;
    vcpu.run();
    const ids = [x86("REGS"), x86("STAR"), x86("LSTAR"), x86("DEBUGREGS")];
    const before = vcpu.getManyRegs(ids);
    const next = before.slice();
    const view = new DataView(next.buffer);
    view.setBigUint64(0, 0xabcdefn, true); // REGS.rax
    const starAt = X86_PSEUDO.REGS.size;
    view.setBigUint64(starAt, 0x0023001000000000n, true);
    // A non-canonical LSTAR is refused (arch/x86/kvm/x86.c, is_noncanonical_msr_address), after
    // KVM_SET_MSRS has already written STAR: the rollback has to undo REGS and STAR.
    view.setBigUint64(starAt + 8, 0x8000000000000000n, true);
    assert.throws(
      () => {
        vcpu.setManyRegs(ids, next);
      },
      (e: unknown) =>
        e instanceof KvmError &&
        e.index === 2 &&
        e.regId === x86("LSTAR") &&
        e.ioctl === "KVM_SET_MSRS" &&
        e.is("EINVAL") &&
        e.message.includes("batch index 2"),
    );
    assert.deepEqual(vcpu.getManyRegs(ids), before, "REGS and STAR were rolled back");

    const unknown = [x86("STAR"), x86("MSR(0xdeadbeef)")];
    const stream = new Uint8Array(16);
    assert.throws(
      () => {
        vcpu.setManyRegs(unknown, stream);
      },
      (e: unknown) => e instanceof KvmError && e.index === 1,
    );
    assert.deepEqual(vcpu.getOneReg(x86("STAR")), before.subarray(starAt, starAt + 8));
  });
});
