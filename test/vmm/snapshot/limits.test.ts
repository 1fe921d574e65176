import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  decodeSnapshot,
  DEFAULT_LIMITS,
  encodeSnapshot,
  resolveLimits,
  SECTION_TYPES,
  type SnapshotLimits,
} from "../../../src/vmm/snapshot/format.js";
import { SnapshotFormatError } from "../../../src/vmm/snapshot/errors.js";
import { editHeader, editSection, sampleBytes, sampleSnapshot } from "./samples.js";

function code(fn: () => unknown): string {
  try {
    fn();
    return "ok";
  } catch (e) {
    assert.ok(e instanceof SnapshotFormatError, `leaked ${String(e)}`);
    return e.code;
  }
}

/** The sample's actual sizes, to set each limit just below what it needs. */
const s = sampleSnapshot();
const VALID = sampleBytes();
const decoded = decodeSnapshot(VALID);
const vcpuBytes = decoded.sections.find((x) => x.type === SECTION_TYPES.VCPU_STATE)?.length ?? 0;
const metaBytes = decoded.sections.find((x) => x.type === SECTION_TYPES.META)?.length ?? 0;
const ram = s.memory.reduce((n, m) => n + m.data.length, 0);
const biggestRegion = Math.max(...s.memory.map((m) => m.data.length));
const regs = s.vcpus[0]?.regs.length ?? 0;

/** Each limit, set one below what the sample needs, and at exactly what it needs. */
const TIGHT: [keyof SnapshotLimits, number][] = [
  ["maxTotalBytes", VALID.length],
  ["maxSections", decoded.sections.length],
  ["maxRegsPerVcpu", regs],
  ["maxVcpuBytes", vcpuBytes],
  ["maxRegionBytes", biggestRegion],
  ["maxMemoryBytes", ram],
  ["maxDeviceBytes", 2],
  ["maxDeviceNameBytes", "vmm.exit".length],
  ["maxMetaBytes", metaBytes],
];

describe("snapshot limits", () => {
  for (const [key, need] of TIGHT) {
    it(`${key}: decoding refuses one below what the snapshot needs (SNAPSHOT_LIMIT), accepts exactly it`, () => {
      assert.equal(
        code(() => decodeSnapshot(VALID, { limits: { [key]: need - 1 } })),
        "SNAPSHOT_LIMIT",
      );
      assert.equal(
        code(() => decodeSnapshot(VALID, { limits: { [key]: need } })),
        "ok",
      );
    });

    it(`${key}: encoding refuses with RangeError one below, so what is written can be read`, () => {
      assert.throws(() => encodeSnapshot(s, { limits: { [key]: need - 1 } }), RangeError);
      encodeSnapshot(s, { limits: { [key]: need } });
    });
  }

  it("default limits refuse huge claims before allocating: section count 2^32-1", () => {
    const bad = editHeader(VALID, (v) => {
      v.setUint32(20, 0xffffffff, true);
    });
    assert.equal(
      code(() => decodeSnapshot(bad)),
      "SNAPSHOT_LIMIT",
    );
  });

  it("default limits refuse huge claims: total length 2^63", () => {
    const bad = editHeader(VALID, (v) => {
      v.setBigUint64(24, 1n << 63n, true);
    });
    assert.equal(
      code(() => decodeSnapshot(bad)),
      "SNAPSHOT_LIMIT",
    );
  });

  it("default limits refuse huge claims: register count 2^32-1", () => {
    const bad = editSection(VALID, SECTION_TYPES.VCPU_STATE, (p) => {
      const out = p.slice();
      new DataView(out.buffer).setUint32(4, 0xffffffff, true);
      return out;
    });
    assert.equal(
      code(() => decodeSnapshot(bad)),
      "SNAPSHOT_LIMIT",
    );
  });

  it("a register count that cannot fit in its section is MALFORMED, not a long loop", () => {
    const bad = editSection(VALID, SECTION_TYPES.VCPU_STATE, (p) => {
      const out = p.slice();
      new DataView(out.buffer).setUint32(4, DEFAULT_LIMITS.maxRegsPerVcpu, true);
      return out;
    });
    assert.equal(
      code(() => decodeSnapshot(bad)),
      "SNAPSHOT_MALFORMED",
    );
  });

  it("default limits refuse huge claims: memory region of 2^40 zero pages (a decompression bomb)", () => {
    const bad = editSection(VALID, SECTION_TYPES.MEMORY, (p) => {
      const out = p.slice();
      new DataView(out.buffer).setBigUint64(16, 1n << 40n, true);
      return out;
    });
    assert.equal(
      code(() => decodeSnapshot(bad)),
      "SNAPSHOT_LIMIT",
    );
  });

  it("default limits refuse huge claims: device name length 65535", () => {
    const bad = editSection(VALID, SECTION_TYPES.DEVICE, (p) => {
      const out = p.slice();
      new DataView(out.buffer).setUint16(0, 0xffff, true);
      return out;
    });
    assert.equal(
      code(() => decodeSnapshot(bad)),
      "SNAPSHOT_LIMIT",
    );
  });

  it("resolveLimits() rejects unknown keys (TypeError) and negative or fractional values (RangeError)", () => {
    assert.throws(
      () => resolveLimits({ maxBogus: 1 } as unknown as Partial<SnapshotLimits>),
      TypeError,
    );
    assert.throws(() => resolveLimits({ maxSections: -1 }), RangeError);
    assert.throws(() => resolveLimits({ maxSections: 1.5 }), RangeError);
    assert.deepEqual(resolveLimits(), DEFAULT_LIMITS);
  });
});
