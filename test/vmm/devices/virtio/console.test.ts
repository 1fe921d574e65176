import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { VirtioConsole } from "../../../../src/vmm/devices/virtio/console.js";
import { VIRTIO_STATUS } from "../../../../src/vmm/devices/virtio/mmio.js";
import { DeviceStateError } from "../../../../src/vmm/devices/state.js";
import { FakeRam, GuestDriver } from "./driver.js";

const RX = 0;
const TX = 1;
const text = (s: string) => new TextEncoder().encode(s);

/** A console whose host takes at most `budget` bytes (Infinity = everything). */
function setup(ram = new FakeRam()) {
  const host = { budget: Infinity, out: [] as number[], rxSpace: 0 };
  const levels: boolean[] = [];
  const dev = new VirtioConsole({
    name: "virtio-console0",
    mem: ram,
    irq: { set: (l) => levels.push(l) },
    host: {
      write: (bytes) => {
        const n = Math.min(host.budget, bytes.length);
        host.out.push(...bytes.subarray(0, n));
        host.budget -= n;
        return n;
      },
      rxSpace: () => {
        host.rxSpace++;
      },
    },
  });
  const drv = new GuestDriver(dev, ram);
  return { ram, dev, drv, host, line: () => levels.at(-1) ?? false };
}

const outText = (host: { out: number[] }) => String.fromCharCode(...host.out);

describe("VirtioConsole", () => {
  it("is device 3 with two queues and no features of its own", () => {
    const { drv } = setup();
    assert.equal(drv.r32(0x008), 3);
    assert.equal(drv.features() & 0xffffffn, 0n);
    for (const q of [0, 1]) {
      drv.w32(0x30, q);
      assert.equal(drv.r32(0x34), 64);
    }
    drv.w32(0x30, 2);
    assert.equal(drv.r32(0x34), 0);
  });

  it("transmits buffers in order and returns them with an interrupt", () => {
    const { drv, host, line } = setup();
    drv.init([8, 8]);
    const a = drv.submit(TX, [{ data: text("hello ") }]);
    const b = drv.submit(TX, [{ data: text("wor") }, { data: text("ld\n") }]);
    drv.notify(TX);
    assert.equal(outText(host), "hello world\n");
    assert.deepEqual(drv.takeUsed(TX), [
      { id: a.head, len: 0 },
      { id: b.head, len: 0 },
    ]);
    assert.equal(line(), true);
    assert.equal(drv.ack(), 1);
    assert.equal(line(), false);
  });

  it("keeps transmit buffers while the host refuses, resumes mid-buffer on drain()", () => {
    const { dev, drv, host, line } = setup();
    drv.init([8, 8]);
    host.budget = 3;
    const a = drv.submit(TX, [{ data: text("abcdef") }]);
    const b = drv.submit(TX, [{ data: text("gh") }]);
    drv.notify(TX);
    assert.equal(outText(host), "abc");
    assert.deepEqual(drv.takeUsed(TX), [], "nothing consumed while the host refuses");
    assert.equal(line(), false);
    host.budget = 0;
    dev.drain();
    assert.equal(outText(host), "abc");
    host.budget = 4;
    dev.drain();
    assert.equal(outText(host), "abcdefg");
    assert.deepEqual(drv.takeUsed(TX), [{ id: a.head, len: 0 }]);
    assert.equal(line(), true);
    host.budget = Infinity;
    dev.drain();
    assert.equal(outText(host), "abcdefgh");
    assert.deepEqual(drv.takeUsed(TX), [{ id: b.head, len: 0 }]);
  });

  it("receives into posted buffers, reports how much fit, and tells the host about new buffers", () => {
    const { dev, drv, host, line } = setup();
    assert.equal(dev.receive(text("early")), 0, "driver not ready");
    drv.init([8, 8]);
    assert.equal(dev.receive(text("x")), 0, "no buffers posted");
    const r1 = drv.submit(RX, [{ writable: 4 }]);
    const r2 = drv.submit(RX, [{ writable: 2 }, { writable: 8 }]);
    drv.notify(RX);
    assert.equal(host.rxSpace, 1);
    assert.equal(dev.receive(text("0123456789abcdef")), 14);
    assert.deepEqual(drv.takeUsed(RX), [
      { id: r1.head, len: 4 },
      { id: r2.head, len: 10 },
    ]);
    assert.equal(new TextDecoder().decode(drv.ram.view(r1.addrs[0] ?? 0n, 4)), "0123");
    assert.equal(new TextDecoder().decode(drv.ram.view(r2.addrs[1] ?? 0n, 8)), "6789abcd");
    assert.equal(line(), true);
    const r3 = drv.submit(RX, [{ writable: 16 }]);
    assert.equal(dev.receive(text("ef")), 2);
    assert.deepEqual(drv.takeUsed(RX), [{ id: r3.head, len: 2 }]);
  });

  it("a malformed transmit chain puts it in NEEDS_RESET instead of throwing", () => {
    const { dev, drv, host } = setup();
    drv.init([8, 8]);
    drv.publish(TX, 9);
    drv.notify(TX);
    assert.ok(drv.r32(0x70) & VIRTIO_STATUS.DEVICE_NEEDS_RESET);
    assert.match(dev.needsResetReason, /head descriptor 9/);
    dev.drain();
    assert.equal(dev.receive(text("x")), 0);
    assert.deepEqual(host.out, []);
  });

  it("save()/restore() carries a half-sent transmit buffer", () => {
    const a = setup();
    a.drv.init([8, 8]);
    a.host.budget = 2;
    const first = a.drv.submit(TX, [{ data: text("snapshot") }]);
    a.drv.notify(TX);
    assert.equal(outText(a.host), "sn");
    const state = a.dev.save();
    const ram = new FakeRam();
    ram.bytes.set(a.ram.bytes);
    const b = setup(ram);
    b.dev.restore(state);
    assert.deepEqual(b.dev.save(), state);
    b.dev.drain();
    assert.equal(outText(b.host), "apshot");
    Object.assign(
      b.drv.queues,
      a.drv.queues.map((q) => ({ ...q })),
    );
    assert.deepEqual(b.drv.takeUsed(TX), [{ id: first.head, len: 0 }]);
    const bad = [
      { version: 1, bytes: state.bytes.subarray(0, state.bytes.length - 1) },
      { version: 1, bytes: Uint8Array.of(...state.bytes, 1) },
      { version: 0, bytes: state.bytes },
    ];
    const c = setup();
    const before = c.dev.save();
    for (const s of bad) {
      assert.throws(() => {
        c.dev.restore(s);
      }, DeviceStateError);
      assert.deepEqual(c.dev.save(), before);
    }
  });
});
