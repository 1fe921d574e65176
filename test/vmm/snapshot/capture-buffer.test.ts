/**
 * captureVcpu() into a reused CaptureBuffer: the same values as a fresh capture; the next
 * capture overwrites the last state and hands out its array again only while nothing changed
 * it (not the register list, not the caller); backends that cannot read into a buffer, and a
 * real KVM vCPU, behave as documented.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { lookupReg } from "../../../src/abi/catalog.js";
import type { RegId } from "../../../src/abi/regid.js";
import {
  CaptureBuffer,
  captureVcpu,
  restoreVcpu,
  type RegValue,
  type VcpuState,
} from "../../../src/vmm/snapshot/index.js";
import { kvmDemo } from "./demo-steppers.js";
import { KVM_SKIP } from "./e2e-helpers.js";
import { FakeVcpu, pattern, sameBytes } from "./fake-vcpu.js";
import { RISCV_NAMES } from "./samples.js";

const rv = (name: string): RegId => lookupReg("riscv", name).id;

/** A fake that, like the KVM backend, can read MANY_REGS into the caller's buffer. */
class IntoVcpu extends FakeVcpu {
  reads = 0;

  getManyRegsInto(ids: readonly RegId[], out: Uint8Array): void {
    const bytes = this.getManyRegs(ids);
    if (out.length !== bytes.length) throw new RangeError("wrong length");
    out.set(bytes);
    this.reads++;
  }
}

function assertSameState(got: VcpuState, want: VcpuState): void {
  assert.deepEqual(
    got.regs.map((r) => r.id),
    want.regs.map((r) => r.id),
  );
  got.regs.forEach((r, i) => {
    const w = want.regs[i]?.value;
    assert.ok(w !== undefined && sameBytes(r.value, w), `value ${i} differs`);
  });
}

/** Every value of `state` as its own copy. */
const copied = (state: VcpuState): RegValue[] =>
  state.regs.map((r) => ({ id: r.id, value: r.value.slice() }));

describe("captureVcpu into a CaptureBuffer", () => {
  it("reads the same state as a fresh capture, through getManyRegsInto", () => {
    const vcpu = new IntoVcpu("riscv").addNamed(RISCV_NAMES, 3n);
    const into = new CaptureBuffer();
    const reused = captureVcpu(vcpu, { into });
    assert.equal(vcpu.reads, 1);
    assertSameState(reused, captureVcpu(vcpu));
    assert.equal(reused.index, vcpu.index);
  });

  it("overwrites the last state with the next capture, in the same array and entries", () => {
    const vcpu = new IntoVcpu("riscv").addNamed(RISCV_NAMES, 3n);
    const into = new CaptureBuffer();
    const first = captureVcpu(vcpu, { into });
    const before = copied(first);
    const pc = rv("core.pc");
    vcpu.values.set(pc, pattern(pc, 99n));
    const second = captureVcpu(vcpu, { into });
    assert.equal(second.regs, first.regs, "the same array, handed out again");
    assertSameState(second, captureVcpu(vcpu));
    // The documented aliasing: the first state now shows the second capture's values.
    const at = first.regs.findIndex((r) => r.id === pc);
    assert.ok(sameBytes(first.regs[at]?.value ?? new Uint8Array(), pattern(pc, 99n)));
    assert.ok(!sameBytes(before[at]?.value ?? new Uint8Array(), pattern(pc, 99n)));
  });

  it("hands out new entries once the caller changed the last state", () => {
    const vcpu = new IntoVcpu("riscv").addNamed(RISCV_NAMES, 3n);
    const into = new CaptureBuffer();
    const edits: ((regs: RegValue[]) => void)[] = [
      (regs) => {
        const r = regs[2];
        if (r !== undefined) regs[2] = { id: r.id, value: new Uint8Array(r.value.length) };
      },
      (regs) => {
        // A value swapped inside an entry the caller was told is read-only.
        const r = regs[4] as { id: RegId; value: Uint8Array } | undefined;
        if (r !== undefined) r.value = new Uint8Array(r.value.length);
      },
      (regs) => {
        regs.pop();
      },
    ];
    for (const edit of edits) {
      const last = captureVcpu(vcpu, { into });
      edit(last.regs as RegValue[]);
      const next = captureVcpu(vcpu, { into });
      assert.notEqual(next.regs, last.regs);
      assertSameState(next, captureVcpu(vcpu));
    }
  });

  it("follows a register list that changes, growing the buffer", () => {
    const vcpu = new IntoVcpu("riscv").addNamed(RISCV_NAMES.slice(0, 4), 3n);
    const into = new CaptureBuffer();
    const small = captureVcpu(vcpu, { into });
    vcpu.addNamed(RISCV_NAMES.slice(4), 7n);
    const large = captureVcpu(vcpu, { into });
    assert.notEqual(large.regs, small.regs);
    assert.ok(large.regs.length > small.regs.length);
    assertSameState(large, captureVcpu(vcpu));
    // And back to fewer registers: the larger buffer serves, with new entries.
    const fewer = new IntoVcpu("riscv").addNamed(RISCV_NAMES.slice(0, 4), 5n);
    const again = captureVcpu(fewer, { into });
    assertSameState(again, captureVcpu(fewer));
  });

  it("allocates as before for a backend that cannot read into a buffer", () => {
    const vcpu = new FakeVcpu("riscv").addNamed(RISCV_NAMES, 3n);
    const into = new CaptureBuffer();
    const a = captureVcpu(vcpu, { into });
    const b = captureVcpu(vcpu, { into });
    assert.notEqual(a.regs, b.regs);
    assert.notEqual(a.regs[0]?.value.buffer, b.regs[0]?.value.buffer);
    assertSameState(a, b);
  });

  it("refuses a bad length", () => {
    for (const n of [-1, 1.5, Number.NaN]) {
      assert.throws(() => new CaptureBuffer().take(n), RangeError);
    }
  });

  it("captures and restores a real x86 vCPU in a loop", { skip: KVM_SKIP }, () => {
    using m = kvmDemo({ irqchip: true });
    m.runTo(70);
    m.quiesce();
    const vcpu = m.kvmVcpu;
    const into = new CaptureBuffer();
    const tsc = lookupReg("x86", "IA32_TSC").id;
    let last: VcpuState | undefined;
    for (let i = 0; i < 5; i++) {
      const state = captureVcpu(vcpu, { into });
      if (last !== undefined) assert.equal(state.regs, last.regs);
      const fresh = captureVcpu(vcpu);
      // IA32_TSC moves on its own; every other value must match the fresh capture.
      state.regs.forEach((r, k) => {
        if (r.id === tsc) return;
        assert.ok(sameBytes(r.value, fresh.regs[k]?.value ?? new Uint8Array()), `register ${k}`);
      });
      const report = restoreVcpu(vcpu, state, "x86");
      assert.ok(report.written > 0);
      last = state;
    }
  });
});
