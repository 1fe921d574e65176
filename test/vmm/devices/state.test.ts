import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DeviceStateError, StateWriter, stateReader } from "../../../src/vmm/devices/state.js";

describe("device state codec", () => {
  it("round-trips every field kind", () => {
    const bytes = new StateWriter()
      .u8(7)
      .bool(true)
      .u16(0xbeef)
      .u32(0xdeadbeef)
      .u64(0x0123456789abcdefn)
      .bytes(Uint8Array.of(1, 2, 3))
      .finish();
    const r = stateReader("d", { version: 3, bytes }, 3);
    assert.equal(r.u8("a"), 7);
    assert.equal(r.bool("b"), true);
    assert.equal(r.u16("c"), 0xbeef);
    assert.equal(r.u32("d"), 0xdeadbeef);
    assert.equal(r.u64("e"), 0x0123456789abcdefn);
    assert.deepEqual([...r.bytes("f", 3)], [1, 2, 3]);
    r.end();
  });

  it("grows past its initial buffer", () => {
    const big = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
    const w = new StateWriter().u8(1);
    for (let i = 0; i < 5; i++) w.bytes(big).u64(BigInt(i));
    const r = stateReader("d", { version: 1, bytes: w.finish() }, 1);
    r.u8("x");
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(r.bytes("b", 1000), big);
      assert.equal(r.u64("n"), BigInt(i));
    }
    r.end();
  });

  it("refuses a wrong version, truncation, an oversized length, a bad bool and trailing bytes", () => {
    const bytes = new StateWriter().u8(2).bytes(new Uint8Array(10)).finish();
    assert.throws(
      () => stateReader("uart0", { version: 2, bytes }, 1),
      (e: unknown) =>
        e instanceof DeviceStateError &&
        e.code === "DEVICE_STATE" &&
        /"uart0".*version 2/.test(e.message),
    );
    assert.throws(() => stateReader("d", { version: 1, bytes }, 1).bool("flag"), /flag is 2/);
    const r = stateReader("d", { version: 1, bytes }, 1);
    r.u8("x");
    assert.throws(() => r.bytes("fifo", 9), /above its limit 9/);
    const t = stateReader("d", { version: 1, bytes: bytes.subarray(0, 8) }, 1);
    t.u8("x");
    assert.throws(() => t.bytes("fifo", 16), /truncated at byte 5 \(reading fifo\)/);
    const e = stateReader("d", { version: 1, bytes }, 1);
    e.u8("x");
    assert.throws(() => {
      e.end();
    }, /14 unexpected bytes/);
  });
});
