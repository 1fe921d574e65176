import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { lookupReg } from "../../../src/abi/catalog.js";
import { formatRegId } from "../../../src/abi/regid.js";
import { valueHex } from "../../../src/vmm/snapshot/describe.js";
import { diffLive, diffRegs, diffSnapshots, renderDiff } from "../../../src/vmm/snapshot/diff.js";
import { decodeSnapshot, encodeSnapshot, type Snapshot } from "../../../src/vmm/snapshot/format.js";
import { inspectSnapshot, renderSummary } from "../../../src/vmm/snapshot/inspect.js";
import { SnapshotFormatError } from "../../../src/vmm/snapshot/errors.js";
import { FakeVcpu, toBytes } from "./fake-vcpu.js";
import { sampleBytes, sampleSnapshot, unknownRiscvId } from "./samples.js";

const rv = (name: string) => lookupReg("riscv", name).id;

function edited(edit: (s: { -readonly [K in keyof Snapshot]: Snapshot[K] }) => void): Snapshot {
  const s = structuredClone(sampleSnapshot());
  edit(s);
  return s;
}

describe("valueHex()", () => {
  it("prints values up to 16 bytes as little-endian integers and larger ones as bytes", () => {
    assert.equal(valueHex(new Uint8Array([0x01, 0x02])), "0x0201");
    assert.equal(valueHex(toBytes(rv("core.pc"), 0x80000000n)), "0x0000000080000000");
    assert.equal(valueHex(new Uint8Array(17).fill(0xab)), "ab".repeat(17));
  });
});

describe("diff", () => {
  it("finds nothing between a snapshot and itself", () => {
    const d = diffSnapshots(sampleSnapshot(), decodeSnapshot(sampleBytes()));
    assert.equal(d.identical, true);
    assert.match(renderDiff(d), /identical/);
  });

  it("reports added, removed and changed registers by name with old and new hex values", () => {
    const b = edited((s) => {
      const regs = [...(s.vcpus[0]?.regs ?? [])];
      const pc = regs.findIndex((r) => r.id === rv("core.pc"));
      regs[pc] = { id: rv("core.pc"), value: toBytes(rv("core.pc"), 0x80001234n) };
      const ra = regs.findIndex((r) => r.id === rv("core.ra"));
      regs.splice(ra, 1);
      regs.push({ id: rv("csr.stval"), value: toBytes(rv("csr.stval"), 7n) });
      s.vcpus = [{ index: 0, regs }];
    });
    const d = diffSnapshots(sampleSnapshot(), b);
    assert.equal(d.identical, false);
    const v = d.vcpus[0];
    assert.ok(v !== undefined);
    assert.deepEqual(
      v.changed.map((c) => [c.name, c.new]),
      [["core.pc", "0x0000000080001234"]],
    );
    assert.deepEqual(
      v.removed.map((c) => c.name),
      ["core.ra"],
    );
    assert.deepEqual(
      v.added.map((c) => [c.name, c.value]),
      [["csr.stval", "0x0000000000000007"]],
    );
    const text = renderDiff(d);
    assert.match(text, /~ core\.pc .*-> 0x0000000080001234/);
    assert.match(text, /- core\.ra/);
    assert.match(text, /\+ csr\.stval/);
    assert.deepEqual(JSON.parse(JSON.stringify(d)), d, "JSON-able");
  });

  it("names unknown ids by id, and gives byte ranges for large values", () => {
    const big = unknownRiscvId(2, 64);
    const a = [{ id: big, value: new Uint8Array(64) }];
    const changed = new Uint8Array(64);
    changed[3] = 1;
    changed[40] = 2;
    changed[41] = 2;
    const d = diffRegs(a, [{ id: big, value: changed }]);
    const c = d.changed[0];
    assert.ok(c !== undefined);
    assert.equal(c.name, null);
    assert.equal(c.id, formatRegId(big));
    assert.deepEqual(c.ranges, [
      [3, 4],
      [40, 42],
    ]);
  });

  it("reports memory pages, devices and header fields that differ", () => {
    const b = edited((s) => {
      const mem = s.memory.map((m) => ({ ...m, data: m.data.slice() }));
      if (mem[0] !== undefined) mem[0].data[4096 * 3] = 1;
      s.memory = mem;
      s.devices = [{ name: "uart0", data: new Uint8Array([1]) }];
      s.backend = "kvm";
    });
    const d = diffSnapshots(sampleSnapshot(), b);
    assert.deepEqual(d.memory, [
      { slot: 0, status: "changed", gpa: "0x80000000", length: 5 * 4096 + 100, changedPages: 1 },
    ]);
    assert.deepEqual(d.devices, [
      { name: "uart0", status: "changed" },
      { name: "vmm.exit", status: "removed" },
    ]);
    assert.deepEqual(d.header, [{ field: "backend", a: "soft-inline", b: "kvm" }]);
  });

  it("diffs a saved state against a live vCPU", () => {
    const vcpu = new FakeVcpu("riscv").addNamed(["core.pc", "core.sp"]);
    const saved = {
      index: 0,
      regs: [
        { id: rv("core.pc"), value: vcpu.getOneReg(rv("core.pc")) },
        { id: rv("core.sp"), value: vcpu.getOneReg(rv("core.sp")) },
      ],
    };
    vcpu.setOneReg(rv("core.sp"), 0x1000n);
    const d = diffLive(saved, vcpu);
    assert.deepEqual(
      d.changed.map((c) => [c.name, c.new]),
      [["core.sp", "0x0000000000001000"]],
    );
    assert.equal(d.unchanged, 1);
  });
});

describe("inspect", () => {
  it("summarises header, sections, registers by name and size, memory and devices", () => {
    const sum = inspectSnapshot(sampleBytes());
    assert.equal(sum.arch, "riscv");
    assert.equal(sum.backend, "soft-inline");
    assert.deepEqual(sum.format, { major: 1, minor: 0 });
    assert.deepEqual(
      sum.sections.map((s) => s.typeName),
      ["META", "VCPU_STATE", "DEVICE", "DEVICE", "MEMORY", "MEMORY"],
    );
    const v = sum.vcpus[0];
    assert.ok(v !== undefined);
    assert.equal(v.unknownCount, 2);
    assert.deepEqual(
      v.registers.find((r) => r.name === "core.pc"),
      { id: formatRegId(rv("core.pc")), name: "core.pc", class: "core", size: 8 },
    );
    assert.equal(v.registers.find((r) => r.id === formatRegId(unknownRiscvId(2, 64)))?.size, 64);
    const m = sum.memory[0];
    assert.ok(m !== undefined);
    assert.equal(m.encoding, "sparse");
    assert.equal(m.pages, 6);
    assert.equal(m.zeroPages, 4);
    assert.ok(m.storedBytes < 3 * 4096);
    assert.deepEqual(sum.devices, [
      { name: "uart0", bytes: 2 },
      { name: "vmm.exit", bytes: 0 },
    ]);
    assert.deepEqual(JSON.parse(JSON.stringify(sum)), sum, "JSON-able");
  });

  it("includes values on request and renders text", () => {
    const sum = inspectSnapshot(sampleBytes(), { values: true });
    assert.match(sum.vcpus[0]?.registers[0]?.value ?? "", /^0x[0-9a-f]{16}$/);
    const text = renderSummary(sum);
    assert.match(text, /^regvisor snapshot 1\.0: riscv, backend soft-inline/);
    assert.match(text, /core\.pc\s+0x8030000002000000\s+8 B/);
    assert.match(text, /\(unknown\)/);
    assert.match(
      text,
      /memory slot 0: gpa 0x80000000, 20580 bytes, flags 0x0 \(sparse, 2 of 6 pages stored/,
    );
    assert.doesNotMatch(renderSummary(sum, { registers: false }), /core\.pc/);
  });

  it("refuses damaged bytes with SnapshotFormatError", () => {
    assert.throws(() => inspectSnapshot(sampleBytes().subarray(0, 100)), SnapshotFormatError);
  });

  it("a snapshot with no memory or devices still summarises", () => {
    const sum = inspectSnapshot(encodeSnapshot({ ...sampleSnapshot(), memory: [], devices: [] }));
    assert.deepEqual([sum.memory.length, sum.devices.length], [0, 0]);
  });
});
