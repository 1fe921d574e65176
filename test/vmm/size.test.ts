import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  DEFAULT_MEM_SIZE,
  MAX_MEM_SIZE,
  MIN_MEM_SIZE,
  OptionValueError,
  formatSize,
  parseAddress,
  parseMemSize,
} from "../../src/vmm/size.js";

describe("parseMemSize()", () => {
  it("reads plain bytes, hex and binary suffixes in any case", () => {
    const table: [string, bigint][] = [
      ["128M", 128n << 20n],
      ["1G", 1n << 30n],
      ["1g", 1n << 30n],
      ["65536", 65536n],
      ["0x10000", 0x10000n],
      ["512K", 512n << 10n],
      ["512KiB", 512n << 10n],
      ["256MB", 256n << 20n],
      [" 2G ", 2n << 30n],
      ["1_048_576", 1n << 20n],
      ["64G", 64n << 30n],
    ];
    for (const [text, want] of table) assert.equal(parseMemSize(text), want, text);
    assert.equal(DEFAULT_MEM_SIZE, 128n << 20n);
  });

  it("refuses text that is not a size, naming the option", () => {
    for (const bad of [
      "",
      "M",
      "12X",
      "1.5G",
      "-1M",
      "0x",
      "1__0",
      "_1",
      "1_",
      "128 M B",
      "1e9",
      "0x1G0",
    ]) {
      assert.throws(
        () => parseMemSize(bad),
        (e: unknown) =>
          e instanceof OptionValueError &&
          e.code === "OPTION_VALUE" &&
          e.option === "--mem" &&
          e.message.startsWith("--mem: "),
        bad,
      );
    }
  });

  it("refuses sizes below 64 KiB, above 64 GiB or not a multiple of 4 KiB", () => {
    assert.throws(() => parseMemSize("4K"), /out of range.*between 64 KiB and 64 GiB/);
    assert.throws(() => parseMemSize("65G"), /out of range/);
    assert.throws(() => parseMemSize("1T"), /out of range/);
    assert.throws(() => parseMemSize("99999999999999999999999999G"), /out of range/);
    assert.throws(() => parseMemSize("65537"), /multiple of 4 KiB/);
    assert.equal(parseMemSize(MIN_MEM_SIZE.toString()), MIN_MEM_SIZE);
    assert.equal(parseMemSize(MAX_MEM_SIZE.toString()), MAX_MEM_SIZE);
  });

  it("every accepted value is page-aligned and in bounds (property)", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), (text) => {
        try {
          const size = parseMemSize(text);
          assert.ok(size >= MIN_MEM_SIZE && size <= MAX_MEM_SIZE && size % 4096n === 0n);
        } catch (error) {
          assert.ok(error instanceof OptionValueError);
        }
      }),
    );
  });
});

describe("parseAddress()", () => {
  it("reads hex and decimal with separators, up to 2^64 - 1", () => {
    assert.equal(parseAddress("0x80200000", "--load-addr"), 0x8020_0000n);
    assert.equal(parseAddress("0X8020_0000", "--load-addr"), 0x8020_0000n);
    assert.equal(parseAddress("4096", "--entry"), 4096n);
    assert.equal(parseAddress("0xffffffffffffffff", "--entry"), (1n << 64n) - 1n);
  });

  it("refuses junk, negatives and values past 64 bits with the option name", () => {
    for (const bad of ["", "0x", "-1", "0x1g", "12k", "0x_1", "1.0", "ra"]) {
      assert.throws(
        () => parseAddress(bad, "--entry"),
        /^OptionValueError: --entry: expected an address/,
        bad,
      );
    }
    assert.throws(
      () => parseAddress("0x10000000000000000", "--load-addr"),
      /--load-addr: .* does not fit in 64 bits/,
    );
  });
});

describe("formatSize()", () => {
  it("prints the largest exact binary unit", () => {
    assert.equal(formatSize(128n << 20n), "128 MiB");
    assert.equal(formatSize(1n << 30n), "1 GiB");
    assert.equal(formatSize(1536n << 10n), "1536 KiB");
    assert.equal(formatSize(4097n), "4097 bytes");
    assert.equal(formatSize(0n), "0 bytes");
  });
});
