import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MmioBus, PortBus } from "../../../src/vmm/devices/bus.js";
import type { MmioDevice, PioDevice } from "../../../src/vmm/devices/types.js";

/** An MMIO device that records accesses and reads back its offset in every byte. */
function recorder(): MmioDevice & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    mmioRead(offset, data) {
      log.push(`r${offset}/${data.length}`);
      data.fill(offset & 0xff);
    },
    mmioWrite(offset, data) {
      log.push(`w${offset}/${data.length}=${data.join(",")}`);
    },
  };
}

describe("MmioBus", () => {
  it("dispatches by address to (device, offset) for 1/2/4/8-byte accesses", () => {
    const bus = new MmioBus();
    const a = recorder();
    const b = recorder();
    bus.register("b", 0x10001000n, 0x1000n, b);
    bus.register("a", 0x10000000n, 0x100n, a);
    for (const size of [1, 2, 4, 8]) {
      const data = new Uint8Array(size);
      assert.equal(bus.read(0x10000010n, data), true);
      assert.deepEqual([...data], new Array<number>(size).fill(0x10));
    }
    assert.equal(bus.write(0x10001ff8n, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)), true);
    assert.deepEqual(a.log, ["r16/1", "r16/2", "r16/4", "r16/8"]);
    assert.deepEqual(b.log, ["w4088/8=1,2,3,4,5,6,7,8"]);
    assert.deepEqual(
      bus.list().map((r) => r.name),
      ["a", "b"],
    );
  });

  it("reports unclaimed addresses, including an access running past a device's end", () => {
    const bus = new MmioBus();
    const a = recorder();
    bus.register("a", 0x1000n, 0x100n, a);
    const data = Uint8Array.of(0xaa, 0xaa, 0xaa, 0xaa);
    assert.equal(bus.read(0xfffn, data.subarray(0, 1)), false);
    assert.equal(bus.read(0x1100n, data), false);
    assert.equal(bus.read(0x10fen, data), false);
    assert.equal(bus.write(0x10fcn, data), true);
    assert.deepEqual(bus.resolve(0x2000n, 4), { kind: "unclaimed" });
    assert.deepEqual([...data], [0xaa, 0xaa, 0xaa, 0xaa]);
    assert.deepEqual(a.log, ["w252/4=170,170,170,170"]);
  });

  it("register() refuses an overlap and names both devices, leaving the bus unchanged", () => {
    const bus = new MmioBus();
    bus.register("uart0", 0x10000000n, 0x100n, recorder());
    assert.throws(
      () => {
        bus.register("virtio0", 0x100000f0n, 0x1000n, recorder());
      },
      (e: unknown) =>
        e instanceof RangeError &&
        /"virtio0" .*0x100000f0–0x100010ef.* overlaps "uart0" at 0x10000000–0x100000ff/.test(
          e.message,
        ),
    );
    assert.throws(() => {
      bus.register("x", 0xfffff000n, 0x1001n + 0xffffffff00000000n, recorder());
    }, RangeError);
    assert.throws(() => {
      bus.register("y", 0n, 0n, recorder());
    }, RangeError);
    assert.throws(() => {
      bus.register("uart0", 0x20000000n, 0x100n, recorder());
    }, /name is taken/);
    assert.deepEqual(
      bus.list().map((r) => r.name),
      ["uart0"],
    );
    // Adjacent ranges are fine.
    bus.register("virtio0", 0x10000100n, 0x1000n, recorder());
    assert.equal(bus.list().length, 2);
  });

  it("rejects access sizes other than 1, 2, 4, 8", () => {
    const bus = new MmioBus();
    assert.throws(() => bus.read(0n, new Uint8Array(3)), /1, 2, 4 or 8/);
    assert.throws(() => bus.write(0n, new Uint8Array(16)), RangeError);
  });

  it("finds the right device among many", () => {
    const bus = new MmioBus();
    const devs = Array.from({ length: 50 }, () => recorder());
    devs.forEach((d, i) => {
      bus.register(`d${i}`, 0x10001000n + BigInt(i) * 0x1000n, 0x200n, d);
    });
    for (let i = 0; i < 50; i++) {
      const hit = bus.resolve(0x10001000n + BigInt(i) * 0x1000n + 0x1fcn, 4);
      assert.ok(hit.kind === "device" && hit.name === `d${i}` && hit.offset === 0x1fc);
      assert.equal(bus.resolve(0x10001000n + BigInt(i) * 0x1000n + 0x200n, 1).kind, "unclaimed");
    }
  });
});

describe("PortBus", () => {
  it("dispatches IN/OUT to (device, offset) and leaves other ports unclaimed", () => {
    const bus = new PortBus();
    const log: string[] = [];
    const com: PioDevice = {
      pioRead: (offset, size) => {
        log.push(`in ${offset}/${size}`);
        return 0x40 + offset;
      },
      pioWrite: (offset, size, value) => {
        log.push(`out ${offset}/${size}=${value}`);
      },
    };
    bus.register("com1", 0x3f8, 8, com);
    assert.equal(bus.read(0x3fd, 1), 0x45);
    assert.equal(bus.write(0x3f8, 1, 0x41), true);
    assert.equal(bus.read(0x3f7, 1), undefined);
    assert.equal(bus.read(0x3fe, 4), undefined);
    assert.equal(bus.write(0x80, 1, 0), false);
    assert.deepEqual(log, ["in 5/1", "out 0/1=65"]);
    assert.throws(() => {
      bus.register("com1b", 0x3ff, 1, com);
    }, /overlaps "com1" at 0x3f8–0x3ff/);
    assert.throws(() => {
      bus.register("top", 0xffff, 2, com);
    }, /within 0–0xffff/);
    assert.throws(() => bus.read(0x3f8, 8), /1, 2 or 4/);
  });
});
