import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ARCH_CODES,
  ARCH_NAMES,
  archOf,
  formatRegId,
  makeRegId,
  parseRegId,
  payloadOf,
  regId,
  regSize,
  sizeCode,
  sizeCodeOf,
} from "../../src/abi/regid.js";
import { RegIdSyntaxError } from "../../src/errors.js";

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

describe("RegId codec", () => {
  it("regId() rejects negative and wider-than-64-bit values with RangeError", () => {
    assert.throws(() => regId(-1n), RangeError);
    assert.throws(() => regId(1n << 64n), RangeError);
    assert.equal(regId((1n << 64n) - 1n), (1n << 64n) - 1n);
  });

  it("regId() rejects a number with TypeError", () => {
    assert.throws(() => regId(5 as unknown as bigint), TypeError);
  });

  it("formatRegId() prints 0x and 16 lower-case hex digits", () => {
    assert.equal(formatRegId(regId(0x1n)), "0x0000000000000001");
    assert.equal(formatRegId(regId(0xffffffffffffffffn)), "0xffffffffffffffff");
  });

  it("parseRegId() reads hex, upper-case hex, underscores and decimal", () => {
    assert.equal(parseRegId("0x8030_0000_0200_0001"), 0x8030000002000001n);
    assert.equal(parseRegId("0X1F"), 0x1fn);
    assert.equal(parseRegId("  42 "), 42n);
  });

  it("parseRegId() rejects text that is not a number with RegIdSyntaxError", () => {
    for (const bad of ["", "0x", "x12", "0xZZ", "12abc", "1e5", "0x_1", "--1", "ra"]) {
      assert.throws(() => parseRegId(bad), RegIdSyntaxError, bad);
    }
  });

  it("parseRegId() rejects negative and 65-bit numbers with RangeError", () => {
    assert.throws(() => parseRegId("-1"), RangeError);
    assert.throws(() => parseRegId("-0x10"), RangeError);
    assert.throws(() => parseRegId("0x10000000000000000"), RangeError);
    assert.throws(() => parseRegId("18446744073709551616"), RangeError);
    assert.equal(parseRegId("18446744073709551615"), (1n << 64n) - 1n);
  });

  it("decodes size codes 0..15, including the unnamed 9..15", () => {
    for (let code = 0; code < 16; code++) {
      const id = makeRegId("riscv", 1 << code, 0x9000006n);
      assert.equal(sizeCode(id), code);
      assert.equal(regSize(id), 1 << code);
    }
  });

  it("sizeCodeOf() rejects sizes that are not encodable", () => {
    for (const bad of [0, 3, 12, 65536, 1.5, -2]) assert.throws(() => sizeCodeOf(bad), RangeError);
  });

  it("makeRegId() rejects a payload wider than 52 bits", () => {
    assert.throws(() => makeRegId("x86", 8, 1n << 52n), RangeError);
    assert.throws(() => makeRegId("x86", 8, -1n), RangeError);
  });

  it("archOf() names every defined arch byte and nothing else", () => {
    for (const name of ARCH_NAMES) {
      assert.equal(archOf(makeRegId(name, 8, 0n)), name);
    }
    assert.equal(archOf(regId(0xa030000000000000n)), undefined);
    assert.equal(archOf(regId(0x2130000000000000n)), undefined);
  });

  it("format → parse round-trips every 64-bit value (property)", () => {
    fc.assert(
      fc.property(u64, (v) => {
        const id = regId(v);
        assert.equal(parseRegId(formatRegId(id)), id);
        assert.equal(parseRegId(v.toString(10)), id);
      }),
    );
  });

  it("fields recombine to the id (property)", () => {
    fc.assert(
      fc.property(u64, (v) => {
        const id = regId(v);
        const arch = archOf(id);
        fc.pre(arch !== undefined);
        assert.equal(makeRegId(arch, regSize(id), payloadOf(id)), id);
        assert.equal(BigInt(ARCH_CODES[arch]) << 56n, id & 0xff00000000000000n);
      }),
    );
  });
});
