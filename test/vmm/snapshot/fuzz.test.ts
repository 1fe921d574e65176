import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeSnapshot,
  SECTION_TYPES,
  type DecodedSnapshot,
} from "../../../src/vmm/snapshot/format.js";
import { SnapshotFormatError } from "../../../src/vmm/snapshot/errors.js";
import { editHeader, reframe, sampleBytes, sampleSnapshot, unframe } from "./samples.js";

/** Decodes; returns the error code, or "ok". Any error other than SnapshotFormatError fails. */
function outcome(bytes: Uint8Array): string {
  try {
    decodeSnapshot(bytes);
    return "ok";
  } catch (e) {
    if (e instanceof SnapshotFormatError) return e.code;
    assert.fail(
      `decodeSnapshot leaked ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`,
    );
  }
}

const VALID = sampleBytes();

function stillWorks(): DecodedSnapshot {
  const decoded = decodeSnapshot(VALID);
  assert.equal(decoded.vcpus[0]?.regs.length, sampleSnapshot().vcpus[0]?.regs.length);
  return decoded;
}

describe("snapshot decoder on damaged input", () => {
  it("truncation at every offset gives SNAPSHOT_TRUNCATED, then a valid snapshot still decodes", () => {
    for (let k = 0; k < VALID.length; k++) {
      assert.equal(outcome(VALID.subarray(0, k)), "SNAPSHOT_TRUNCATED", `cut at ${k}`);
      // A copy too: subarray views and fresh buffers take different DataView paths.
      if (k % 97 === 0) assert.equal(outcome(VALID.slice(0, k)), "SNAPSHOT_TRUNCATED");
    }
    stillWorks();
  });

  it("truncation with the header re-declaring the cut length never leaks another error", () => {
    const codes = new Set<string>();
    for (let k = 40; k < VALID.length; k++) {
      const cut = editHeader(VALID.subarray(0, k), (v) => {
        v.setBigUint64(24, BigInt(k), true);
      });
      const code = outcome(cut);
      assert.notEqual(code, "ok", `cut at ${k} decoded`);
      codes.add(code);
    }
    assert.ok(codes.has("SNAPSHOT_MALFORMED"));
    stillWorks();
  });

  it("every section payload cut at every length (CRC re-computed) gives only format errors", () => {
    const { header, sections } = unframe(VALID);
    sections.forEach((s, i) => {
      const payload = s.payload[0] ?? new Uint8Array(0);
      for (let k = 0; k < payload.length; k++) {
        const copy = [...sections];
        copy[i] = { ...s, payload: [payload.subarray(0, k)] };
        const code = outcome(reframe(header, copy));
        // A DEVICE payload cut inside its opaque bytes is still a valid (shorter) device.
        if (s.type !== SECTION_TYPES.DEVICE)
          assert.notEqual(code, "ok", `section ${i} cut at ${k}`);
      }
    });
    stillWorks();
  });

  it("flipping any bit of any byte is detected: header by magic/version/CRC, sections by CRC", () => {
    for (let at = 0; at < VALID.length; at++) {
      for (const mask of [1 << (at % 8), 0xff]) {
        const bad = VALID.slice();
        bad[at] = (bad[at] ?? 0) ^ mask;
        const code = outcome(bad);
        if (at < 8) assert.equal(code, "SNAPSHOT_BAD_MAGIC", `offset ${at}`);
        else if (at < 10) assert.equal(code, "SNAPSHOT_VERSION", `offset ${at}`);
        else if (at < 40) assert.equal(code, "SNAPSHOT_CRC", `offset ${at}`);
        else
          assert.ok(
            ["SNAPSHOT_CRC", "SNAPSHOT_MALFORMED", "SNAPSHOT_LIMIT"].includes(code),
            `offset ${at}: ${code}`,
          );
      }
    }
    stillWorks();
  });

  it("flips inside section payloads and CRCs are reported as SNAPSHOT_CRC", () => {
    const decoded = decodeSnapshot(VALID);
    for (const s of decoded.sections) {
      // Payload and CRC bytes; the 16-byte frame header may also fail as MALFORMED/LIMIT.
      for (let at = s.offset + 16; at < s.offset + 20 + s.length; at++) {
        const bad = VALID.slice();
        bad[at] = (bad[at] ?? 0) ^ 0x10;
        assert.equal(outcome(bad), "SNAPSHOT_CRC", `section ${s.index} byte ${at}`);
      }
    }
  });

  it("random corruption anywhere gives a format error or a valid decode, nothing else", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(VALID.length - 1), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 8,
        }),
        (edits) => {
          const bad = VALID.slice();
          for (const [at, x] of edits) bad[at] = (bad[at] ?? 0) ^ x;
          outcome(bad);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("random payloads in valid frames (CRCs correct) of every section type give only format errors", () => {
    const { header } = unframe(VALID);
    const types = [
      SECTION_TYPES.META,
      SECTION_TYPES.VCPU_STATE,
      SECTION_TYPES.MEMORY,
      SECTION_TYPES.DEVICE,
      99,
    ];
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.constantFrom(...types),
            fc.integer({ min: 0, max: 1 }),
            fc.uint8Array({ maxLength: 200 }),
          ),
          { maxLength: 6 },
        ),
        (frames) => {
          outcome(
            reframe(
              header,
              frames.map(([type, flags, payload]) => ({ type, flags, payload: [payload] })),
            ),
          );
        },
      ),
      { numRuns: 500 },
    );
    stillWorks();
  });

  it("structured-but-wrong payloads (plausible headers, random tails) give only format errors", () => {
    const { header } = unframe(VALID);
    const u32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
    const vcpu = fc
      .tuple(fc.nat(3), fc.nat(6), fc.uint8Array({ maxLength: 120 }))
      .map(([i, n, tail]) => new Uint8Array([...u32(i), ...u32(n), ...tail]));
    const mem = fc
      .tuple(
        fc.nat(3),
        fc.integer({ min: 0, max: 20000 }),
        fc.constantFrom(0, 1, 2),
        fc.uint8Array({ maxLength: 64 }),
      )
      .map(
        ([slot, len, enc, tail]) =>
          new Uint8Array([
            ...u32(slot),
            0,
            0,
            0,
            0,
            0,
            0x10,
            0,
            0,
            0,
            0,
            0,
            0,
            ...u32(len),
            0,
            0,
            0,
            0,
            enc,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            ...tail,
          ]),
      );
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            vcpu.map((p) => [2, p] as const),
            mem.map((p) => [3, p] as const),
          ),
          { maxLength: 4 },
        ),
        (frames) => {
          outcome(
            reframe(
              header,
              frames.map(([type, payload]) => ({ type, flags: 0, payload: [payload] })),
            ),
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  it("rejects trailing bytes after the declared end", () => {
    const longer = new Uint8Array(VALID.length + 1);
    longer.set(VALID);
    assert.equal(outcome(longer), "SNAPSHOT_MALFORMED");
  });

  it("rejects a non-Uint8Array argument with TypeError", () => {
    assert.throws(() => decodeSnapshot("RGVSNAP" as unknown as Uint8Array), TypeError);
  });
});
