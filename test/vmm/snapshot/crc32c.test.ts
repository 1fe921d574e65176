import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { crc32c } from "../../../src/vmm/snapshot/crc32c.js";

/** Bit-at-a-time reference: the definition, with no tables. */
function reference(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}

describe("crc32c()", () => {
  it('gives the standard check value 0xE3069283 for "123456789"', () => {
    assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
  });

  it("matches the RFC 3720 §B.4 vectors", () => {
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    const inc = Uint8Array.from({ length: 32 }, (_, i) => i);
    assert.equal(crc32c(inc), 0x46dd794e);
    const dec = Uint8Array.from({ length: 32 }, (_, i) => 31 - i);
    assert.equal(crc32c(dec), 0x113fdb5c);
  });

  it("is 0 for no bytes", () => {
    assert.equal(crc32c(new Uint8Array(0)), 0);
  });

  it("equals the bit-at-a-time definition at every length and alignment", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(7), (bytes, skip) => {
        const view = bytes.subarray(Math.min(skip, bytes.length));
        assert.equal(crc32c(view), reference(view));
      }),
    );
  });

  it("continues across chunks: crc32c(b, crc32c(a)) = crc32c(a ++ b)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 100 }), (a, b) => {
        const ab = new Uint8Array(a.length + b.length);
        ab.set(a);
        ab.set(b, a.length);
        assert.equal(crc32c(b, crc32c(a)), crc32c(ab));
      }),
    );
  });
});
