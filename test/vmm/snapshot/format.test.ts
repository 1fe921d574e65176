import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { lookupReg } from "../../../src/abi/catalog.js";
import { makeRegId, type RegId } from "../../../src/abi/regid.js";
import {
  decodeSnapshot,
  encodeSnapshot,
  FORMAT_MINOR,
  SECTION_TYPES,
  type Snapshot,
  type SnapshotMeta,
} from "../../../src/vmm/snapshot/format.js";
import { SnapshotFormatError } from "../../../src/vmm/snapshot/errors.js";
import {
  RISCV_NAMES,
  reframe,
  sampleBytes,
  sampleSnapshot,
  unframe,
  unknownRiscvId,
} from "./samples.js";

/** Asserts `fn` throws a SnapshotFormatError with `code`. */
function throwsFormat(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SnapshotFormatError, `expected SnapshotFormatError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

function assertSameSnapshot(got: Snapshot, want: Snapshot): void {
  assert.equal(got.arch, want.arch);
  assert.equal(got.backend, want.backend);
  assert.equal(got.flags, want.flags);
  assert.deepEqual(got.meta, want.meta);
  const byIndex = [...want.vcpus].sort((a, b) => a.index - b.index);
  assert.deepEqual(got.vcpus, byIndex);
  assert.deepEqual(got.memory, want.memory);
  assert.deepEqual(got.devices, want.devices);
}

/** A random riscv id: any size code 0..15 (1 byte to 32 KiB), any payload. */
const anyRiscvId = fc
  .tuple(fc.integer({ min: 0, max: 15 }), fc.bigInt({ min: 0n, max: (1n << 52n) - 1n }))
  .map(([code, payload]) => makeRegId("riscv", 1 << code, payload));
const namedRiscvId = fc.constantFrom(...RISCV_NAMES).map((n) => lookupReg("riscv", n).id);
const regSet = fc
  .uniqueArray(fc.oneof(anyRiscvId, namedRiscvId), { maxLength: 12, selector: (id) => id })
  .chain((ids: RegId[]) =>
    fc.tuple(
      ...ids.map((id) =>
        fc
          .uint8Array({
            minLength: 1 << Number((id >> 52n) & 0xfn),
            maxLength: 1 << Number((id >> 52n) & 0xfn),
          })
          .map((value) => ({ id, value })),
      ),
    ),
  );

describe("snapshot format", () => {
  it("round-trips the sample: registers (named and unknown), memory, devices, meta", () => {
    const s = sampleSnapshot();
    const decoded = decodeSnapshot(encodeSnapshot(s));
    assertSameSnapshot(decoded, s);
    assert.deepEqual(decoded.version, { major: 1, minor: FORMAT_MINOR });
    assert.deepEqual(decoded.skipped, []);
  });

  it("round-trips random register sets, unknown ids and 32 KiB registers included", () => {
    fc.assert(
      fc.property(
        fc.array(regSet, { minLength: 1, maxLength: 3 }),
        fc.constantFrom("kvm", "soft-inline", "soft-threaded" as const),
        (sets, backend) => {
          const s: Snapshot = {
            arch: "riscv",
            backend,
            flags: 0x10000,
            meta: { exitCount: sets.length },
            vcpus: sets.map((regs, index) => ({ index, regs })),
            memory: [],
            devices: [],
          };
          assertSameSnapshot(decodeSnapshot(encodeSnapshot(s)), s);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("round-trips random memory with and without zero-page elision", () => {
    const pageSpec = fc.array(fc.constantFrom(0, 1, 2), { minLength: 1, maxLength: 20 });
    fc.assert(
      fc.property(
        pageSpec,
        fc.integer({ min: 0, max: 4095 }),
        fc.boolean(),
        (pages, tail, elide) => {
          const data = new Uint8Array(pages.length * 4096 + tail);
          pages.forEach((kind, p) => {
            if (kind === 1) data[p * 4096 + 7] = p + 1;
            if (kind === 2) data.fill(0xa5, p * 4096, p * 4096 + 4096);
          });
          if (tail > 0) data[data.length - 1] = 0x5a;
          const s = { ...sampleSnapshot(), memory: [{ slot: 3, flags: 0, gpa: 0x4000n, data }] };
          const bytes = encodeSnapshot(s, { elideZeroPages: elide });
          const decoded = decodeSnapshot(bytes);
          assert.deepEqual(decoded.memory, s.memory);
          const zero = pages.filter((k) => k === 0).length;
          const enc = decoded.sections.find((x) => x.type === SECTION_TYPES.MEMORY)?.encoding;
          assert.equal(enc, elide && zero > 0 ? "sparse" : "raw");
        },
      ),
      { numRuns: 80 },
    );
  });

  it("elides zero pages: 64 MiB of mostly-zero RAM encodes to a few KiB", () => {
    const data = new Uint8Array(64 << 20);
    data[12345] = 1;
    data[(64 << 20) - 1] = 2;
    const bytes = encodeSnapshot({
      ...sampleSnapshot(),
      memory: [{ slot: 0, flags: 0, gpa: 0n, data }],
    });
    assert.ok(bytes.length < 16 * 1024, `${bytes.length} bytes`);
    assert.deepEqual(decodeSnapshot(bytes).memory[0]?.data, data);
  });

  it("carries ids the catalog does not know, byte for byte", () => {
    const decoded = decodeSnapshot(sampleBytes());
    const unknown = decoded.vcpus[0]?.regs.filter(
      (r) => r.id === unknownRiscvId(1) || r.id === unknownRiscvId(2, 64),
    );
    assert.equal(unknown?.length, 2);
    assert.equal(unknown[1]?.value.length, 64);
  });

  it("returns copies: editing the input afterwards does not change the decoded snapshot", () => {
    const bytes = sampleBytes();
    const decoded = decodeSnapshot(bytes);
    const before = decoded.vcpus[0]?.regs[0]?.value.slice();
    bytes.fill(0);
    assert.deepEqual(decoded.vcpus[0]?.regs[0]?.value, before);
  });

  it("encodeSnapshot() rejects a caller's mistakes with RangeError / TypeError", () => {
    const s = sampleSnapshot();
    const reg = s.vcpus[0]?.regs[0];
    assert.ok(reg !== undefined);
    const withRegs = (regs: Snapshot["vcpus"][number]["regs"]): Snapshot => ({
      ...s,
      vcpus: [{ index: 0, regs }],
    });
    assert.throws(
      () => encodeSnapshot(withRegs([{ id: reg.id, value: new Uint8Array(3) }])),
      RangeError,
    );
    assert.throws(() => encodeSnapshot(withRegs([reg, reg])), RangeError);
    const x86 = lookupReg("x86", "IA32_TSC").id;
    assert.throws(
      () => encodeSnapshot(withRegs([{ id: x86, value: new Uint8Array(8) }])),
      RangeError,
    );
    assert.throws(() => encodeSnapshot({ ...s, vcpus: [...s.vcpus, ...s.vcpus] }), RangeError);
    assert.throws(() => encodeSnapshot({ ...s, flags: 1 }), RangeError);
    const overlap = {
      ...s,
      memory: [
        ...s.memory,
        { slot: 9, flags: 0, gpa: 0x80000000n + 4096n, data: new Uint8Array(1) },
      ],
    };
    assert.throws(() => encodeSnapshot(overlap), /overlap/);
    assert.throws(
      () => encodeSnapshot({ ...s, devices: [{ name: "a\nb", data: new Uint8Array(0) }] }),
      RangeError,
    );
    assert.throws(
      () => encodeSnapshot({ ...s, meta: { exitCount: "3" } as unknown as SnapshotMeta }),
      TypeError,
    );
    assert.throws(() => encodeSnapshot({ ...s, meta: { exitCount: Number.NaN } }), TypeError);
    assert.throws(
      () =>
        encodeSnapshot({ ...s, memory: [{ slot: 0, flags: 0, gpa: 0n, data: new Uint8Array(0) }] }),
      RangeError,
    );
  });

  it("writes sections in a fixed order: META, VCPU_STATE by index, DEVICE, MEMORY", () => {
    const s = sampleSnapshot();
    const two = {
      ...s,
      vcpus: [
        { index: 1, regs: [] },
        { index: 0, regs: [] },
      ],
    };
    const types = decodeSnapshot(encodeSnapshot(two)).sections.map((x) => x.typeName);
    assert.deepEqual(types, [
      "META",
      "VCPU_STATE",
      "VCPU_STATE",
      "DEVICE",
      "DEVICE",
      "MEMORY",
      "MEMORY",
    ]);
    assert.deepEqual(
      decodeSnapshot(encodeSnapshot(two)).vcpus.map((v) => v.index),
      [0, 1],
    );
  });
});

describe("snapshot versioning", () => {
  const extra = (flags: number) => ({ type: 77, flags, payload: [new Uint8Array([1, 2, 3])] });

  it("reads a newer minor that adds only optional sections, and reports them skipped", () => {
    const { header, sections } = unframe(sampleBytes());
    const bytes = reframe(header, [...sections, extra(1)], { minor: FORMAT_MINOR + 1 });
    const decoded = decodeSnapshot(bytes);
    assert.deepEqual(decoded.version, { major: 1, minor: FORMAT_MINOR + 1 });
    assert.equal(decoded.skipped.length, 1);
    assert.equal(decoded.skipped[0]?.type, 77);
    assertSameSnapshot(decoded, sampleSnapshot());
  });

  it("refuses a newer minor's unknown required section with SNAPSHOT_VERSION", () => {
    const { header, sections } = unframe(sampleBytes());
    throwsFormat(
      () => decodeSnapshot(reframe(header, [...sections, extra(0)], { minor: FORMAT_MINOR + 1 })),
      "SNAPSHOT_VERSION",
    );
  });

  it("refuses an unknown required section in the current minor as SNAPSHOT_MALFORMED", () => {
    const { header, sections } = unframe(sampleBytes());
    throwsFormat(
      () => decodeSnapshot(reframe(header, [...sections, extra(0)])),
      "SNAPSHOT_MALFORMED",
    );
  });

  it("refuses another major with SNAPSHOT_VERSION, whatever follows", () => {
    for (const major of [0, 2, 0xffff]) {
      const bytes = sampleBytes();
      new DataView(bytes.buffer).setUint16(8, major, true);
      throwsFormat(() => decodeSnapshot(bytes), "SNAPSHOT_VERSION");
    }
  });

  it("refuses required header flags: MALFORMED in this minor, VERSION in a newer one", () => {
    const { header, sections } = unframe(sampleBytes());
    throwsFormat(
      () => decodeSnapshot(reframe(header, sections, { flags: 0x4 })),
      "SNAPSHOT_MALFORMED",
    );
    throwsFormat(
      () => decodeSnapshot(reframe(header, sections, { flags: 0x4, minor: FORMAT_MINOR + 1 })),
      "SNAPSHOT_VERSION",
    );
    assert.equal(decodeSnapshot(reframe(header, sections, { flags: 0x40000 })).flags, 0x40000);
  });

  it("refuses an unknown arch byte or backend code", () => {
    const { header, sections } = unframe(sampleBytes());
    throwsFormat(
      () => decodeSnapshot(reframe(header, sections, { archCode: 0x33 })),
      "SNAPSHOT_MALFORMED",
    );
    throwsFormat(
      () => decodeSnapshot(reframe(header, sections, { backendCode: 9 })),
      "SNAPSHOT_MALFORMED",
    );
  });

  it("refuses bad magic with SNAPSHOT_BAD_MAGIC", () => {
    const bytes = sampleBytes();
    bytes[3] = 0x58;
    throwsFormat(() => decodeSnapshot(bytes), "SNAPSHOT_BAD_MAGIC");
    throwsFormat(
      () => decodeSnapshot(new TextEncoder().encode("PK\u0003\u0004 a zip")),
      "SNAPSHOT_BAD_MAGIC",
    );
  });
});
