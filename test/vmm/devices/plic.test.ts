import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { PLIC_MAX_PRIORITY, Plic } from "../../../src/vmm/devices/plic.js";
import { DeviceStateError } from "../../../src/vmm/devices/state.js";

/** A PLIC with two contexts whose outputs are recorded. */
function setup(sources?: number): { plic: Plic; out: boolean[][] } {
  const out: boolean[][] = [[], []];
  const plic = new Plic({
    ...(sources === undefined ? {} : { sources }),
    outputs: [0, 1].map((c) => ({ set: (l: boolean) => out[c]?.push(l) })),
  });
  return { plic, out };
}

function rd(plic: Plic, offset: number): number {
  const d = new Uint8Array(4);
  plic.mmioRead(offset, d);
  return new DataView(d.buffer).getUint32(0, true);
}

function wr(plic: Plic, offset: number, value: number): void {
  const d = new Uint8Array(4);
  new DataView(d.buffer).setUint32(0, value >>> 0, true);
  plic.mmioWrite(offset, d);
}

const prio = (s: number) => 4 * s;
const enable = (ctx: number, word = 0) => 0x2000 + 0x80 * ctx + 4 * word;
const threshold = (ctx: number) => 0x200000 + 0x1000 * ctx;
const claim = (ctx: number) => 0x200004 + 0x1000 * ctx;

describe("Plic", () => {
  it("routes sources to the contexts that enable them; claim/complete as Linux's driver does", () => {
    const { plic, out } = setup();
    wr(plic, prio(10), 1);
    wr(plic, prio(1), 1);
    wr(plic, enable(0), 1 << 10);
    wr(plic, enable(1), 1 << 1);
    const uart = plic.irqLine(10);
    const blk = plic.irqLine(1);
    uart.set(true);
    assert.deepEqual(out, [[true], []]);
    assert.equal(rd(plic, 0x1000), 1 << 10);
    assert.equal(rd(plic, claim(1)), 0, "context 1 does not enable source 10");
    assert.equal(rd(plic, claim(0)), 10);
    assert.deepEqual(out, [[true, false], []]);
    assert.equal(rd(plic, 0x1000), 0, "claimed: no longer pending");
    blk.set(true);
    assert.deepEqual(out[1], [true]);
    uart.set(false);
    wr(plic, claim(0), 10);
    assert.deepEqual(out[0], [true, false], "the line dropped before completion: nothing new");
    assert.equal(rd(plic, claim(1)), 1);
    blk.set(false);
    wr(plic, claim(1), 1);
    assert.equal(plic.outputAsserted(1), false);
  });

  it("keeps a level source from re-pending while claimed, and re-pends it on completion", () => {
    const { plic, out } = setup();
    wr(plic, prio(5), 3);
    wr(plic, enable(0), 1 << 5);
    const line = plic.irqLine(5);
    line.set(true);
    assert.equal(rd(plic, claim(0)), 5);
    line.set(false);
    line.set(true);
    assert.equal(rd(plic, 0x1000), 0, "no new pending while claimed");
    assert.equal(plic.outputAsserted(0), false);
    wr(plic, claim(1), 5); // context 1 has not enabled source 5: ignored
    assert.equal(plic.outputAsserted(0), false);
    wr(plic, claim(0), 5);
    assert.equal(rd(plic, 0x1000), 1 << 5, "still asserted after complete: pending again");
    assert.deepEqual(out[0], [true, false, true]);
    assert.equal(rd(plic, claim(0)), 5);
    wr(plic, claim(0), 5);
    wr(plic, claim(0), 5); // a second completion changes nothing
    assert.equal(rd(plic, 0x1000), 1 << 5);
  });

  it("claims the highest priority above the threshold, ties to the lowest id", () => {
    const { plic } = setup();
    for (const [s, p] of [
      [3, 2],
      [4, 6],
      [7, 6],
      [9, 0],
    ] as const)
      wr(plic, prio(s), p);
    wr(plic, enable(0), (1 << 3) | (1 << 4) | (1 << 7) | (1 << 9));
    for (const s of [3, 4, 7, 9]) plic.irqLine(s).set(true);
    wr(plic, threshold(0), 6);
    assert.equal(plic.outputAsserted(0), false, "nothing above threshold 6");
    assert.equal(rd(plic, claim(0)), 0);
    wr(plic, threshold(0), 1);
    assert.equal(rd(plic, threshold(0)), 1);
    assert.deepEqual(
      [rd(plic, claim(0)), rd(plic, claim(0)), rd(plic, claim(0)), rd(plic, claim(0))],
      [4, 7, 3, 0],
      "priority 0 never interrupts",
    );
  });

  it("has the register layout of riscv,plic0 with WARL priorities, enables and threshold", () => {
    const { plic } = setup(40);
    wr(plic, prio(0), 5);
    assert.equal(rd(plic, prio(0)), 0, "source 0 does not exist");
    wr(plic, prio(40), 0xffffffff);
    assert.equal(rd(plic, prio(40)), PLIC_MAX_PRIORITY);
    wr(plic, prio(41), 3);
    assert.equal(rd(plic, prio(41)), 0);
    wr(plic, enable(1, 0), 0xffffffff);
    wr(plic, enable(1, 1), 0xffffffff);
    assert.equal(rd(plic, enable(1, 0)), 0xfffffffe);
    assert.equal(rd(plic, enable(1, 1)), 0x1ff, "sources 32…40");
    assert.equal(rd(plic, enable(0, 0)), 0);
    wr(plic, enable(2), 1);
    assert.equal(rd(plic, enable(2)), 0, "no context 2");
    wr(plic, 0x1000, 0xffffffff);
    assert.equal(rd(plic, 0x1000), 0, "pending is read-only");
    wr(plic, threshold(1), 99);
    assert.equal(rd(plic, threshold(1)), PLIC_MAX_PRIORITY);
    plic.irqLine(33).set(true);
    assert.equal(rd(plic, 0x1004), 1 << 1);
    const byte = new Uint8Array(1);
    plic.mmioRead(0x1004, byte);
    assert.equal(byte[0], 0, "byte accesses read 0");
    const wide = new Uint8Array(8);
    plic.mmioRead(0x1000, wide);
    assert.deepEqual([...wide], [0, 0, 0, 0, 2, 0, 0, 0]);
  });

  it("refuses bad sources and contexts", () => {
    const { plic } = setup();
    assert.throws(() => plic.irqLine(0), /source 0 does not exist: use 1 … 95/);
    assert.throws(() => plic.irqLine(96), RangeError);
    assert.throws(
      () => new Plic({ sources: 1024, outputs: [{ set: () => undefined }] }),
      /1 … 1023/,
    );
    assert.throws(() => new Plic({ outputs: [] }), /0 contexts/);
  });

  it("save()/restore() carries a mid-claim state and drives the outputs", () => {
    const a = setup();
    wr(a.plic, prio(10), 2);
    wr(a.plic, prio(1), 1);
    wr(a.plic, enable(0), (1 << 10) | (1 << 1));
    wr(a.plic, enable(1), 1 << 1);
    a.plic.irqLine(10).set(true);
    a.plic.irqLine(1).set(true);
    assert.equal(rd(a.plic, claim(0)), 10);
    const state = a.plic.save();
    const b = setup();
    b.plic.restore(state);
    assert.deepEqual(b.plic.save(), state);
    assert.deepEqual(b.out, [[true], [true]]);
    for (const p of [a.plic, b.plic]) {
      p.irqLine(10).set(true);
      assert.equal(rd(p, claim(1)), 1);
      wr(p, claim(0), 10);
      assert.equal(rd(p, claim(0)), 10, "source 10 re-pended on completion");
    }
    assert.deepEqual(a.plic.save(), b.plic.save());
  });

  it("restore() refuses malformed and mismatched states and changes nothing", () => {
    const a = setup();
    wr(a.plic, prio(3), 1);
    const good = a.plic.save();
    const b = setup();
    wr(b.plic, prio(4), 4);
    const before = b.plic.save();
    const bad = [
      { version: 9, bytes: good.bytes },
      setup(96).plic.save(),
      ...Array.from({ length: good.bytes.length }, (_, n) => ({
        version: 1,
        bytes: good.bytes.subarray(0, n),
      })),
    ];
    const flip = (at: number, v: number) => {
      const bytes = good.bytes.slice();
      bytes[at] = v;
      bad.push({ version: 1, bytes });
    };
    flip(12, 1); // priority of source 0
    flip(12 + 3, 8); // priority above 7
    flip(8 + 4 + 96 + 4 + 5, 2); // a level that is not 0/1
    for (const s of bad) {
      assert.throws(() => {
        b.plic.restore(s);
      }, DeviceStateError);
      assert.deepEqual(b.plic.save(), before);
    }
  });
});
