import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { KvmError } from "../../../src/abi/kvm/errors.js";
import { ioctlName } from "../../../src/abi/kvm/ioctls.js";
import { X86_PSEUDO } from "../../../src/abi/arch/x86/index.js";
import { regSize, type RegId } from "../../../src/abi/regid.js";
import { setIoctlHook } from "../../../src/backends/kvm/ffi.js";
import { KVM_SKIP, exitLoop, recordIoctls, x86 } from "./helpers.js";

// Registers whose value moves on its own between two reads.
const VOLATILE = new Set<RegId>([x86("IA32_TSC")]);

/** The packed stream with the volatile registers' bytes cleared, for comparisons. */
function stable(ids: readonly RegId[], bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  let at = 0;
  for (const id of ids) {
    if (VOLATILE.has(id)) out.fill(0, at, at + regSize(id));
    at += regSize(id);
  }
  return out;
}

describe("KVM x86 MANY_REGS", { skip: KVM_SKIP }, () => {
  it("getManyRegsInto() writes every byte, padding included, as getManyRegs() returns them", () => {
    using guest = exitLoop();
    const { vcpu } = guest;
    const ids = vcpu.regList();
    const fresh = vcpu.getManyRegs(ids);
    // A buffer full of garbage: pseudo padding and CPUID's unused entries must come out zero.
    const reused = new Uint8Array(fresh.length).fill(0xa5);
    vcpu.getManyRegsInto(ids, reused);
    assert.ok(ids.includes(X86_PSEUDO.CPUID.id) && ids.includes(X86_PSEUDO.REGS.id));
    assert.deepEqual(stable(ids, reused), stable(ids, fresh));
  });

  it("setManyRegs() takes its stream from any view: inside a larger buffer, or shared", () => {
    using guest = exitLoop();
    const { vcpu } = guest;
    const ids = [X86_PSEUDO.REGS.id, X86_PSEUDO.CPUID.id, X86_PSEUDO.SREGS.id];
    const before = vcpu.getManyRegs(ids);
    const rax = (n: bigint): Uint8Array => {
      // kvm_regs starts with rax: change it, keep everything else.
      const out = before.slice();
      new DataView(out.buffer).setBigUint64(0, n, true);
      return out;
    };
    // At an odd offset inside a larger buffer (written in place on the addon path).
    const big = new Uint8Array(before.length + 11).fill(0xee);
    big.set(rax(0x1234_5678_9abcn), 5);
    vcpu.setManyRegs(ids, big.subarray(5, 5 + before.length));
    assert.equal(
      vcpu.getOneReg(X86_PSEUDO.REGS.id).subarray(0, 8).join(),
      rax(0x1234_5678_9abcn).subarray(0, 8).join(),
    );
    assert.deepEqual(vcpu.getManyRegs(ids), rax(0x1234_5678_9abcn));
    // Over a SharedArrayBuffer (always copied first).
    const shared = new Uint8Array(new SharedArrayBuffer(before.length));
    shared.set(rax(7n));
    vcpu.setManyRegs(ids, shared);
    assert.deepEqual(vcpu.getManyRegs(ids), rax(7n));
    // And getManyRegsInto() a view at an offset leaves the bytes around it alone.
    const around = new Uint8Array(before.length + 16).fill(0x5a);
    vcpu.getManyRegsInto(ids, around.subarray(8, 8 + before.length));
    assert.deepEqual(around.subarray(8, 8 + before.length), rax(7n));
    assert.ok(around.subarray(0, 8).every((b) => b === 0x5a));
    assert.ok(around.subarray(8 + before.length).every((b) => b === 0x5a));
  });

  it("getManyRegsInto() refuses a buffer of the wrong length before any syscall", () => {
    using guest = exitLoop();
    const { vcpu } = guest;
    const ids = [x86("LSTAR"), x86("REGS")];
    const seen = recordIoctls(() => {
      assert.throws(() => {
        vcpu.getManyRegsInto(ids, new Uint8Array(8 + X86_PSEUDO.REGS.size - 1));
      }, RangeError);
    });
    assert.deepEqual(seen, []);
  });

  it("setManyRegs() rolls back from its own copies when an ioctl hook nests another write", () => {
    using guest = exitLoop();
    const { vcpu } = guest;
    vcpu.run();
    const ids = [x86("REGS"), x86("STAR"), x86("LSTAR")];
    const before = vcpu.getManyRegs(ids);
    const next = before.slice();
    const view = new DataView(next.buffer);
    view.setBigUint64(0, 0x5a5a5an, true); // REGS.rax
    // A non-canonical LSTAR: KVM_SET_MSRS refuses it after REGS was written.
    view.setBigUint64(X86_PSEUDO.REGS.size + 8, 0x8000000000000000n, true);
    // While the outer call writes REGS, write DEBUGREGS (its current value) from the hook: the
    // nested call's rollback copy must not land where the outer one keeps REGS.
    const debug = [x86("DEBUGREGS")];
    const debugBytes = vcpu.getManyRegs(debug);
    let nested = false;
    setIoctlHook((_fd, request) => {
      if (nested || ioctlName(request) !== "KVM_SET_REGS") return;
      nested = true;
      vcpu.setManyRegs(debug, debugBytes);
    });
    try {
      assert.throws(
        () => {
          vcpu.setManyRegs(ids, next);
        },
        (e: unknown) => e instanceof KvmError && e.index === 2 && e.ioctl === "KVM_SET_MSRS",
      );
    } finally {
      setIoctlHook(undefined);
    }
    assert.ok(nested, "the hook wrote DEBUGREGS inside the outer call");
    assert.deepEqual(vcpu.getManyRegs(ids), before, "REGS and STAR were rolled back");
    assert.deepEqual(vcpu.getManyRegs(debug), debugBytes);
  });

  it("setManyRegs() with a struct twice writes the last value once", () => {
    using guest = exitLoop();
    const { vcpu } = guest;
    vcpu.run();
    const regs = x86("REGS");
    const one = vcpu.getManyRegs([regs]);
    const changed = one.slice();
    new DataView(changed.buffer).setBigUint64(0, 0x1234n, true); // rax
    const both = new Uint8Array(2 * one.length);
    both.set(one, 0);
    both.set(changed, one.length);
    const seen = recordIoctls(() => {
      vcpu.setManyRegs([regs, regs], both);
    });
    assert.equal(seen.filter((n) => n === "KVM_SET_REGS").length, 1, seen.join(","));
    assert.deepEqual(vcpu.getManyRegs([regs]), changed);
  });
});
