import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { describeReg, lookupReg } from "../../../src/abi/catalog.js";
import type { RegId } from "../../../src/abi/regid.js";
import { RestoreError } from "../../../src/vmm/snapshot/errors.js";
import { captureVcpu, restoreVcpu } from "../../../src/vmm/snapshot/restore.js";
import { FakeVcpu, sameBytes } from "./fake-vcpu.js";
import { RISCV_NAMES } from "./samples.js";

const rv = (name: string): RegId => lookupReg("riscv", name).id;

/** Source and destination listing RISCV_NAMES with different values (timer.frequency equal). */
function pair(): { src: FakeVcpu; dst: FakeVcpu } {
  const src = new FakeVcpu("riscv", 0).addNamed(RISCV_NAMES, 1n);
  const dst = new FakeVcpu("riscv", 0).addNamed(RISCV_NAMES, 50n);
  dst.values.set(rv("timer.frequency"), src.getOneReg(rv("timer.frequency")));
  return { src, dst };
}

function assertSame(
  actual: ReadonlyMap<RegId, Uint8Array>,
  expected: Map<RegId, Uint8Array>,
): void {
  assert.equal(actual.size, expected.size);
  for (const [id, v] of expected) {
    assert.ok(sameBytes(actual.get(id) ?? new Uint8Array(), v), `0x${id.toString(16)} differs`);
  }
}

const x86 = (name: string): RegId => lookupReg("x86", name).id;

/** An x86 fake whose LAPIC writes cancel the TSC deadline, as KVM_SET_LAPIC does. */
class LapicFake extends FakeVcpu {
  override setOneReg(id: RegId, value: Uint8Array | bigint): void {
    super.setOneReg(id, value);
    if (id === x86("LAPIC")) this.values.set(x86("IA32_TSC_DEADLINE"), new Uint8Array(8));
  }

  override setManyRegs(ids: readonly RegId[], bytes: Uint8Array): void {
    super.setManyRegs(ids, bytes);
    const deadline = x86("IA32_TSC_DEADLINE");
    if (ids.includes(x86("LAPIC")) && !ids.includes(deadline))
      this.values.set(deadline, new Uint8Array(8));
  }
}

describe("restore journal", () => {
  it("rewrites what an undone write changed as a side effect (LAPIC cancels the deadline)", () => {
    const names = ["LAPIC", "IA32_TSC_DEADLINE", "LSTAR", "VCPU_EVENTS"];
    const src = new LapicFake("x86", 0).addNamed(names, 1n);
    const dst = new LapicFake("x86", 0).addNamed(names, 9n);
    const before = dst.dump();
    // Phases: lapic, msrs (LSTAR), vcpu-events (refused), tsc-deadline.
    dst.fail = (op, id) =>
      op === "set" && id === x86("VCPU_EVENTS") ? new Error("injected") : undefined;
    assert.throws(
      () => restoreVcpu(dst, captureVcpu(src), "x86"),
      (e: unknown) => e instanceof RestoreError && e.code === "RESTORE_WRITE",
    );
    assertSame(dst.values, before);
    const undo = dst.writes.slice(-3).map((w) => w.ids.map((id) => describeReg(id)));
    assert.deepEqual(
      undo,
      [["x86 LAPIC"], ["x86 LSTAR"], ["x86 IA32_TSC_DEADLINE"]],
      "in restore order",
    );
  });

  it("rolls a tried extra back with the batches when a later phase fails", () => {
    const { src, dst } = pair();
    // isa_ext.multi_en.0 is tried in phase isa-ext; timer.state is written in the last phase.
    src.addNamed(["isa_ext.multi_en.0"], 3n);
    dst.add(rv("isa_ext.multi_en.0"), 0n, false);
    const before = dst.dump();
    dst.fail = (op, id) =>
      op === "set" && id === rv("timer.state") ? new Error("injected") : undefined;
    assert.throws(
      () => restoreVcpu(dst, captureVcpu(src), "riscv", { onExtra: "try" }),
      (e: unknown) => e instanceof RestoreError && e.code === "RESTORE_WRITE",
    );
    const tried = dst.writes.filter((w) => w.ids.includes(rv("isa_ext.multi_en.0")));
    assert.equal(tried.length, 2, "the tried extra was written, then written back");
    assertSame(dst.values, before);
  });

  it("a cached plan reports the same registers per phase as the first one", () => {
    const { src, dst } = pair();
    const first = restoreVcpu(dst, captureVcpu(src), "riscv");
    // Same lists again, so the plan comes from the cached shape, with its shared report.
    const again = restoreVcpu(dst, captureVcpu(src), "riscv");
    const total = (r: typeof first): number => r.phases.reduce((n, p) => n + p.registers, 0);
    assert.ok(first.phases.length > 1);
    assert.equal(total(first), first.written);
    // The second restore finds timer.state unchanged ("write-if-changed"), so its phase, now
    // empty, is left out.
    assert.deepEqual(
      again.skippedUnchanged.map((r) => r.name),
      ["timer.state"],
    );
    assert.deepEqual(
      again.phases,
      first.phases.filter((p) => p.phase !== "timer-state"),
    );
    assert.equal(total(again), again.written);
  });
});
