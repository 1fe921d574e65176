import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  UART_FIFO_SIZE,
  UART_IIR,
  UART_LSR,
  Uart16550,
} from "../../../src/vmm/devices/uart16550.js";
import { DeviceStateError } from "../../../src/vmm/devices/state.js";
import { PortBus } from "../../../src/vmm/devices/bus.js";

const RBR = 0;
const THR = 0;
const IER = 1;
const IIR = 2;
const FCR = 2;
const LCR = 3;
const MCR = 4;
const LSR = 5;
const MSR = 6;
const SCR = 7;

/** A host whose acceptance can be turned off, and an interrupt line that logs its levels. */
function setup(): {
  uart: Uart16550;
  out: number[];
  levels: boolean[];
  host: { open: boolean; rxSpaceCalls: number };
} {
  const out: number[] = [];
  const levels: boolean[] = [];
  const host = { open: true, rxSpaceCalls: 0 };
  const uart = new Uart16550(
    "uart0",
    { set: (l) => levels.push(l) },
    {
      write: (bytes) => {
        if (!host.open) return 0;
        out.push(...bytes);
        return bytes.length;
      },
      rxSpace: () => {
        host.rxSpaceCalls++;
      },
    },
  );
  return { uart, out, levels, host };
}

function level(levels: boolean[]): boolean {
  return levels.at(-1) ?? false;
}

/**
 * Linux 6.1's autoconfig() and autoconfig_16550a() (drivers/tty/serial/8250/8250_port.c) as
 * register accesses, with CONFIG_SERIAL_8250_16550A_VARIANTS: returns the type it settles on.
 */
function linuxAutoconfig(u: Uart16550): string {
  const inb = (o: number) => u.readRegister(o);
  const outb = (o: number, v: number) => {
    u.writeRegister(o, v);
  };
  // IER test.
  const ier0 = inb(IER);
  outb(IER, 0);
  const s2 = inb(IER) & 0x0f;
  outb(IER, 0x0f);
  const s3 = inb(IER) & 0x0f;
  outb(IER, ier0);
  if (s2 !== 0 || s3 !== 0x0f) return "none (IER test failed)";
  const saveMcr = inb(MCR);
  const saveLcr = inb(LCR);
  // Loopback test: MCR = LOOP | OUT2 | RTS must read back as MSR DCD | CTS.
  outb(MCR, 0x10 | 0x0a);
  const status1 = inb(MSR) & 0xf0;
  outb(MCR, saveMcr);
  if (status1 !== 0x90) return `none (loopback test: MSR ${status1.toString(16)})`;
  outb(LCR, 0xbf);
  outb(2, 0); // EFR
  outb(LCR, 0);
  outb(FCR, 0x01);
  const kind = inb(IIR) >> 6;
  if (kind !== 3) return `not a 16550A (IIR>>6 = ${kind})`;
  let type = "16550A";
  // EFR with DLAB set: only ST16C650V1 passes.
  outb(LCR, 0x80);
  if (inb(2) === 0) type = "16650";
  outb(LCR, 0xbf);
  if (inb(2) === 0) type = "16650V2";
  // National SuperIO check.
  outb(LCR, 0);
  const m1 = inb(MCR);
  outb(LCR, 0xe0);
  let st2 = inb(2);
  if (!((st2 ^ m1) & 0x10)) {
    outb(LCR, 0);
    outb(MCR, m1 ^ 0x10);
    outb(LCR, 0xe0);
    st2 = inb(2);
    outb(LCR, 0);
    outb(MCR, m1);
    if ((st2 ^ m1) & 0x10) type = "NS16550A";
  }
  // TI16750 check.
  outb(LCR, 0);
  outb(FCR, 0x01);
  const t1 = inb(IIR) >> 5;
  outb(FCR, 0x01 | 0x20);
  outb(LCR, 0x80);
  outb(FCR, 0x01 | 0x20);
  const t2 = inb(IIR) >> 5;
  outb(FCR, 0x01);
  outb(LCR, 0);
  if (t1 === 6 && t2 === 7) type = "16750";
  // XScale UUE bit.
  const iersave = inb(IER);
  outb(IER, iersave & ~0x40);
  if (!(inb(IER) & 0x40)) {
    outb(IER, iersave | 0x40);
    if (inb(IER) & 0x40) type = "XScale";
  }
  outb(IER, iersave);
  outb(LCR, saveLcr);
  outb(MCR, saveMcr);
  outb(FCR, 0x07); // clear FIFOs
  inb(RBR);
  outb(IER, 0);
  return type;
}

describe("Uart16550", () => {
  it("passes Linux's 8250 autoconfig as a 16550A and leaves the line low", () => {
    const { uart, out, levels } = setup();
    assert.equal(linuxAutoconfig(uart), "16550A");
    assert.deepEqual(out, [], "loopback bytes never reach the host");
    assert.equal(level(levels), false);
    assert.equal(uart.readRegister(LSR), UART_LSR.THRE | UART_LSR.TEMT);
  });

  it("passes serial8250_do_startup's THRE re-assertion test (no UART_BUG_THRE)", () => {
    const { uart, levels } = setup();
    uart.writeRegister(FCR, 0x07);
    uart.writeRegister(IER, 0x02);
    const iir1 = uart.readRegister(IIR);
    assert.equal(level(levels), false, "reading IIR cleared THRE");
    uart.writeRegister(IER, 0);
    uart.writeRegister(IER, 0x02);
    assert.equal(level(levels), true);
    const iir = uart.readRegister(IIR);
    uart.writeRegister(IER, 0);
    assert.equal(iir1 & 0x01, 0);
    assert.equal(iir & 0x01, 0);
    assert.equal(iir, 0xc0 | UART_IIR.THRE);
    assert.equal(uart.readRegister(IIR), 0xc1);
  });

  it("holds output in a 16-byte FIFO while the host refuses, with THRE clear; drain() empties it and raises THRE", () => {
    const { uart, out, levels, host } = setup();
    uart.writeRegister(FCR, 0x01);
    uart.writeRegister(IER, 0x02);
    assert.equal(uart.readRegister(IIR), 0xc2);
    host.open = false;
    for (let i = 0; i < UART_FIFO_SIZE + 3; i++) uart.writeRegister(THR, 0x41 + i);
    assert.equal(uart.txPending(), UART_FIFO_SIZE, "bytes beyond the FIFO are lost");
    assert.equal(uart.readRegister(LSR) & (UART_LSR.THRE | UART_LSR.TEMT), 0);
    assert.equal(uart.readRegister(IIR), 0xc1);
    assert.equal(level(levels), false);
    uart.drain();
    assert.equal(uart.txPending(), UART_FIFO_SIZE, "still refused");
    host.open = true;
    uart.drain();
    assert.deepEqual(
      out,
      Array.from({ length: 16 }, (_, i) => 0x41 + i),
    );
    assert.equal(uart.readRegister(LSR) & UART_LSR.THRE, UART_LSR.THRE);
    assert.equal(level(levels), true);
    assert.equal(uart.readRegister(IIR), 0xc2);
    assert.equal(level(levels), false);
  });

  it("keeps what a host takes partially, in order", () => {
    const out: number[] = [];
    let budget = 0;
    const uart = new Uart16550(
      "u",
      { set: () => undefined },
      {
        write: (b) => {
          const n = Math.min(budget, b.length);
          out.push(...b.subarray(0, n));
          budget -= n;
          return n;
        },
      },
    );
    uart.writeRegister(FCR, 0x01);
    for (const c of [1, 2, 3, 4, 5]) uart.writeRegister(THR, c);
    budget = 2;
    uart.drain();
    assert.deepEqual(out, [1, 2]);
    assert.equal(uart.txPending(), 3);
    budget = 100;
    uart.writeRegister(THR, 6);
    assert.deepEqual(out, [1, 2, 3, 4, 5, 6]);
  });

  it("receives into a bounded FIFO: CTI below the trigger level, RDA at it, overrun when full", () => {
    const { uart, levels, host } = setup();
    uart.writeRegister(FCR, 0x01 | 0x80); // trigger level 8
    uart.writeRegister(IER, 0x01 | 0x04);
    assert.equal(uart.receive(Uint8Array.of(0x61, 0x62)), 2);
    assert.equal(level(levels), true);
    assert.equal(uart.readRegister(IIR), 0xc0 | UART_IIR.CTI);
    assert.equal(uart.receive(new Uint8Array(6).fill(0x63)), 6);
    assert.equal(uart.readRegister(IIR), 0xc0 | UART_IIR.RDA);
    assert.equal(uart.rxRoom(), 8);
    assert.equal(uart.receive(new Uint8Array(10).fill(0x64)), 8);
    assert.equal(uart.readRegister(IIR), 0xc0 | UART_IIR.RLS, "overrun outranks data");
    assert.equal(uart.readRegister(LSR), UART_LSR.OE | UART_LSR.DR | UART_LSR.THRE | UART_LSR.TEMT);
    assert.equal(uart.readRegister(LSR) & UART_LSR.OE, 0, "reading LSR cleared OE");
    const got: number[] = [];
    while (uart.readRegister(LSR) & UART_LSR.DR) got.push(uart.readRegister(RBR));
    assert.equal(got.length, 16);
    assert.deepEqual(got.slice(0, 3), [0x61, 0x62, 0x63]);
    assert.equal(level(levels), false);
    assert.equal(host.rxSpaceCalls, 1);
    assert.equal(uart.readRegister(RBR), 0, "empty RBR reads 0");
  });

  it("without FIFOs holds one received byte", () => {
    const { uart } = setup();
    assert.equal(uart.receive(Uint8Array.of(1, 2)), 1);
    assert.equal(uart.readRegister(LSR) & UART_LSR.OE, UART_LSR.OE);
    assert.equal(uart.readRegister(IIR), 0x01, "no FIFO bits");
  });

  it("orders interrupts RLS > RDA > THRE > MSR", () => {
    const { uart } = setup();
    uart.writeRegister(FCR, 0x01);
    uart.writeRegister(MCR, 0x10); // loopback, so MCR changes make MSR deltas
    uart.writeRegister(IER, 0x0f);
    uart.writeRegister(MCR, 0x10 | 0x02);
    uart.receive(new Uint8Array(UART_FIFO_SIZE + 1));
    const seen: number[] = [];
    for (let i = 0; i < 6; i++) {
      const id = uart.readRegister(IIR) & 0x0f;
      seen.push(id);
      if (id === UART_IIR.RLS) uart.readRegister(LSR);
      if (id === UART_IIR.CTI || id === UART_IIR.RDA)
        while (uart.readRegister(LSR) & UART_LSR.DR) uart.readRegister(RBR);
      // Entering loopback dropped DCD, DSR, CTS (deltas 0x0b); RTS then raised CTS.
      if (id === UART_IIR.MSR) assert.equal(uart.readRegister(MSR), 0x10 | 0x0b);
    }
    assert.deepEqual(seen, [UART_IIR.RLS, UART_IIR.RDA, UART_IIR.THRE, UART_IIR.MSR, 1, 1]);
  });

  it("keeps DLL/DLM apart from RBR/IER under DLAB, and a scratch register", () => {
    const { uart, out } = setup();
    uart.writeRegister(LCR, 0x83);
    uart.writeRegister(0, 0x02);
    uart.writeRegister(1, 0x01);
    uart.writeRegister(LCR, 0x03);
    assert.equal(uart.readRegister(IER), 0);
    uart.writeRegister(THR, 0x5a);
    assert.deepEqual(out, [0x5a]);
    uart.writeRegister(LCR, 0x83);
    assert.equal(uart.readRegister(0), 0x02);
    assert.equal(uart.readRegister(1), 0x01);
    uart.writeRegister(SCR, 0xa5);
    assert.equal(uart.readRegister(SCR), 0xa5);
    assert.equal(uart.readRegister(9), 0);
  });

  it("works on the port bus at COM1 and on MMIO with byte-split wide accesses", () => {
    const { uart, out } = setup();
    const bus = new PortBus();
    bus.register("com1", 0x3f8, 8, uart);
    bus.write(0x3f8, 1, 0x48);
    assert.equal(bus.read(0x3fd, 1), UART_LSR.THRE | UART_LSR.TEMT);
    // A 16-bit OUT at LCR writes LCR and MCR.
    bus.write(0x3fb, 2, 0x1003);
    assert.equal(uart.readRegister(MCR), 0x10);
    uart.mmioWrite(0, Uint8Array.of(0x49));
    const word = new Uint8Array(4);
    uart.mmioRead(4, word);
    // MCR, LSR, then MSR: status 0 in loopback with no outputs, deltas from leaving DCD|DSR|CTS.
    assert.deepEqual([...word], [0x10, 0x61, 0x0b, 0]);
    assert.deepEqual(out, [0x48], "the MMIO byte went round the loopback");
  });

  it("save()/restore() carries registers, both FIFOs and pending conditions mid-traffic", () => {
    const a = setup();
    a.uart.writeRegister(FCR, 0x41);
    a.uart.writeRegister(IER, 0x07);
    a.uart.writeRegister(LCR, 0x1b);
    a.uart.writeRegister(SCR, 0x77);
    a.host.open = false;
    for (const c of [0x31, 0x32, 0x33]) a.uart.writeRegister(THR, c);
    a.uart.receive(Uint8Array.of(0x71, 0x72, 0x73, 0x74, 0x75));
    const state = a.uart.save();

    const b = setup();
    b.uart.restore(state);
    assert.deepEqual(b.uart.save(), state);
    assert.equal(level(b.levels), true, "the restored line is driven");
    for (const u of [a.uart, b.uart]) {
      assert.equal(u.readRegister(IIR), 0xc0 | UART_IIR.RDA);
      assert.equal(u.readRegister(LSR), UART_LSR.DR);
      assert.equal(u.readRegister(LCR), 0x1b);
      assert.equal(u.readRegister(SCR), 0x77);
    }
    b.uart.drain();
    assert.deepEqual(b.out, [0x31, 0x32, 0x33]);
    const got: number[] = [];
    while (b.uart.readRegister(LSR) & UART_LSR.DR) got.push(b.uart.readRegister(RBR));
    assert.deepEqual(got, [0x71, 0x72, 0x73, 0x74, 0x75]);
  });

  it("restore() refuses truncated, oversized, wrong-version and nonsense states and changes nothing", () => {
    const a = setup();
    a.uart.writeRegister(FCR, 0x01);
    a.uart.receive(Uint8Array.of(1, 2, 3));
    const good = a.uart.save();
    const b = setup();
    b.uart.writeRegister(SCR, 0x99);
    const before = b.uart.save();
    const bad = [
      { version: 2, bytes: good.bytes },
      ...Array.from({ length: good.bytes.length }, (_, n) => ({
        version: 1,
        bytes: good.bytes.subarray(0, n),
      })),
      { version: 1, bytes: Uint8Array.of(...good.bytes, 0) },
    ];
    const flipped = good.bytes.slice();
    flipped[0] = 0xff; // IER with bits the UART never keeps
    bad.push({ version: 1, bytes: flipped });
    const long = good.bytes.slice();
    long[10] = 17; // RX FIFO length above 16
    bad.push({ version: 1, bytes: long });
    for (const s of bad) {
      assert.throws(() => {
        b.uart.restore(s);
      }, DeviceStateError);
      assert.deepEqual(b.uart.save(), before);
    }
  });
});
