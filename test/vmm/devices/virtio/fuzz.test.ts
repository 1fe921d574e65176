import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VirtioBlk } from "../../../../src/vmm/devices/virtio/blk.js";
import { VirtioConsole } from "../../../../src/vmm/devices/virtio/console.js";
import { openRawDisk } from "../../../../src/vmm/devices/virtio/disk.js";
import { VIRTIO_STATUS } from "../../../../src/vmm/devices/virtio/mmio.js";
import { DeviceStateError } from "../../../../src/vmm/devices/state.js";
import { Uart16550 } from "../../../../src/vmm/devices/uart16550.js";
import { Plic } from "../../../../src/vmm/devices/plic.js";
import type { Device } from "../../../../src/vmm/devices/types.js";
import { FakeRam, GuestDriver } from "./driver.js";

/** Fills the descriptor table and avail ring with arbitrary bytes, then notifies. */
function garbageRound(drv: GuestDriver, index: number, desc: Uint8Array, avail: Uint8Array): void {
  const q = drv.queues[index] ?? assert.fail("queue");
  drv.ram.view(q.desc, 16 * q.size).set(desc.subarray(0, 16 * q.size));
  drv.ram.view(q.avail, 6 + 2 * q.size).set(avail.subarray(0, 6 + 2 * q.size));
  drv.notify(index);
}

describe("virtio devices under arbitrary ring contents", () => {
  it("virtio-blk never throws and never writes outside guest RAM; it serves or asks for a reset", () => {
    const dir = mkdtempSync(join(tmpdir(), "regvisor-fuzz-"));
    try {
      const path = join(dir, "d.img");
      writeFileSync(path, new Uint8Array(64 * 512));
      const disk = openRawDisk(path, { readOnly: false });
      // Descriptor addresses are biased into and around the 64 KiB fake RAM so that many point
      // at real memory, and lengths are kept small enough to make well-formed chains likely.
      const descriptor = fc
        .record({
          addr: fc.oneof(
            fc.bigInt({ min: 0x80000000n, max: 0x80010000n }),
            fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
          ),
          len: fc.oneof(fc.integer({ min: 0, max: 2048 }), fc.integer({ min: 0, max: 0xffffffff })),
          flags: fc.integer({ min: 0, max: 7 }),
          next: fc.integer({ min: 0, max: 10 }),
        })
        .map((d) => {
          const b = new Uint8Array(16);
          const v = new DataView(b.buffer);
          v.setBigUint64(0, d.addr, true);
          v.setUint32(8, d.len, true);
          v.setUint16(12, d.flags, true);
          v.setUint16(14, d.next, true);
          return b;
        });
      fc.assert(
        fc.property(
          fc.array(descriptor, { minLength: 8, maxLength: 8 }),
          fc.uint8Array({ minLength: 22, maxLength: 22 }),
          (descs, avail) => {
            const ram = new FakeRam(0x10000);
            const dev = new VirtioBlk({ name: "b", mem: ram, irq: { set: () => undefined }, disk });
            const drv = new GuestDriver(dev, ram);
            drv.init([8]);
            const table = new Uint8Array(128);
            descs.forEach((d, i) => {
              table.set(d, 16 * i);
            });
            // avail.idx small most of the time, so the device walks the chains.
            avail[2] = (avail[2] ?? 0) % 4;
            avail[3] = 0;
            garbageRound(drv, 0, table, avail);
            for (const w of ram.writes)
              assert.ok(ram.slice(w.gpa, w.length) !== undefined, "wrote() outside RAM");
            const status = drv.r32(0x70);
            if (status & VIRTIO_STATUS.DEVICE_NEEDS_RESET)
              assert.notEqual(dev.needsResetReason, "");
          },
        ),
        { numRuns: 300 },
      );
      disk.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("virtio-console never throws on arbitrary rings", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 128, maxLength: 128 }),
        fc.uint8Array({ minLength: 22, maxLength: 22 }),
        (table, avail) => {
          const ram = new FakeRam(0x10000);
          const dev = new VirtioConsole({
            name: "c",
            mem: ram,
            irq: { set: () => undefined },
            host: { write: (b) => b.length },
          });
          const drv = new GuestDriver(dev, ram);
          drv.init([8, 8]);
          garbageRound(drv, 1, table, avail);
          garbageRound(drv, 0, table, avail);
          dev.receive(new Uint8Array(100));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("restore() under byte flips", () => {
  const cases: [string, () => Device][] = [
    ["uart", () => new Uart16550("u", { set: () => undefined }, { write: (b) => b.length })],
    ["plic", () => new Plic({ outputs: [{ set: () => undefined }, { set: () => undefined }] })],
    [
      "virtio-console",
      () => {
        // Fresh RAM each time: the same allocations put the rings at the same addresses.
        const ram = new FakeRam(0x10000);
        const dev = new VirtioConsole({
          name: "c",
          mem: ram,
          irq: { set: () => undefined },
          host: { write: () => 0 },
        });
        new GuestDriver(dev, ram).init([8, 8]);
        return dev;
      },
    ],
  ];
  for (const [what, make] of cases) {
    it(`${what}: a flipped byte is restored or refused with DeviceStateError, never anything else`, () => {
      const good = make().save();
      fc.assert(
        fc.property(fc.nat(good.bytes.length - 1), fc.integer({ min: 1, max: 255 }), (at, x) => {
          const bytes = good.bytes.slice();
          bytes[at] = (bytes[at] ?? 0) ^ x;
          const dev = make();
          const before = dev.save();
          try {
            dev.restore({ version: good.version, bytes });
          } catch (e) {
            assert.ok(e instanceof DeviceStateError, String(e));
            assert.deepEqual(dev.save(), before);
          }
        }),
        { numRuns: 300 },
      );
    });
  }
});
