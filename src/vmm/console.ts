/**
 * The x86 guest console: a minimal 16550A UART at COM1 (0x3f8), the 0xe9 debug port and the
 * 0xf4 exit port, as a pure `PortDevice` (no I/O of its own: output goes to a sink callback,
 * input is pushed in by the caller).
 *
 * 16550A registers (TI/National PC16550D data sheet, Table 2), offset from the base port:
 *   0 RBR (read) / THR (write); DLL when LCR.DLAB   4 MCR   (bit 4 = loopback)
 *   1 IER; DLM when LCR.DLAB                        5 LSR   (DR 0x01, THRE 0x20, TEMT 0x40)
 *   2 IIR (read) / FCR (write)                      6 MSR
 *   3 LCR (bit 7 = DLAB)                            7 SCR   (scratch)
 * The transmitter is infinitely fast, so LSR always shows THRE|TEMT; there is no interrupt
 * line (IIR always reads "no interrupt pending"): guests poll. In loopback mode transmitted
 * bytes come back as received bytes and MSR mirrors MCR, which is how Linux's 8250 driver
 * probes for a UART (drivers/tty/serial/8250/8250_port.c, autoconfig).
 *
 * Port 0xe9 is the Bochs/QEMU debug console: a written byte is output, a read returns 0xe9
 * (how guests detect it). Port 0xf4 is QEMU's isa-debug-exit location; here the exit status is
 * exactly the value written (issue 6), not QEMU's (value << 1) | 1.
 */
import type { PortDevice, PortOutcome } from "./io.js";

/** Ports of the x86 console devices. */
export const X86_CONSOLE_PORTS = { com1: 0x3f8, debug: 0xe9, exit: 0xf4 } as const;

/** LSR bits (PC16550D, Line Status Register). */
export const LSR = { DR: 0x01, THRE: 0x20, TEMT: 0x40 } as const;

/** Bytes of received input kept at most; more are dropped (a real 16550 overruns at 16). */
export const UART_INPUT_LIMIT = 4096;

const LCR_DLAB = 0x80;
const MCR_LOOP = 0x10;
const FCR_ENABLE = 0x01;
const FCR_CLEAR_RX = 0x02;
/** IIR "no interrupt pending", plus bits 7:6 set when the FIFOs are enabled. */
const IIR_NONE = 0x01;
const IIR_FIFO = 0xc0;
/** MSR with DCD, DSR and CTS asserted: a terminal is attached. */
const MSR_CONNECTED = 0xb0;

/** A polled 16550A UART, byte registers at offsets 0–7. */
export class Uart16550 {
  private readonly input: number[] = [];
  private ier = 0;
  private lcr = 0x03;
  private mcr = 0;
  private scr = 0;
  private dll = 0x0c;
  private dlm = 0;
  private fifo = false;

  /** @param sink receives each transmitted byte (outside loopback mode). */
  constructor(private readonly sink: (bytes: Uint8Array) => void) {}

  /** Queues bytes for the guest to receive (stdin). */
  pushInput(bytes: Uint8Array): void {
    for (const b of bytes) {
      if (this.input.length >= UART_INPUT_LIMIT) return;
      this.input.push(b);
    }
  }

  /** Reads the register at `offset` (0–7). */
  read(offset: number): number {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset & 7) {
      case 0:
        return dlab ? this.dll : (this.input.shift() ?? 0);
      case 1:
        return dlab ? this.dlm : this.ier;
      case 2:
        return IIR_NONE | (this.fifo ? IIR_FIFO : 0);
      case 3:
        return this.lcr;
      case 4:
        return this.mcr;
      case 5:
        return LSR.THRE | LSR.TEMT | (this.input.length > 0 ? LSR.DR : 0);
      case 6:
        return this.loopback() ? this.loopbackMsr() : MSR_CONNECTED;
      default:
        return this.scr;
    }
  }

  /** Writes `value` (a byte) to the register at `offset` (0–7). */
  write(offset: number, value: number): void {
    const byte = value & 0xff;
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset & 7) {
      case 0:
        if (dlab) this.dll = byte;
        else if (this.loopback()) this.pushInput(Uint8Array.of(byte));
        else this.sink(Uint8Array.of(byte));
        return;
      case 1:
        if (dlab) this.dlm = byte;
        else this.ier = byte & 0x0f;
        return;
      case 2:
        this.fifo = (byte & FCR_ENABLE) !== 0;
        if ((byte & FCR_CLEAR_RX) !== 0) this.input.length = 0;
        return;
      case 3:
        this.lcr = byte;
        return;
      case 4:
        this.mcr = byte & 0x1f;
        return;
      case 7:
        this.scr = byte;
        return;
      default:
        // LSR and MSR are read-only (factory test writes are ignored).
        return;
    }
  }

  private loopback(): boolean {
    return (this.mcr & MCR_LOOP) !== 0;
  }

  /** MSR in loopback: CTS←RTS, DSR←DTR, RI←OUT1, DCD←OUT2 (PC16550D, MCR bit 4). */
  private loopbackMsr(): number {
    const m = this.mcr;
    return ((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4);
  }
}

/**
 * COM1, the 0xe9 debug port and the 0xf4 exit port as one `PortDevice`. Accesses wider than a
 * byte to the UART or the debug port are split into byte accesses at consecutive ports (as an
 * 8-bit ISA device sees them); the exit port takes the whole value.
 */
export class X86Console implements PortDevice {
  /** The UART at COM1, e.g. to `pushInput()` stdin. */
  readonly uart: Uart16550;

  /** @param sink receives guest output from COM1 and port 0xe9. */
  constructor(private readonly sink: (bytes: Uint8Array) => void) {
    this.uart = new Uart16550(sink);
  }

  /** Reads `size` bytes starting at `port`; `undefined` when no byte belongs to the console. */
  ioIn(port: number, size: number): number | undefined {
    let value = 0;
    let claimed = false;
    for (let i = 0; i < size; i++) {
      const byte = this.readByte(port + i);
      if (byte !== undefined) claimed = true;
      value |= (byte ?? 0xff) << (8 * i);
    }
    return claimed ? value >>> 0 : undefined;
  }

  /** Writes `size` bytes starting at `port`; a write to 0xf4 ends the run with its value. */
  ioOut(port: number, size: number, value: number): PortOutcome {
    if (port === X86_CONSOLE_PORTS.exit) {
      const mask = size >= 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
      return { kind: "exit", status: (value & mask) >>> 0 };
    }
    let claimed = false;
    for (let i = 0; i < size; i++) {
      if (this.writeByte(port + i, (value >>> (8 * i)) & 0xff)) claimed = true;
    }
    return { kind: claimed ? "handled" : "unhandled" };
  }

  private readByte(port: number): number | undefined {
    const offset = port - X86_CONSOLE_PORTS.com1;
    if (offset >= 0 && offset < 8) return this.uart.read(offset);
    if (port === X86_CONSOLE_PORTS.debug) return X86_CONSOLE_PORTS.debug;
    return undefined;
  }

  private writeByte(port: number, byte: number): boolean {
    const offset = port - X86_CONSOLE_PORTS.com1;
    if (offset >= 0 && offset < 8) {
      this.uart.write(offset, byte);
      return true;
    }
    if (port === X86_CONSOLE_PORTS.debug) {
      this.sink(Uint8Array.of(byte));
      return true;
    }
    return false;
  }
}
