/**
 * The catalog and codec against hostile input from JavaScript callers (issue 12, point 9):
 * prototype keys as arch or register names, bigints outside 0..2^64-1, missing errno names.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  CATALOG_ARCHES,
  catalogFor,
  decodeReg,
  describeReg,
  lookupReg,
} from "../../src/abi/catalog.js";
import { errnoName } from "../../src/abi/kvm/errno.js";
import { formatRegId, makeRegId, type ArchName, type RegId } from "../../src/abi/regid.js";
import { UnknownRegisterError } from "../../src/errors.js";

const PROTO_KEYS = ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf"];

describe("lookupReg() and catalogFor() with prototype keys", () => {
  it("an arch named like an Object.prototype key has no catalog", () => {
    for (const key of PROTO_KEYS) {
      const arch = key as ArchName; // what an untyped JavaScript caller can pass
      assert.equal(catalogFor(arch), undefined, key);
      assert.throws(() => lookupReg(arch, "pc"), UnknownRegisterError, key);
    }
  });

  it("a register named like an Object.prototype key is unknown on every arch", () => {
    for (const arch of CATALOG_ARCHES)
      for (const key of PROTO_KEYS)
        assert.throws(() => lookupReg(arch, key), UnknownRegisterError, `${arch} ${key}`);
  });
});

describe("the id codec refuses values that are no 64-bit id", () => {
  for (const value of [-1n, 1n << 64n, -(1n << 63n)]) {
    it(`decodeReg(), describeReg() and formatRegId() refuse ${value}`, () => {
      const id = value as RegId; // a plain bigint from JavaScript
      assert.throws(() => decodeReg(id), RangeError);
      assert.throws(() => describeReg(id), RangeError);
      assert.throws(() => formatRegId(id), RangeError);
    });
  }

  it("makeRegId() names a negative payload in decimal", () => {
    assert.throws(() => makeRegId("riscv", 8, -1n), { name: "RangeError", message: /payload -1 / });
  });
});

describe("errnoName()", () => {
  it("knows the errnos of file and pipe errors", () => {
    assert.equal(errnoName(20), "ENOTDIR");
    assert.equal(errnoName(21), "EISDIR");
    assert.equal(errnoName(32), "EPIPE");
  });
});
