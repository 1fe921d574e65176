import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { lookupReg } from "../../../src/abi/catalog.js";
import { ERRNO } from "../../../src/abi/kvm/errno.js";
import { KvmError } from "../../../src/abi/kvm/errors.js";
import type { RegId } from "../../../src/abi/regid.js";
import { RestoreError, SnapshotFormatError } from "../../../src/vmm/snapshot/errors.js";
import { decodeSnapshot, encodeSnapshot, type Snapshot } from "../../../src/vmm/snapshot/format.js";
import { captureVcpu, restoreSnapshot, restoreVcpu } from "../../../src/vmm/snapshot/restore.js";
import { FakeVcpu, pattern, sameBytes, snapshotOf } from "./fake-vcpu.js";
import { RISCV_NAMES, unknownRiscvId } from "./samples.js";

const rv = (name: string): RegId => lookupReg("riscv", name).id;

/** Source and destination with the same register list and different values. */
function pair(names: readonly string[] = RISCV_NAMES, index = 0): { src: FakeVcpu; dst: FakeVcpu } {
  const src = new FakeVcpu("riscv", index)
    .addNamed(names, 1n)
    .add(unknownRiscvId(1), 0x1122334455667788n);
  const dst = new FakeVcpu("riscv", index).addNamed(names, 50n).add(unknownRiscvId(1), 0n);
  // Read-only registers hold the same value on both sides (the same host).
  for (const n of ["timer.frequency"]) {
    if (!names.includes(n)) continue;
    dst.values.set(rv(n), src.getOneReg(rv(n)));
    dst.readOnly.add(rv(n));
  }
  return { src, dst };
}

function assertSameValues(
  a: FakeVcpu,
  b: ReadonlyMap<RegId, Uint8Array>,
  ids: readonly RegId[] = [...b.keys()],
): void {
  for (const id of ids) {
    const x = a.values.get(id);
    const y = b.get(id);
    assert.ok(
      x !== undefined && y !== undefined && sameBytes(x, y),
      `register ${id.toString(16)} differs`,
    );
  }
}

function restoreCode(fn: () => unknown): string {
  try {
    fn();
    return "ok";
  } catch (e) {
    assert.ok(e instanceof RestoreError, `expected RestoreError, got ${String(e)}`);
    return e.code;
  }
}

describe("restore", () => {
  it("restores every register through a snapshot file, the unknown id included", () => {
    const { src, dst } = pair();
    const bytes = encodeSnapshot(snapshotOf(src));
    const report = restoreSnapshot([dst], bytes);
    assertSameValues(dst, src.values);
    assert.equal(dst.values.get(unknownRiscvId(1))?.[0], 0x88);
    const r = report.vcpus[0];
    assert.ok(r !== undefined);
    assert.equal(r.comparison.matched, RISCV_NAMES.length + 1);
    assert.deepEqual(
      r.verified.map((x) => x.name),
      ["timer.frequency"],
    );
    assert.equal(r.written, RISCV_NAMES.length);
    // Written phase by phase: config.isa alone in the first batch, timer.state in the last.
    assert.deepEqual(dst.writes[0]?.ids, [rv("config.isa")]);
    assert.deepEqual(dst.writes.at(-1)?.ids, [rv("timer.state")]);
    assert.ok(dst.writes.every((w) => w.op === "many"));
    assert.ok(JSON.stringify(report).includes("timer.frequency"));
  });

  it("never writes a read-only register; a different value fails RESTORE_VERIFY before any write", () => {
    const { src, dst } = pair();
    dst.values.set(rv("timer.frequency"), pattern(rv("timer.frequency"), 777n));
    const before = dst.dump();
    assert.throws(
      () => restoreSnapshot([dst], snapshotOf(src)),
      (e: unknown) =>
        e instanceof RestoreError &&
        e.code === "RESTORE_VERIFY" &&
        e.message.includes("timer.frequency"),
    );
    assert.equal(dst.writes.length, 0);
    assertSameValues(dst, before);
  });

  it("reports missing registers by name; onMissing keep leaves them as they were", () => {
    const { src, dst } = pair();
    dst.addNamed(["csr.scause", "core.gp"], 9n);
    const kept = dst.getOneReg(rv("csr.scause"));
    assert.throws(
      () => restoreSnapshot([dst], snapshotOf(src)),
      (e: unknown) => {
        assert.ok(e instanceof RestoreError && e.code === "RESTORE_MISSING");
        assert.match(e.message, /csr\.scause/);
        assert.deepEqual(
          e.details.registers?.map((r) => r.name),
          ["csr.scause", "core.gp"],
        );
        return true;
      },
    );
    assert.equal(dst.writes.length, 0);
    const report = restoreSnapshot([dst], snapshotOf(src), { onMissing: "keep" });
    assert.deepEqual(
      report.vcpus[0]?.comparison.missing.map((r) => r.name),
      ["csr.scause", "core.gp"],
    );
    assert.deepEqual(dst.getOneReg(rv("csr.scause")), kept);
    assertSameValues(dst, src.values);
  });

  it("reports extra registers by name; onExtra ignore skips them", () => {
    const { src, dst } = pair();
    src.addNamed(["csr.stval"], 3n);
    const s = snapshotOf(src);
    assert.throws(
      () => restoreSnapshot([dst], s),
      (e: unknown) =>
        e instanceof RestoreError && e.code === "RESTORE_EXTRA" && e.message.includes("csr.stval"),
    );
    const report = restoreSnapshot([dst], s, { onExtra: "ignore" });
    assert.equal(dst.values.has(rv("csr.stval")), false);
    const r = report.vcpus[0];
    assert.ok(r !== undefined);
    assert.deepEqual(
      r.comparison.extra.map((x) => x.name),
      ["csr.stval"],
    );
    assert.match(r.notWritten[0]?.reason ?? "", /ignored/);
  });

  it('onExtra "try" writes an extra the destination accepts without listing it, and reports the rest', () => {
    const { src, dst } = pair();
    // Accepted but unlisted (like riscv isa_ext.multi_en.*), unreadable, and refused.
    src.addNamed(["isa_ext.multi_en.0", "csr.stval", "csr.scause"], 3n);
    dst.add(rv("isa_ext.multi_en.0"), 0n, false).add(rv("csr.scause"), 0n, false);
    dst.fail = (op, id) =>
      op === "set" && id === rv("csr.scause") ? new Error("injected refusal") : undefined;
    const report = restoreSnapshot([dst], snapshotOf(src), { onExtra: "try" });
    assert.deepEqual(
      dst.getOneReg(rv("isa_ext.multi_en.0")),
      src.getOneReg(rv("isa_ext.multi_en.0")),
    );
    const notWritten =
      report.vcpus[0]?.notWritten.map((n) => `${n.register.name}: ${n.reason}`) ?? [];
    assert.equal(notWritten.length, 2);
    assert.match(notWritten.find((t) => t.startsWith("csr.stval")) ?? "", /unreadable/);
    assert.match(notWritten.find((t) => t.startsWith("csr.scause")) ?? "", /refused/);
    assertSameValues(dst, src.values, dst.listed);
  });

  it("reports a register present at another size by name (vector.v0 at VLEN 128 vs 256)", () => {
    const src = new FakeVcpu("riscv").addNamed(["core.pc", "vector.v0"]);
    const dst = new FakeVcpu("riscv").addNamed(["core.pc", "vector.v0@256"], 5n);
    assert.throws(
      () => restoreSnapshot([dst], snapshotOf(src)),
      (e: unknown) => {
        assert.ok(e instanceof RestoreError && e.code === "RESTORE_SIZE_MISMATCH");
        assert.match(e.message, /vector\.v0 /);
        const m = e.details.comparison?.sizeMismatched[0];
        assert.equal(m?.stream.name, "vector.v0");
        assert.equal(m.destination.name, "vector.v0@256");
        assert.equal(
          e.details.comparison?.missing.length,
          0,
          "a size mismatch is not also reported missing",
        );
        return true;
      },
    );
    restoreSnapshot([dst], snapshotOf(src), { onSizeMismatch: "ignore" });
    assertSameValues(dst, src.values, [rv("core.pc")]);
  });

  it("refuses another arch, bad options and a vCPU set mismatch before writing", () => {
    const { src, dst } = pair();
    const s = snapshotOf(src);
    const x86 = new FakeVcpu("x86");
    assert.equal(
      restoreCode(() => restoreVcpu(x86, s.vcpus[0] ?? { index: 0, regs: [] }, "riscv")),
      "RESTORE_ARCH",
    );
    assert.throws(() => restoreSnapshot([dst], s, { onMissing: "drop" as "keep" }), TypeError);
    assert.equal(
      restoreCode(() => restoreSnapshot([new FakeVcpu("riscv", 3)], s)),
      "RESTORE_VCPUS",
    );
    assert.equal(dst.writes.length, 0);
  });

  it("a failed read of the destination (planning) writes nothing: RESTORE_READ", () => {
    const { src, dst } = pair();
    dst.fail = (op, id) =>
      op === "get" && id === rv("csr.sepc") ? new Error("injected read failure") : undefined;
    const before = dst.dump();
    assert.equal(
      restoreCode(() => restoreSnapshot([dst], snapshotOf(src))),
      "RESTORE_READ",
    );
    assert.equal(dst.writes.length, 0);
    assertSameValues(dst, before);
  });

  it("a corrupt or truncated file writes nothing: only SnapshotFormatError escapes", () => {
    const { src, dst } = pair();
    const bytes = encodeSnapshot(snapshotOf(src));
    for (let k = 0; k < bytes.length; k++) {
      assert.throws(() => restoreSnapshot([dst], bytes.subarray(0, k)), SnapshotFormatError);
      const flipped = bytes.slice();
      flipped[k] = (flipped[k] ?? 0) ^ 0x40;
      assert.throws(() => restoreSnapshot([dst], flipped), SnapshotFormatError);
    }
    assert.equal(dst.writes.length, 0);
  });
});

describe("restore rollback", () => {
  it("a second restore with the same register lists (a cached plan) applies the new values", () => {
    const { src, dst } = pair();
    restoreSnapshot([dst], snapshotOf(src));
    assertSameValues(dst, src.values, dst.listed);
    // Same ids, other values: the planner's cache must not replay the first snapshot's values.
    const later = new FakeVcpu("riscv").addNamed(RISCV_NAMES, 9n).add(unknownRiscvId(1), 7n);
    later.values.set(rv("timer.frequency"), src.getOneReg(rv("timer.frequency")));
    restoreSnapshot([dst], snapshotOf(later));
    assertSameValues(dst, later.values, dst.listed);
    // And restoring the first one again brings its values back.
    restoreSnapshot([dst], snapshotOf(src));
    assertSameValues(dst, src.values, dst.listed);
  });

  it("a write failing at any register leaves the destination byte-identical and names it", () => {
    const written = RISCV_NAMES.filter((n) => n !== "timer.frequency");
    fc.assert(
      fc.property(fc.constantFrom(...written), (failing) => {
        const { src, dst } = pair();
        const before = dst.dump();
        dst.fail = (op, id) =>
          op === "set" &&
          id === rv(failing) &&
          !sameBytes(dst.values.get(id) ?? new Uint8Array(), src.values.get(id) ?? new Uint8Array())
            ? new KvmError({
                action: "Cannot set register",
                ioctl: "KVM_SET_ONE_REG",
                errno: ERRNO.EINVAL,
                regId: id,
              })
            : undefined;
        assert.throws(
          () => restoreSnapshot([dst], snapshotOf(src)),
          (e: unknown) => {
            assert.ok(e instanceof RestoreError, String(e));
            assert.equal(e.code, "RESTORE_WRITE");
            assert.equal(e.details.register?.name, failing);
            assert.ok(e.cause instanceof KvmError);
            assert.match(e.message, new RegExp(failing.replace(".", "\\.")));
            return true;
          },
        );
        assert.equal(dst.values.size, before.size);
        assertSameValues(dst, before);
      }),
    );
  });

  it("rolls back every vCPU when a later vCPU fails", () => {
    const a = pair(RISCV_NAMES, 0);
    const b = pair(RISCV_NAMES, 1);
    const s = snapshotOf(a.src, b.src);
    const before0 = a.dst.dump();
    const before1 = b.dst.dump();
    b.dst.fail = (op, id) =>
      op === "set" && id === rv("timer.state") ? new Error("injected") : undefined;
    assert.equal(
      restoreCode(() => restoreSnapshot([b.dst, a.dst], s)),
      "RESTORE_WRITE",
    );
    assert.ok(a.dst.writes.length > 0, "vCPU 0 had been written before vCPU 1 failed");
    assertSameValues(a.dst, before0);
    assertSameValues(b.dst, before1);
  });

  it("writes VM-wide timer.time through the first vCPU only", () => {
    const a = pair(RISCV_NAMES, 0);
    const b = pair(RISCV_NAMES, 1);
    const report = restoreSnapshot([b.dst, a.dst], snapshotOf(a.src, b.src));
    assert.deepEqual(
      report.vcpus.map((v) => v.skippedVmScoped.map((r) => r.name)),
      [[], ["timer.time"]],
    );
    assert.deepEqual(a.dst.getOneReg(rv("timer.time")), a.src.getOneReg(rv("timer.time")));
    assert.ok(!b.dst.writes.some((w) => w.ids.includes(rv("timer.time"))));
  });

  it("reports RESTORE_ROLLBACK when the rollback itself fails", () => {
    const { src, dst } = pair();
    let broken = false;
    dst.fail = (op, id) => {
      if (op === "set" && id === rv("timer.state")) broken = true;
      return broken && op === "set" ? new Error("device gone") : undefined;
    };
    assert.throws(
      () => restoreSnapshot([dst], snapshotOf(src)),
      (e: unknown) =>
        e instanceof RestoreError &&
        e.code === "RESTORE_ROLLBACK" &&
        (e.details.rollbackFailures?.length ?? 0) > 0,
    );
  });

  it("the decoded snapshot object restores the same as the bytes", () => {
    const { src, dst } = pair();
    restoreSnapshot([dst], decodeSnapshot(encodeSnapshot(snapshotOf(src))));
    assertSameValues(dst, src.values);
  });
});

describe("restore order on the vCPU", () => {
  it("x86: one batch per phase, CPUID first, LAPIC before the MSRs, TSC_DEADLINE after both", () => {
    const names = [
      "DEBUGREGS",
      "IA32_TSC_DEADLINE",
      "MP_STATE",
      "VCPU_EVENTS",
      "IA32_TSC",
      "LSTAR",
      "LAPIC",
      "XCRS",
      "XSAVE",
      "REGS",
      "SREGS",
      "TSC_KHZ",
      "CPUID",
    ];
    const src = new FakeVcpu("x86").addNamed(names, 1n);
    const dst = new FakeVcpu("x86").addNamed(names, 9n);
    const snap: Snapshot = {
      arch: "x86",
      backend: "kvm",
      flags: 0,
      meta: {},
      vcpus: [captureVcpu(src)],
      memory: [],
      devices: [],
    };
    const report = restoreSnapshot([dst], encodeSnapshot(snap));
    const batches = dst.writes.map((w) =>
      w.ids.map((id) => names.find((n) => lookupReg("x86", n).id === id) ?? "?"),
    );
    assert.deepEqual(batches, [
      ["CPUID"],
      ["TSC_KHZ"],
      ["SREGS"],
      ["REGS"],
      ["XSAVE"],
      ["XCRS"],
      ["LAPIC"],
      ["IA32_TSC", "LSTAR"],
      ["VCPU_EVENTS"],
      ["MP_STATE"],
      ["IA32_TSC_DEADLINE"],
      ["DEBUGREGS"],
    ]);
    assert.deepEqual(
      report.vcpus[0]?.phases.map((p) => p.phase),
      [
        "cpuid",
        "tsc-khz",
        "sregs",
        "regs",
        "xsave",
        "xcrs",
        "lapic",
        "msrs",
        "vcpu-events",
        "mp-state",
        "tsc-deadline",
        "debugregs",
      ],
    );
    for (const n of names)
      assert.deepEqual(
        dst.getOneReg(lookupReg("x86", n).id),
        src.getOneReg(lookupReg("x86", n).id),
        n,
      );
  });

  it("arm64: PSTATE is written in a batch before X0 and PC", () => {
    const names = ["PC", "X0", "X30", "PSTATE", "SCTLR_EL1", "MIDR_EL1", "TIMER_CVAL", "TIMER_CNT"];
    const src = new FakeVcpu("arm64").addNamed(names, 1n);
    const dst = new FakeVcpu("arm64").addNamed(names, 9n);
    const snap: Snapshot = {
      arch: "arm64",
      backend: "kvm",
      flags: 0,
      meta: {},
      vcpus: [captureVcpu(src)],
      memory: [],
      devices: [],
    };
    restoreSnapshot([dst], snap);
    const batchOf = (n: string): number =>
      dst.writes.findIndex((w) => w.ids.includes(lookupReg("arm64", n).id));
    assert.ok(batchOf("MIDR_EL1") < batchOf("PSTATE"));
    assert.ok(batchOf("PSTATE") < batchOf("X0"));
    assert.ok(batchOf("PSTATE") < batchOf("PC"));
    assert.ok(batchOf("TIMER_CNT") < batchOf("TIMER_CVAL"));
  });
});
