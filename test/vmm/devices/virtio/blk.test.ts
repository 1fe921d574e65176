import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  VIRTIO_BLK_F,
  VIRTIO_BLK_S,
  VIRTIO_BLK_T,
  VirtioBlk,
} from "../../../../src/vmm/devices/virtio/blk.js";
import {
  DiskError,
  openRawDisk,
  type BlockBackend,
} from "../../../../src/vmm/devices/virtio/disk.js";
import {
  VIRTIO_F,
  VIRTIO_MMIO_MAGIC,
  VIRTIO_STATUS,
} from "../../../../src/vmm/devices/virtio/mmio.js";
import { DeviceStateError } from "../../../../src/vmm/devices/state.js";
import { FakeRam, GuestDriver, RAM_BASE, type Buffer } from "./driver.js";

const dir = mkdtempSync(join(tmpdir(), "regvisor-blk-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});
let files = 0;

/** A disk image of `sectors` sectors, sector n filled with byte n. */
function image(sectors: number): string {
  const path = join(dir, `disk${files++}.img`);
  const bytes = new Uint8Array(sectors * 512);
  for (let s = 0; s < sectors; s++) bytes.fill(s & 0xff, s * 512, (s + 1) * 512);
  writeFileSync(path, bytes);
  return path;
}

function header(type: number, sector: bigint): Uint8Array {
  const h = new Uint8Array(16);
  const v = new DataView(h.buffer);
  v.setUint32(0, type, true);
  v.setBigUint64(8, sector, true);
  return h;
}

function setup(opts: { readOnly?: boolean; sectors?: number; disk?: BlockBackend } = {}) {
  const ram = new FakeRam();
  const levels: boolean[] = [];
  const disk =
    opts.disk ?? openRawDisk(image(opts.sectors ?? 64), { readOnly: opts.readOnly ?? false });
  const dev = new VirtioBlk({
    name: "virtio-blk0",
    mem: ram,
    irq: { set: (l) => levels.push(l) },
    disk,
  });
  const drv = new GuestDriver(dev, ram);
  return { ram, dev, drv, disk, levels, line: () => levels.at(-1) ?? false };
}

/** Submits one request and returns its used entry and status byte. */
function request(drv: GuestDriver, buffers: Buffer[], opts: { indirect?: boolean } = {}) {
  const { head, addrs } = drv.submit(0, buffers, opts);
  drv.notify(0);
  const used = drv.takeUsed(0);
  const last = buffers.at(-1);
  const lastLength = last !== undefined && "writable" in last ? last.writable : 1;
  const statusAddr = (addrs.at(-1) ?? 0n) + BigInt(lastLength - 1);
  return { head, addrs, used, status: drv.ram.view(statusAddr, 1)[0] };
}

describe("VirtioBlk", () => {
  it("identifies as virtio-mmio v2 block device with its capacity, SEG_MAX, SIZE_MAX, FLUSH", () => {
    const { drv } = setup({ sectors: 40 });
    assert.equal(drv.r32(0x000), VIRTIO_MMIO_MAGIC);
    assert.equal(drv.r32(0x004), 2);
    assert.equal(drv.r32(0x008), 2);
    const f = drv.features();
    for (const bit of [
      VIRTIO_F.VERSION_1,
      VIRTIO_F.RING_INDIRECT_DESC,
      VIRTIO_BLK_F.FLUSH,
      VIRTIO_BLK_F.SEG_MAX,
      VIRTIO_BLK_F.SIZE_MAX,
    ])
      assert.equal((f >> bit) & 1n, 1n, `feature ${bit}`);
    assert.equal((f >> VIRTIO_BLK_F.RO) & 1n, 0n);
    const cap = new Uint8Array(8);
    drv.dev.mmioRead(0x100, cap);
    assert.equal(new DataView(cap.buffer).getBigUint64(0, true), 40n);
    assert.equal(drv.r32(0x10c), 126, "seg_max");
    const b = new Uint8Array(1);
    drv.dev.mmioRead(0x100, b);
    assert.equal(b[0], 40, "byte access to config space");
    drv.w32(0x30, 0);
    assert.equal(drv.r32(0x34), 128);
    drv.w32(0x30, 1);
    assert.equal(drv.r32(0x34), 0, "no queue 1");
  });

  it("writes, flushes (the file has the data) and reads back, with used lengths and the interrupt", () => {
    const { drv, disk, line } = setup();
    drv.init([16]);
    const data = new Uint8Array(1024).map((_, i) => (i * 7) & 0xff);
    const w = request(drv, [{ data: header(VIRTIO_BLK_T.OUT, 3n) }, { data }, { writable: 1 }]);
    assert.deepEqual(w.used, [{ id: w.head, len: 1 }]);
    assert.equal(w.status, VIRTIO_BLK_S.OK);
    assert.equal(line(), true);
    assert.equal(drv.ack(), 1);
    assert.equal(line(), false);
    const f = request(drv, [{ data: header(VIRTIO_BLK_T.FLUSH, 0n) }, { writable: 1 }]);
    assert.equal(f.status, VIRTIO_BLK_S.OK);
    const file = readFileSync((disk as unknown as { path: string }).path);
    assert.deepEqual(file.subarray(3 * 512, 5 * 512), Buffer.from(data));
    assert.equal(file[2 * 512 + 511], 2);
    assert.equal(file[5 * 512], 5);
    const r = request(drv, [
      { data: header(VIRTIO_BLK_T.IN, 2n) },
      { writable: 1536 },
      { writable: 1 },
    ]);
    assert.deepEqual(r.used, [{ id: r.head, len: 1537 }]);
    assert.equal(r.status, VIRTIO_BLK_S.OK);
    const got = drv.ram.view(r.addrs[1] ?? 0n, 1536);
    assert.equal(got[0], 2);
    assert.deepEqual(got.subarray(512), data);
    assert.ok(
      drv.ram.writes.some((x) => x.gpa === r.addrs[1] && x.length === 1536),
      "wrote() after DMA",
    );
  });

  it("reads through indirect descriptors and with data and status in one buffer", () => {
    const { drv } = setup();
    drv.init([8]);
    const r = request(
      drv,
      [{ data: header(VIRTIO_BLK_T.IN, 9n) }, { writable: 512 }, { writable: 1 }],
      { indirect: true },
    );
    assert.equal(r.status, VIRTIO_BLK_S.OK);
    assert.equal(drv.ram.view(r.addrs[1] ?? 0n, 512)[100], 9);
    const s = request(drv, [{ data: header(VIRTIO_BLK_T.IN, 10n) }, { writable: 513 }]);
    assert.equal(s.status, VIRTIO_BLK_S.OK);
    assert.equal(drv.ram.view(s.addrs[1] ?? 0n, 512)[511], 10);
    assert.deepEqual(s.used, [{ id: s.head, len: 513 }]);
  });

  it("answers GET_ID, UNSUPP for unknown types, IOERR for bad ranges and lengths", () => {
    const { drv } = setup({ sectors: 16 });
    drv.init([16]);
    const id = request(drv, [
      { data: header(VIRTIO_BLK_T.GET_ID, 0n) },
      { writable: 20 },
      { writable: 1 },
    ]);
    assert.equal(id.status, VIRTIO_BLK_S.OK);
    assert.equal(new TextDecoder().decode(drv.ram.view(id.addrs[1] ?? 0n, 11)), "virtio-blk0");
    assert.equal(
      request(drv, [{ data: header(11, 0n) }, { writable: 1 }]).status,
      VIRTIO_BLK_S.UNSUPP,
    );
    for (const [sector, n] of [
      [15n, 1024],
      [16n, 512],
      [0xffffffffffffffffn, 512],
      [0n, 100],
    ] as const) {
      const r = request(drv, [
        { data: header(VIRTIO_BLK_T.IN, sector) },
        { writable: n },
        { writable: 1 },
      ]);
      assert.equal(r.status, VIRTIO_BLK_S.IOERR, `IN ${n} bytes at sector ${sector}`);
      assert.equal(r.used[0]?.len, 1);
    }
    assert.equal(
      request(drv, [{ data: header(VIRTIO_BLK_T.IN, 15n) }, { writable: 512 }, { writable: 1 }])
        .status,
      VIRTIO_BLK_S.OK,
    );
    assert.equal(
      request(drv, [{ data: new Uint8Array(8) }, { writable: 1 }]).status,
      VIRTIO_BLK_S.IOERR,
      "short header",
    );
  });

  it("a read-only disk offers RO, fails writes with IOERR and leaves the file unchanged", () => {
    const { drv, disk } = setup({ readOnly: true });
    const path = (disk as unknown as { path: string }).path;
    const before = readFileSync(path);
    assert.equal((drv.features() >> VIRTIO_BLK_F.RO) & 1n, 1n);
    drv.init([16]);
    const w = request(drv, [
      { data: header(VIRTIO_BLK_T.OUT, 0n) },
      { data: new Uint8Array(512).fill(0xee) },
      { writable: 1 },
    ]);
    assert.equal(w.status, VIRTIO_BLK_S.IOERR);
    assert.equal(
      request(drv, [{ data: header(VIRTIO_BLK_T.FLUSH, 0n) }, { writable: 1 }]).status,
      VIRTIO_BLK_S.OK,
    );
    assert.deepEqual(readFileSync(path), before);
    assert.throws(() => {
      disk.write(0, new Uint8Array(1));
    }, DiskError);
  });

  it("honours VIRTQ_AVAIL_F_NO_INTERRUPT without EVENT_IDX", () => {
    const { drv, line } = setup();
    drv.init([16], drv.features() & ~(1n << VIRTIO_F.RING_EVENT_IDX));
    drv.suppress(0, true);
    const r = request(drv, [
      { data: header(VIRTIO_BLK_T.IN, 0n) },
      { writable: 512 },
      { writable: 1 },
    ]);
    assert.equal(r.used.length, 1);
    assert.equal(line(), false);
    assert.equal(drv.r32(0x60), 0);
    drv.suppress(0, false);
    request(drv, [{ data: header(VIRTIO_BLK_T.IN, 0n) }, { writable: 512 }, { writable: 1 }]);
    assert.equal(line(), true);
  });

  it("with EVENT_IDX interrupts only when the used index passes used_event and publishes avail_event", () => {
    const { drv, line } = setup();
    drv.init([16]);
    const read = (): Buffer[] => [
      { data: header(VIRTIO_BLK_T.IN, 0n) },
      { writable: 512 },
      { writable: 1 },
    ];
    drv.submit(0, read());
    drv.notify(0);
    assert.equal(line(), true, "used_event 0: the first buffer interrupts");
    drv.ack();
    assert.equal(drv.takeUsed(0).length, 1);
    assert.equal(drv.availEvent(0), 1, "avail_event: notify me for entry 1");
    drv.usedEvent(0, 3); // interrupt once entry 3 is used
    for (const expected of [false, false, true]) {
      drv.submit(0, read());
      drv.notify(0);
      assert.equal(line(), expected);
    }
    drv.ack();
    assert.equal(drv.takeUsed(0).length, 3);
    assert.equal(drv.availEvent(0), 4);
    // The flag is ignored once EVENT_IDX is negotiated (§2.7.10).
    drv.suppress(0, true);
    drv.submit(0, read());
    drv.notify(0);
    assert.equal(line(), true);
  });

  it("refuses FEATURES_OK without VERSION_1 or with features it did not offer", () => {
    const { drv } = setup();
    const offered = drv.features();
    assert.equal(drv.negotiate(offered & ~(1n << VIRTIO_F.VERSION_1)), false);
    assert.equal(drv.negotiate(offered | (1n << 12n)), false, "VIRTIO_BLK_F_MQ was not offered");
    assert.equal(drv.negotiate(1n << VIRTIO_F.VERSION_1), true);
  });

  it("openRawDisk() refuses a missing file and a directory with one-line errors", () => {
    assert.throws(
      () => openRawDisk(join(dir, "nope.img"), { readOnly: false }),
      (e: unknown) =>
        e instanceof DiskError && e.code === "DISK_OPEN" && /nope\.img.*ENOENT/.test(e.message),
    );
    const sub = join(dir, "adir");
    mkdirSync(sub);
    assert.throws(() => openRawDisk(sub, { readOnly: true }), /not a regular file or block device/);
  });

  describe("hostile drivers get DEVICE_NEEDS_RESET, never a host error", () => {
    /** A device with queue 0 ready and one valid descriptor chain's worth of RAM. */
    function hostile(build: (drv: GuestDriver) => void, queueSize = 8) {
      const s = setup();
      s.drv.init([queueSize]);
      build(s.drv);
      s.drv.notify(0);
      return s;
    }
    const q = (drv: GuestDriver) => drv.queues[0] ?? assert.fail("no queue");
    const out = new Uint8Array(512);
    const cases: [string, (drv: GuestDriver) => void][] = [
      [
        "a descriptor loop",
        (drv) => {
          drv.writeDesc(q(drv).desc, 0, RAM_BASE + 0x100n, 16, 1, 1);
          drv.writeDesc(q(drv).desc, 1, RAM_BASE + 0x100n, 16, 1, 0);
          drv.publish(0, 0);
        },
      ],
      [
        "a head outside the queue",
        (drv) => {
          drv.publish(0, 8);
        },
      ],
      [
        "a next index outside the queue",
        (drv) => {
          drv.writeDesc(q(drv).desc, 0, RAM_BASE + 0x100n, 16, 1, 200);
          drv.publish(0, 0);
        },
      ],
      [
        "a buffer outside guest RAM",
        (drv) => {
          drv.writeDesc(q(drv).desc, 0, RAM_BASE + 0xfff00n, 0x200, 0, 0);
          drv.publish(0, 0);
        },
      ],
      [
        "a buffer wrapping the address space",
        (drv) => {
          drv.writeDesc(q(drv).desc, 0, 0xfffffffffffffff0n, 0x20, 0, 0);
          drv.publish(0, 0);
        },
      ],
      [
        "avail.idx far ahead",
        (drv) => {
          drv.ram.dv(q(drv).avail, 4).setUint16(2, 100, true);
        },
      ],
      [
        "a readable buffer after a writable one",
        (drv) => {
          drv.writeDesc(q(drv).desc, 0, RAM_BASE + 0x100n, 1, 3, 1);
          drv.writeDesc(q(drv).desc, 1, RAM_BASE + 0x200n, 16, 0, 0);
          drv.publish(0, 0);
        },
      ],
      [
        "a chain without a writable status byte",
        (drv) => {
          drv.submit(0, [{ data: header(VIRTIO_BLK_T.OUT, 0n) }, { data: out }]);
        },
      ],
      [
        "nested indirect tables",
        (drv) => {
          const t = drv.ram.alloc(32);
          drv.writeDesc(t, 0, t, 32, 4, 0);
          drv.writeDesc(q(drv).desc, 0, t, 32, 4, 0);
          drv.publish(0, 0);
        },
      ],
      [
        "an indirect table of 17 bytes",
        (drv) => {
          drv.writeDesc(q(drv).desc, 0, RAM_BASE + 0x100n, 17, 4, 0);
          drv.publish(0, 0);
        },
      ],
      [
        "an indirect descriptor with NEXT",
        (drv) => {
          drv.writeDesc(q(drv).desc, 0, RAM_BASE + 0x100n, 16, 5, 1);
          drv.publish(0, 0);
        },
      ],
      [
        "a loop inside an indirect table",
        (drv) => {
          const t = drv.ram.alloc(32);
          drv.writeDesc(t, 0, RAM_BASE + 0x100n, 16, 1, 1);
          drv.writeDesc(t, 1, RAM_BASE + 0x100n, 16, 1, 0);
          drv.writeDesc(q(drv).desc, 0, t, 32, 4, 0);
          drv.publish(0, 0);
        },
      ],
    ];
    for (const [what, build] of cases) {
      it(what, () => {
        const { drv, line, dev } = hostile(build);
        assert.equal(
          drv.r32(0x70) & VIRTIO_STATUS.DEVICE_NEEDS_RESET,
          VIRTIO_STATUS.DEVICE_NEEDS_RESET,
        );
        assert.equal(drv.r32(0x60) & 2, 2, "configuration change interrupt");
        assert.equal(line(), true);
        assert.notEqual(dev.needsResetReason, "");
        // Stuck until reset; a reset and a fresh init work again.
        drv.notify(0);
        drv.w32(0x70, 0);
        assert.equal(drv.r32(0x70), 0);
        assert.equal(line(), false);
        drv.init([8]);
        const r = request(drv, [
          { data: header(VIRTIO_BLK_T.IN, 1n) },
          { writable: 512 },
          { writable: 1 },
        ]);
        assert.equal(r.status, VIRTIO_BLK_S.OK);
      });
    }

    it("a queue layout outside RAM, misaligned or of a bad size at QueueReady", () => {
      for (const [size, desc] of [
        [8, RAM_BASE + 0x100000n],
        [8, RAM_BASE + 8n],
        [6, RAM_BASE],
        [256, RAM_BASE],
        [0, RAM_BASE],
      ] as const) {
        const { drv } = setup();
        drv.negotiate();
        drv.w32(0x30, 0);
        drv.w32(0x38, size);
        drv.w32(0x80, Number(desc & 0xffffffffn));
        drv.w32(0x84, Number(desc >> 32n));
        drv.w32(0x90, Number(RAM_BASE & 0xffffffffn));
        drv.w32(0x94, Number(RAM_BASE >> 32n));
        drv.w32(0xa0, Number(RAM_BASE & 0xffffffffn));
        drv.w32(0xa4, Number(RAM_BASE >> 32n));
        drv.w32(0x44, 1);
        assert.equal(drv.r32(0x44), 0, `size ${size} desc ${desc.toString(16)}`);
        assert.ok(drv.r32(0x70) & VIRTIO_STATUS.DEVICE_NEEDS_RESET);
      }
    });
  });

  it("save()/restore() mid-traffic: indices, interrupt state and negotiated features carry over", () => {
    const a = setup();
    a.drv.init([8]);
    for (let i = 0; i < 5; i++)
      request(a.drv, [
        { data: header(VIRTIO_BLK_T.IN, BigInt(i)) },
        { writable: 512 },
        { writable: 1 },
      ]);
    // One request made available but not yet notified when the snapshot is taken.
    const pending = a.drv.submit(0, [
      { data: header(VIRTIO_BLK_T.IN, 7n) },
      { writable: 512 },
      { writable: 1 },
    ]);
    const state = a.dev.save();
    // The new device sees the same guest RAM (as after the machine restored memory).
    const b = setup({ disk: a.disk });
    b.ram.bytes.set(a.ram.bytes);
    b.dev.restore(state);
    assert.deepEqual(b.dev.save(), state);
    assert.equal(b.line(), true, "InterruptStatus was still set");
    Object.assign(
      b.drv.queues,
      a.drv.queues.map((q) => ({ ...q })),
    );
    b.drv.notify(0);
    const used = b.drv.takeUsed(0);
    assert.deepEqual(used, [{ id: pending.head, len: 513 }]);
    assert.equal(b.ram.view(pending.addrs[1] ?? 0n, 1)[0], 7);
    const r = request(b.drv, [
      { data: header(VIRTIO_BLK_T.IN, 3n) },
      { writable: 512 },
      { writable: 1 },
    ]);
    assert.equal(r.status, VIRTIO_BLK_S.OK);
    assert.equal(b.ram.dv(b.drv.queues[0]?.used ?? 0n, 4).getUint16(2, true), 7);
  });

  it("restore() refuses malformed states and another disk's state, and changes nothing", () => {
    const a = setup({ sectors: 64 });
    a.drv.init([8]);
    const good = a.dev.save();
    const b = setup({ sectors: 32 });
    const c = setup({ sectors: 64 });
    c.ram.bytes.set(a.ram.bytes);
    const before = c.dev.save();
    assert.throws(() => {
      b.dev.restore(good);
    }, /64 sectors, this disk has 32/);
    const bad = [
      { version: 2, bytes: good.bytes },
      ...Array.from({ length: good.bytes.length }, (_, n) => ({
        version: 1,
        bytes: good.bytes.subarray(0, n),
      })),
    ];
    for (const s of bad) {
      assert.throws(() => {
        c.dev.restore(s);
      }, DeviceStateError);
      assert.deepEqual(c.dev.save(), before);
    }
    // A ready queue whose rings are not in this machine's RAM.
    const small = new VirtioBlk({
      name: "virtio-blk0",
      mem: new FakeRam(0x1000),
      irq: { set: () => undefined },
      disk: a.disk,
    });
    assert.throws(() => {
      small.restore(good);
    }, /queue 0: .*outside guest RAM/);
  });
});
