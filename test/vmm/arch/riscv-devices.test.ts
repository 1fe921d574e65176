/**
 * The RISC-V machine's devices with `--virtio-console` (src/vmm/arch/riscv/devices.ts): where
 * the console sits (after the disks, on the bus and in the device tree), its output through the
 * machine's sink with backpressure, stdin going to it ahead of the UART, and a save → restore
 * round trip of every device of the set mid-traffic. The vCPU is a real soft one (its external
 * interrupt line is what the PLIC drives); the driver is test/vmm/devices/virtio/driver.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createSoftVm } from "../../../src/backends/soft/index.js";
import { riscvDevices, type RiscvDevices } from "../../../src/vmm/arch/riscv/devices.js";
import {
  VIRTIO_MMIO_FIRST_IRQ,
  riscvSocNode,
  virtioMmioBase,
} from "../../../src/vmm/arch/riscv/devicetree.js";
import type { MmioDevice } from "../../../src/vmm/devices/types.js";
import type { BlockBackend } from "../../../src/vmm/devices/virtio/disk.js";
import type { MachineIo } from "../../../src/vmm/machine/types.js";
import { FakeRam, GuestDriver } from "../devices/virtio/driver.js";

const RX = 0;
const TX = 1;
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A 64 KiB disk in memory: enough for a virtio-blk device to exist before the console. */
function memoryDisk(): BlockBackend {
  const bytes = new Uint8Array(65536);
  return {
    size: bytes.length,
    readOnly: false,
    read: (offset, into) => {
      into.set(bytes.subarray(offset, offset + into.length));
    },
    write: (offset, from) => {
      bytes.set(from, offset);
    },
    flush: () => undefined,
    close: () => undefined,
  };
}

interface Rig {
  readonly devices: RiscvDevices;
  readonly ram: FakeRam;
  readonly out: () => string;
  stdin: number[];
  /** Whether the sink takes output; `drain()` reopens it and wakes the waiters. */
  open: boolean;
  drain: () => Promise<void>;
  /** The console's driver, speaking MMIO through the machine's bus. */
  readonly driver: GuestDriver;
  readonly close: () => void;
}

function rig(ram = new FakeRam()): Rig {
  const vm = createSoftVm({ mode: "inline" });
  const vcpu = vm.createVcpu();
  const bytes: number[] = [];
  let wake: (() => void)[] = [];
  const io: MachineIo = {
    console: {
      write(b) {
        bytes.push(...b);
        return r.open;
      },
      drained: () => (r.open ? Promise.resolve() : new Promise((res) => wake.push(res))),
      onClosed: () => undefined,
    },
    input: { read: (max) => Uint8Array.from(r.stdin.splice(0, max)) },
    unclaimed: () => undefined,
  };
  const devices = riscvDevices([vcpu], io, {
    dma: ram,
    disks: [memoryDisk()],
    virtioConsole: true,
  });
  const base = virtioMmioBase(1);
  const port: MmioDevice = {
    mmioRead: (offset, data) => {
      assert.ok(devices.bus.read(base + BigInt(offset), data));
    },
    mmioWrite: (offset, data) => {
      assert.ok(devices.bus.write(base + BigInt(offset), data));
    },
  };
  const r: Rig = {
    devices,
    ram,
    out: () => String.fromCharCode(...bytes),
    stdin: [],
    open: true,
    drain: async () => {
      r.open = true;
      const waiters = wake;
      wake = [];
      for (const w of waiters) w();
      await new Promise((res) => setImmediate(res));
    },
    driver: new GuestDriver(port, ram),
    close: () => {
      vm.close();
    },
  };
  return r;
}

/** PLIC pending bit of `source` (pending words at 0x0c001000, riscv,plic0). */
function pending(devices: RiscvDevices, source: number): boolean {
  const word = new Uint8Array(4);
  assert.ok(devices.bus.read(0x0c00_1000n + BigInt(4 * (source >> 5)), word));
  const bits = new DataView(word.buffer).getUint32(0, true);
  return ((bits >>> (source & 31)) & 1) === 1;
}

describe("RISC-V machine with --virtio-console", () => {
  it("puts the console on the transport after the disks, on the bus and in the device tree", () => {
    const r = rig();
    try {
      const names = r.devices.bus.list().map((e) => [e.name, e.base] as const);
      assert.deepEqual(names.slice(-2), [
        ["virtio-blk0", virtioMmioBase(0)],
        ["virtio-console0", virtioMmioBase(1)],
      ]);
      assert.equal(r.driver.r32(0x008), 3, "device ID 3: console");
      assert.deepEqual(
        r.devices.all.map((d) => d.name),
        ["plic", "uart0", "virtio-blk0", "virtio-console0"],
      );
      const soc = riscvSocNode({ hartCount: 1, uart: true, virtio: 2 });
      const node = soc.children.find((c) => c.name === `virtio_mmio@${(0x10002000).toString(16)}`);
      assert.ok(node, "a virtio_mmio node at 0x10002000");
      const irq = node.properties.find((p) => p.name === "interrupts")?.value;
      assert.ok(irq !== undefined);
      assert.equal(
        new DataView(irq.buffer, irq.byteOffset).getUint32(0),
        VIRTIO_MMIO_FIRST_IRQ + 1,
      );
    } finally {
      r.close();
    }
  });

  it("sends output through the sink with backpressure and interrupts on PLIC source 2", async () => {
    const r = rig();
    try {
      r.driver.init([8, 8]);
      r.open = false;
      const a = r.driver.submit(TX, [{ data: text("hello ") }]);
      r.driver.notify(TX);
      const b = r.driver.submit(TX, [{ data: text("world\n") }]);
      r.driver.notify(TX);
      assert.equal(r.out(), "hello ", "the sink took one write and reported full");
      assert.deepEqual(r.driver.takeUsed(TX), [{ id: a.head, len: 0 }]);
      await r.drain();
      assert.equal(r.out(), "hello world\n");
      assert.deepEqual(r.driver.takeUsed(TX), [{ id: b.head, len: 0 }]);
      assert.equal(pending(r.devices, VIRTIO_MMIO_FIRST_IRQ + 1), true);
    } finally {
      r.close();
    }
  });

  it("gives stdin to the console's receive buffers, not the UART, holding what does not fit", () => {
    const r = rig();
    try {
      r.driver.init([8, 8]);
      r.stdin = [...text("abcdefgh")];
      r.devices.pollInput();
      assert.equal(r.stdin.length, 0, "read one chunk");
      const small = r.driver.submit(RX, [{ writable: 3 }]);
      r.driver.notify(RX); // rxSpace: the held bytes go in
      assert.deepEqual(r.driver.takeUsed(RX), [{ id: small.head, len: 3 }]);
      assert.equal(new TextDecoder().decode(r.ram.view(small.addrs[0] ?? 0n, 3)), "abc");
      const big = r.driver.submit(RX, [{ writable: 16 }]);
      r.driver.notify(RX);
      assert.deepEqual(r.driver.takeUsed(RX), [{ id: big.head, len: 5 }]);
      assert.equal(r.devices.uart.rxRoom(), 1, "the UART received nothing");
    } finally {
      r.close();
    }
  });

  it("save() → restore() of every device mid-traffic: same state, output resumes, input flows", () => {
    const a = rig();
    const ram = new FakeRam();
    const b = rig(ram);
    try {
      a.driver.init([8, 8]);
      a.open = false;
      a.driver.submit(TX, [{ data: text("one ") }]);
      a.driver.notify(TX);
      const held = a.driver.submit(TX, [{ data: text("two") }]);
      a.driver.notify(TX);
      const saved = a.devices.all.map((d) => ({ name: d.name, state: d.save() }));
      ram.bytes.set(a.ram.bytes);
      for (const { name, state } of saved) {
        const device = b.devices.all.find((d) => d.name === name);
        assert.ok(device !== undefined, name);
        device.restore(state);
      }
      assert.deepEqual(
        b.devices.all.map((d) => ({ name: d.name, state: d.save() })),
        saved,
      );
      Object.assign(
        b.driver.queues,
        a.driver.queues.map((q) => ({ ...q })),
      );
      b.devices.console?.drain();
      assert.equal(b.out(), "two", "the held transmit buffer goes out on the new machine");
      assert.deepEqual(b.driver.takeUsed(TX).slice(-1), [{ id: held.head, len: 0 }]);
      b.stdin = [...text("in")];
      const rx = b.driver.submit(RX, [{ writable: 4 }]);
      b.driver.notify(RX);
      assert.deepEqual(b.driver.takeUsed(RX), [{ id: rx.head, len: 2 }]);
    } finally {
      a.close();
      b.close();
    }
  });
});
