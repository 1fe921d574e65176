import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  LSR,
  UART_INPUT_LIMIT,
  Uart16550,
  X86Console,
  X86_CONSOLE_PORTS,
} from "../../src/vmm/console.js";
import {
  OnceLog,
  combineDevices,
  serviceIoExit,
  type IoExit,
  type PortDevice,
} from "../../src/vmm/io.js";

/** A console whose output is collected as text. */
function console0(): { dev: X86Console; out: () => string } {
  const bytes: number[] = [];
  const dev = new X86Console((b) => bytes.push(...b));
  return { dev, out: () => String.fromCharCode(...bytes) };
}

const COM1 = X86_CONSOLE_PORTS.com1;

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
    const { dev } = console0();
    assert.equal(dev.ioIn(COM1, 1), 0, "RBR of an empty FIFO");
    dev.uart.pushInput(Uint8Array.of(0x61, 0x62));
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
    const { dev } = console0();
    assert.equal(dev.ioIn(COM1 + 2, 1), 0x01);
    dev.uart.pushInput(Uint8Array.of(1, 2, 3));
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
    assert.equal(dev.ioIn(COM1 + 6, 1), 0xf0);
    dev.ioOut(COM1, 1, 0x55);
    assert.equal(out(), "", "loopback bytes are not output");
    assert.equal(dev.ioIn(COM1 + 5, 1), 0x61);
    assert.equal(dev.ioIn(COM1, 1), 0x55);
  });

  it("bounds queued input", () => {
    const uart = new Uart16550(() => undefined);
    uart.pushInput(new Uint8Array(UART_INPUT_LIMIT + 10).fill(7));
    let n = 0;
    while ((uart.read(5) & LSR.DR) !== 0) {
      uart.read(0);
      n++;
    }
    assert.equal(n, UART_INPUT_LIMIT);
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
