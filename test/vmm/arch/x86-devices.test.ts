/**
 * The x86 machine's port devices (src/vmm/arch/x86/devices.ts): COM1 as the shared 16550A model
 * on the port bus with IRQ 4, the 0xe9 debug console, the 0xf4 exit port, byte splitting, stdin
 * and output backpressure, and the whole set's save()/restore(). Ported from the tests of the
 * retired polled console (src/vmm/console.ts) with the same assertions where the model agrees.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { X86_PORTS, x86Devices, type X86Devices } from "../../../src/vmm/arch/x86/devices.js";
import { DeviceStateError } from "../../../src/vmm/devices/state.js";
import { UART_FIFO_SIZE, UART_IIR, UART_LSR } from "../../../src/vmm/devices/uart16550.js";
import {
  OnceLog,
  combineDevices,
  serviceIoExit,
  type IoExit,
  type PortDevice,
} from "../../../src/vmm/io.js";
import type { MachineIo } from "../../../src/vmm/machine/types.js";

interface Rig {
  readonly dev: PortDevice;
  readonly devices: X86Devices;
  readonly out: () => string;
  /** Levels driven on IRQ 4, in order. */
  readonly levels: boolean[];
  /** Bytes waiting on "stdin"; `null` after EOF. */
  stdin: number[] | null;
  /** Whether the console sink takes output (false: full until `drain()`). */
  open: boolean;
  drain: () => void;
}

/** The x86 devices over a console that collects text and a scripted stdin. */
function console0(): Rig {
  const bytes: number[] = [];
  const levels: boolean[] = [];
  let wake: (() => void) | undefined;
  const rig: Rig = {
    dev: undefined as unknown as PortDevice, // set below, before any use
    devices: undefined as unknown as X86Devices,
    out: () => String.fromCharCode(...bytes),
    levels,
    stdin: [],
    open: true,
    drain: () => {
      rig.open = true;
      wake?.();
    },
  };
  const io: MachineIo = {
    console: {
      write(b) {
        bytes.push(...b);
        return rig.open;
      },
      drained: () => (rig.open ? Promise.resolve() : new Promise((r) => (wake = r))),
      onClosed: () => undefined,
    },
    input: {
      read(max) {
        if (rig.stdin === null) return null;
        return Uint8Array.from(rig.stdin.splice(0, max));
      },
    },
    unclaimed: () => undefined,
  };
  const devices = x86Devices(io, { set: (l) => levels.push(l) });
  return Object.assign(rig, { devices, dev: devices.ports });
}

const COM1 = X86_PORTS.com1;
const LSR = { THRE: UART_LSR.THRE, TEMT: UART_LSR.TEMT };

function ioExit(
  direction: "in" | "out",
  port: number,
  size: number,
  data: number[] | number,
): IoExit {
  const bytes = typeof data === "number" ? new Uint8Array(data) : Uint8Array.from(data);
  return { kind: "io", direction, port, size, count: bytes.length / size, data: bytes };
}

describe("16550 UART at COM1", () => {
  it("a byte written to THR is output; LSR reads THRE|TEMT (0x60)", () => {
    const { dev, out } = console0();
    for (const c of "hi\n") dev.ioOut(COM1, 1, c.charCodeAt(0));
    assert.equal(out(), "hi\n");
    assert.equal(dev.ioIn(COM1 + 5, 1), 0x60);
    assert.equal(LSR.THRE | LSR.TEMT, 0x60);
  });

  it("received bytes set LSR.DR and are read from RBR in order", () => {
    const rig = console0();
    const { dev } = rig;
    assert.equal(dev.ioIn(COM1, 1), 0, "RBR of an empty FIFO");
    rig.stdin = [0x61, 0x62];
    assert.equal(dev.ioIn(COM1 + 5, 1), 0x61);
    assert.equal(dev.ioIn(COM1, 1), 0x61);
    assert.equal(dev.ioIn(COM1, 1), 0x62);
    assert.equal(dev.ioIn(COM1 + 5, 1), 0x60);
  });

  it("DLAB switches offsets 0 and 1 to the divisor latch; LCR, MCR, SCR read back", () => {
    const { dev, out } = console0();
    dev.ioOut(COM1 + 3, 1, 0x83); // DLAB | 8N1
    dev.ioOut(COM1, 1, 0x01);
    dev.ioOut(COM1 + 1, 1, 0x00);
    assert.equal(out(), "", "divisor writes are not output");
    assert.equal(dev.ioIn(COM1, 1), 0x01);
    dev.ioOut(COM1 + 3, 1, 0x03);
    assert.equal(dev.ioIn(COM1 + 3, 1), 0x03);
    dev.ioOut(COM1 + 1, 1, 0xff);
    assert.equal(dev.ioIn(COM1 + 1, 1), 0x0f, "IER keeps its four defined bits");
    dev.ioOut(COM1 + 7, 1, 0x5a);
    assert.equal(dev.ioIn(COM1 + 7, 1), 0x5a);
    dev.ioOut(COM1 + 4, 1, 0xff);
    assert.equal(dev.ioIn(COM1 + 4, 1), 0x1f);
  });

  it("IIR reports no interrupt, with FIFO bits once FCR enables the FIFO; FCR can clear input", () => {
    const rig = console0();
    const { dev } = rig;
    assert.equal(dev.ioIn(COM1 + 2, 1), 0x01);
    rig.stdin = [1];
    assert.equal(dev.ioIn(COM1 + 5, 1), 0x61, "stdin pulled into the receive buffer");
    dev.ioOut(COM1 + 2, 1, 0x07);
    assert.equal(dev.ioIn(COM1 + 2, 1), 0xc1);
    assert.equal(dev.ioIn(COM1 + 5, 1), 0x60, "input cleared");
  });

  it("passes Linux's loopback probe: MCR 0x1a reads back MSR 0x90 in the top nibble, THR echoes", () => {
    const { dev, out } = console0();
    assert.equal(dev.ioIn(COM1 + 6, 1), 0xb0, "DCD|DSR|CTS outside loopback");
    dev.ioOut(COM1 + 4, 1, 0x1a);
    assert.equal((dev.ioIn(COM1 + 6, 1) ?? 0) & 0xf0, 0x90);
    dev.ioOut(COM1 + 4, 1, 0x1f);
    // 0xf0 and DDSR (bit 1): DSR followed DTR (PC16550D MSR; the retired model had no deltas).
    assert.equal(dev.ioIn(COM1 + 6, 1), 0xf2);
    dev.ioOut(COM1, 1, 0x55);
    assert.equal(out(), "", "loopback bytes are not output");
    assert.equal(dev.ioIn(COM1 + 5, 1), 0x61);
    assert.equal(dev.ioIn(COM1, 1), 0x55);
  });

  it("bounds queued input: the FIFO takes what fits, the rest waits on stdin, nothing is lost", () => {
    const rig = console0();
    const { dev } = rig;
    rig.stdin = Array.from({ length: UART_FIFO_SIZE + 10 }, (_, i) => i);
    dev.ioOut(COM1 + 2, 1, 0x01); // FIFOs on
    assert.equal((dev.ioIn(COM1 + 5, 1) ?? 0) & UART_LSR.DR, UART_LSR.DR);
    assert.equal(rig.stdin.length, 10, "only 16 bytes moved into the FIFO");
    const got: number[] = [];
    while (((dev.ioIn(COM1 + 5, 1) ?? 0) & UART_LSR.DR) !== 0) got.push(dev.ioIn(COM1, 1) ?? -1);
    assert.deepEqual(
      got,
      Array.from({ length: UART_FIFO_SIZE + 10 }, (_, i) => i),
    );
    assert.equal((dev.ioIn(COM1 + 5, 1) ?? 0) & UART_LSR.OE, 0, "no overrun");
  });
});

describe("x86 debug and exit ports", () => {
  it("0xe9 outputs bytes and reads back 0xe9", () => {
    const { dev, out } = console0();
    dev.ioOut(0xe9, 1, 0x4f);
    dev.ioOut(0xe9, 1, 0x4b);
    assert.equal(out(), "OK");
    assert.equal(dev.ioIn(0xe9, 1), 0xe9);
  });

  it("0xf4 ends the run with the value written, at any width", () => {
    const { dev } = console0();
    assert.deepEqual(dev.ioOut(0xf4, 1, 0x2a), { kind: "exit", status: 0x2a });
    assert.deepEqual(dev.ioOut(0xf4, 2, 0x1_0203), { kind: "exit", status: 0x0203 });
    assert.deepEqual(dev.ioOut(0xf4, 4, 0xffff_ffff), { kind: "exit", status: 0xffff_ffff });
    assert.equal(dev.ioIn(0xf4, 1), undefined);
  });

  it("other ports are not claimed", () => {
    const { dev } = console0();
    assert.equal(dev.ioIn(0x60, 1), undefined);
    assert.equal(dev.ioIn(COM1 + 8, 1), undefined);
    assert.deepEqual(dev.ioOut(0x80, 1, 0), { kind: "unhandled" });
    assert.deepEqual(dev.ioOut(0x2f8, 1, 0x41), { kind: "unhandled" }, "COM2 is not modelled");
  });

  it("wider accesses are split into byte accesses at consecutive ports", () => {
    const { dev, out } = console0();
    dev.ioOut(0xe9, 2, 0x4241); // 'A' to 0xe9, 'B' to 0xea (unclaimed)
    assert.equal(out(), "A");
    assert.equal(dev.ioIn(COM1 + 4, 2), 0x6000, "MCR then LSR");
    assert.equal(dev.ioIn(COM1 + 7, 2), 0xff00, "SCR then an empty bus");
  });
});

describe("COM1's interrupt and host side", () => {
  it("drives IRQ 4 for THRE and received data, and lowers it when the guest clears the cause", () => {
    const rig = console0();
    const { dev, levels } = rig;
    dev.ioOut(COM1 + 1, 1, 0x02); // IER.ETBEI with THR empty: THRE interrupt
    assert.equal(levels.at(-1), true);
    assert.equal(dev.ioIn(COM1 + 2, 1), UART_IIR.THRE);
    assert.equal(levels.at(-1), false, "reading IIR clears THRE");
    dev.ioOut(COM1 + 1, 1, 0x01); // IER.ERBFI
    rig.stdin = [0x41];
    rig.devices.pollInput();
    assert.equal(levels.at(-1), true, "stdin arrived: RDA");
    assert.equal(dev.ioIn(COM1 + 2, 1), UART_IIR.RDA);
    assert.equal(dev.ioIn(COM1, 1), 0x41);
    assert.equal(levels.at(-1), false);
  });

  it("a full console makes the exit congested and keeps LSR.THRE clear until it drains", async () => {
    const rig = console0();
    const { dev, devices } = rig;
    rig.open = false;
    dev.ioOut(COM1, 1, 0x61);
    assert.equal(devices.takeCongested(), true);
    assert.equal(devices.takeCongested(), false, "reading clears it");
    dev.ioOut(COM1, 1, 0x62);
    assert.equal(rig.out(), "a", "the host holds the byte it took; the next waits in the FIFO");
    assert.equal((dev.ioIn(COM1 + 5, 1) ?? 0) & UART_LSR.THRE, 0);
    assert.equal(devices.uart.txPending(), 1);
    rig.drain();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(rig.out(), "ab");
    assert.equal(dev.ioIn(COM1 + 5, 1), 0x60);
    rig.open = false;
    dev.ioOut(0xe9, 1, 0x63);
    assert.equal(devices.takeCongested(), true, "the debug console reports a full host too");
  });
});

describe("x86 devices save() and restore()", () => {
  /** A COM1 in a state with every part set: divisor, LCR, FIFOs both ways, pending causes. */
  function busy(): Rig {
    const rig = console0();
    const { dev } = rig;
    dev.ioOut(COM1 + 3, 1, 0x83);
    dev.ioOut(COM1, 1, 0x0c);
    dev.ioOut(COM1 + 1, 1, 0x00);
    dev.ioOut(COM1 + 3, 1, 0x1b); // 8 bits, 2 stop, even parity: LCR carries it
    dev.ioOut(COM1 + 2, 1, 0x81); // FIFOs on, RX trigger 8
    dev.ioOut(COM1 + 4, 1, 0x0b);
    dev.ioOut(COM1 + 7, 1, 0x5a);
    rig.stdin = [1, 2, 3];
    rig.devices.pollInput();
    rig.open = false;
    dev.ioOut(COM1, 1, 0x61); // the host holds it
    dev.ioOut(COM1, 1, 0x62); // waits in the TX FIFO
    dev.ioOut(COM1, 1, 0x63);
    dev.ioOut(COM1 + 1, 1, 0x0f);
    return rig;
  }

  it("round-trips COM1 and the debug console: same bytes, same registers, same IRQ level", () => {
    const a = busy();
    const saved = a.devices.all.map((d) => ({ name: d.name, state: d.save() }));
    assert.deepEqual(
      saved.map((s) => s.name),
      ["uart0", "debugcon"],
    );
    const b = console0();
    b.open = false;
    for (const { name, state } of saved) {
      const device = b.devices.all.find((d) => d.name === name);
      assert.ok(device !== undefined, name);
      device.restore(state);
    }
    assert.deepEqual(
      b.devices.all.map((d) => d.save()),
      saved.map((s) => s.state),
    );
    assert.equal(b.levels.at(-1), a.levels.at(-1), "the line is driven to the saved level");
    assert.equal(b.levels.at(-1), true, "received data below the trigger level: CTI");
    for (const port of [1, 3, 4, 7]) {
      assert.equal(b.dev.ioIn(COM1 + port, 1), a.dev.ioIn(COM1 + port, 1), `port +${port}`);
    }
    assert.equal(b.dev.ioIn(COM1 + 2, 1), UART_IIR.CTI | 0xc0);
    assert.equal(b.devices.uart.txPending(), 2);
    const rx = [b.dev.ioIn(COM1, 1), b.dev.ioIn(COM1, 1), b.dev.ioIn(COM1, 1)];
    assert.deepEqual(rx, [1, 2, 3]);
    b.drain();
    b.devices.uart.drain();
    assert.equal(b.out(), "bc", "the restored TX FIFO goes out once the host drains");
  });

  it("refuses a malformed state and leaves the device as it was", () => {
    const a = busy();
    const uart = a.devices.all[0];
    const debug = a.devices.all[1];
    assert.ok(uart !== undefined && debug !== undefined);
    const before = uart.save();
    const bad = { version: before.version, bytes: before.bytes.subarray(0, 5) };
    assert.throws(() => {
      uart.restore(bad);
    }, DeviceStateError);
    assert.throws(() => {
      uart.restore({ version: 9, bytes: before.bytes });
    }, DeviceStateError);
    assert.deepEqual(uart.save(), before);
    assert.throws(() => {
      debug.restore({ version: 1, bytes: Uint8Array.of(0) });
    }, DeviceStateError);
  });
});

describe("serviceIoExit()", () => {
  it("performs every element of a rep outsb", () => {
    const { dev, out } = console0();
    const r = serviceIoExit(dev, ioExit("out", 0xe9, 1, [0x61, 0x62, 0x63]));
    assert.equal(out(), "abc");
    assert.deepEqual(r, { exitStatus: undefined, unhandled: [] });
  });

  it("fills IN data from the device and all-ones where nothing answers", () => {
    const { dev } = console0();
    const lsr = ioExit("in", COM1 + 5, 1, 2);
    serviceIoExit(dev, lsr);
    assert.deepEqual(lsr.data, Uint8Array.of(0x60, 0x60));
    const none = ioExit("in", 0x71, 2, 4);
    assert.deepEqual(serviceIoExit(dev, none), { exitStatus: undefined, unhandled: [0x71] });
    assert.deepEqual(none.data, Uint8Array.of(0xff, 0xff, 0xff, 0xff));
    const wide = ioExit("in", 0x71, 4, 4);
    serviceIoExit(dev, wide);
    assert.deepEqual(wide.data, Uint8Array.of(0xff, 0xff, 0xff, 0xff));
  });

  it("stops at a write to the exit port and reports its status", () => {
    const { dev, out } = console0();
    const r = serviceIoExit(dev, ioExit("out", 0xf4, 1, [3, 4]));
    assert.deepEqual(r, { exitStatus: 3, unhandled: [] });
    assert.equal(out(), "");
    assert.deepEqual(serviceIoExit(dev, ioExit("out", 0xf4, 4, [1, 2, 0, 0])).exitStatus, 0x201);
  });

  it("reports an unclaimed OUT port and refuses malformed exits with RangeError", () => {
    const { dev } = console0();
    assert.deepEqual(serviceIoExit(dev, ioExit("out", 0x80, 1, [0])).unhandled, [0x80]);
    assert.throws(() => serviceIoExit(dev, ioExit("out", 0xe9, 3, [1, 2, 3])), RangeError);
    assert.throws(
      () => serviceIoExit(dev, { ...ioExit("out", 0xe9, 1, [1]), count: 2 }),
      RangeError,
    );
  });

  it("combineDevices() asks devices in order", () => {
    const { dev, out } = console0();
    const seen: number[] = [];
    const pit: PortDevice = {
      ioIn: (port) => (port === 0x40 ? 0x12 : undefined),
      ioOut: (port, _size, value) => {
        if (port !== 0x43) return { kind: "unhandled" };
        seen.push(value);
        return { kind: "handled" };
      },
    };
    const all = combineDevices([dev, pit]);
    assert.equal(all.ioIn(0x40, 1), 0x12);
    assert.equal(all.ioIn(0xe9, 1), 0xe9);
    assert.equal(all.ioIn(0x41, 1), undefined);
    all.ioOut(0x43, 1, 0x34);
    all.ioOut(0xe9, 1, 0x21);
    assert.deepEqual(seen, [0x34]);
    assert.equal(out(), "!");
    assert.deepEqual(all.ioOut(0xf4, 1, 9), { kind: "exit", status: 9 });
    assert.deepEqual(all.ioOut(0x99, 1, 9), { kind: "unhandled" });
  });
});

describe("OnceLog", () => {
  it("reports each (space, address) once and stops remembering at its limit", () => {
    const log = new OnceLog(2);
    assert.equal(log.first("pio-in", 0x71), true);
    assert.equal(log.first("pio-in", 0x71), false);
    assert.equal(log.first("pio-out", 0x71), true);
    assert.equal(log.first("mmio-read", 0x1000n), false, "limit reached");
  });
});
