/**
 * A 16550A UART with FIFOs and a level interrupt output, on MMIO (RISC-V: `ns16550a`, reg-shift
 * 0, reg-io-width 1) or on ports (x86: COM1 0x3f8, IRQ 4).
 *
 * Registers (TI PC16550D data sheet, Table 2), offset from the base:
 *   0 RBR (read) / THR (write); DLL when LCR.DLAB   4 MCR (bit 4 loopback)
 *   1 IER (low 4 bits); DLM when LCR.DLAB           5 LSR (DR, OE, THRE, TEMT)
 *   2 IIR (read) / FCR (write)                      6 MSR
 *   3 LCR (bit 7 DLAB)                              7 SCR
 * Offsets 8 and up (the rest of an MMIO window) read 0 and ignore writes. Wider accesses are
 * split into byte accesses at consecutive offsets, as an 8-bit device on a wider bus sees them.
 *
 * Interrupts (PC16550D, Table 4), highest priority first: receiver line status (IIR 0x06, an
 * overrun, cleared by reading LSR), received data (0x04 at or above the FIFO trigger level)
 * or character timeout (0x0C below it: there is no clock here, so the timeout is taken as
 * already elapsed whenever data waits below the trigger level), THR empty (0x02, cleared by
 * reading IIR while it is the reported source or by writing THR; raised when the TX FIFO
 * empties or when IER.ETBEI is enabled while it is empty — Linux's THRE test in
 * serial8250_do_startup relies on that), modem status (0x00, cleared by reading MSR). IIR bits
 * 7:6 read 11 while FIFOs are enabled, which Linux's autoconfig takes for a 16550A. The output
 * is not gated by MCR.OUT2 (as in QEMU).
 *
 * Transmitting has backpressure: THR bytes go into a 16-byte TX FIFO that is offered to the
 * host at once; the host may accept fewer bytes than offered. While bytes remain, LSR.THRE and
 * TEMT stay clear (the guest waits, as on hardware) and a THR write into a full FIFO is lost,
 * as on hardware. The machine calls `drain()` when the host can take bytes again.
 *
 * Loopback (MCR bit 4, as drivers/tty/serial/8250/8250_port.c autoconfig probes it): THR bytes
 * come back into the RX FIFO, MSR's status bits follow MCR (CTS←RTS, DSR←DTR, RI←OUT1,
 * DCD←OUT2) and changes set MSR's delta bits. Outside loopback MSR shows DCD|DSR|CTS.
 */
import { StateWriter, stateReader } from "./state.js";
import type { Device, DeviceState, IrqLine, MmioDevice, PioDevice } from "./types.js";

/** The host side of a UART's transmitter and receiver. */
export interface UartHost {
  /** Takes transmitted bytes; returns how many it accepted (0 … bytes.length), in order. */
  write(bytes: Uint8Array): number;
  /** Optional: the RX FIFO has room again after the guest read it (feed more input). */
  rxSpace?(): void;
}

/** Bytes each FIFO holds (PC16550D: 16-byte transmit and receive FIFOs). */
export const UART_FIFO_SIZE = 16;

/** LSR bits (PC16550D, Line Status Register). */
export const UART_LSR = {
  DR: 0x01,
  OE: 0x02,
  PE: 0x04,
  FE: 0x08,
  BI: 0x10,
  THRE: 0x20,
  TEMT: 0x40,
} as const;

/** IIR interrupt identification codes (PC16550D, Table 4), without the FIFO bits 7:6. */
export const UART_IIR = {
  NONE: 0x01,
  MSR: 0x00,
  THRE: 0x02,
  RDA: 0x04,
  RLS: 0x06,
  CTI: 0x0c,
} as const;

const IER_ERBFI = 0x01;
const IER_ETBEI = 0x02;
const IER_ELSI = 0x04;
const IER_EDSSI = 0x08;
const LCR_DLAB = 0x80;
const MCR_LOOP = 0x10;
const FCR_ENABLE = 0x01;
const FCR_CLEAR_RX = 0x02;
const FCR_CLEAR_TX = 0x04;
const IIR_FIFO_BITS = 0xc0;
/** MSR with a terminal attached: DCD, DSR and CTS. */
const MSR_CONNECTED = 0xb0;
/** RX trigger levels selected by FCR bits 7:6 (PC16550D, FCR). */
const TRIGGER_LEVELS = [1, 4, 8, 14] as const;
const STATE_VERSION = 1;

/** A 16550A UART; see the module header for the model. */
export class Uart16550 implements MmioDevice, PioDevice, Device {
  private rx: number[] = [];
  private tx: number[] = [];
  private ier = 0;
  private lcr = 0x03;
  private mcr = 0;
  private scr = 0;
  private dll = 0x0c;
  private dlm = 0;
  private fcr = 0;
  /** LSR error bits (OE) waiting to be read. */
  private lsrErrors = 0;
  /** MSR delta bits (3:0) waiting to be read. */
  private msrDelta = 0;
  /** The THRE interrupt condition (cleared by an IIR read that reports it, or a THR write). */
  private thrPending = false;
  private level = false;

  /**
   * @param name device name in snapshots ("uart0").
   * @param irq the interrupt output (PLIC source 10 on RISC-V, IRQ 4 on x86).
   * @param host where transmitted bytes go.
   */
  constructor(
    readonly name: string,
    private readonly irq: IrqLine,
    private readonly host: UartHost,
  ) {}

  /**
   * Input from the host into the RX FIFO. Bytes beyond the FIFO's room are lost and flag an
   * overrun (LSR.OE), as on hardware; use `rxRoom()` to feed only what fits.
   * @returns how many bytes were accepted.
   */
  receive(bytes: Uint8Array): number {
    const room = this.rxRoom();
    const taken = Math.min(room, bytes.length);
    for (let i = 0; i < taken; i++) this.rx.push(bytes[i] ?? 0);
    if (taken < bytes.length) this.lsrErrors |= UART_LSR.OE;
    this.update();
    return taken;
  }

  /** Free bytes in the RX FIFO (1 byte of holding register when FIFOs are disabled). */
  rxRoom(): number {
    return this.fifoSize() - this.rx.length;
  }

  /** IER's four enable bits, whatever LCR.DLAB selects at offset 1 (no side effect). */
  interruptEnables(): number {
    return this.ier;
  }

  /** Bytes waiting in the TX FIFO for the host. */
  txPending(): number {
    return this.tx.length;
  }

  /** Offers the TX FIFO to the host again (call when the host becomes writable). */
  drain(): void {
    this.flush();
    this.update();
  }

  /** Reads the byte register at `offset`. */
  readRegister(offset: number): number {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    let value: number;
    switch (offset) {
      case 0:
        value = dlab ? this.dll : this.readRbr();
        break;
      case 1:
        value = dlab ? this.dlm : this.ier;
        break;
      case 2:
        value = this.readIir();
        break;
      case 3:
        return this.lcr;
      case 4:
        return this.mcr;
      case 5:
        value = this.lsr();
        this.lsrErrors = 0;
        break;
      case 6:
        value = this.msrStatus() | this.msrDelta;
        this.msrDelta = 0;
        break;
      case 7:
        return this.scr;
      default:
        return 0;
    }
    this.update();
    return value;
  }

  /** Writes `value` (a byte) to the register at `offset`. */
  writeRegister(offset: number, value: number): void {
    const byte = value & 0xff;
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case 0:
        if (dlab) this.dll = byte;
        else this.writeThr(byte);
        break;
      case 1:
        if (dlab) this.dlm = byte;
        else this.writeIer(byte);
        break;
      case 2:
        this.writeFcr(byte);
        break;
      case 3:
        this.lcr = byte;
        return;
      case 4:
        this.writeMcr(byte & 0x1f);
        break;
      case 7:
        this.scr = byte;
        return;
      default:
        // LSR and MSR are read-only (writes are factory test modes); offsets ≥ 8 are nothing.
        return;
    }
    this.update();
  }

  /** MMIO read: byte registers at consecutive offsets. */
  mmioRead(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) data[i] = this.readRegister(offset + i);
  }

  /** MMIO write: byte registers at consecutive offsets. */
  mmioWrite(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) this.writeRegister(offset + i, data[i] ?? 0);
  }

  /** Port read (IN): byte registers at consecutive ports. */
  pioRead(offset: number, size: number): number {
    let value = 0;
    for (let i = 0; i < size; i++) value |= this.readRegister(offset + i) << (8 * i);
    return value >>> 0;
  }

  /** Port write (OUT): byte registers at consecutive ports. */
  pioWrite(offset: number, size: number, value: number): void {
    for (let i = 0; i < size; i++) this.writeRegister(offset + i, (value >>> (8 * i)) & 0xff);
  }

  private fifoEnabled(): boolean {
    return (this.fcr & FCR_ENABLE) !== 0;
  }

  private fifoSize(): number {
    return this.fifoEnabled() ? UART_FIFO_SIZE : 1;
  }

  private loopback(): boolean {
    return (this.mcr & MCR_LOOP) !== 0;
  }

  private readRbr(): number {
    const byte = this.rx.shift();
    if (this.rx.length === 0 && byte !== undefined) this.host.rxSpace?.();
    return byte ?? 0;
  }

  private writeThr(byte: number): void {
    this.thrPending = false;
    if (this.loopback()) {
      // The byte goes round the internal loop into the receiver (PC16550D, MCR bit 4).
      if (this.rx.length < this.fifoSize()) this.rx.push(byte);
      else this.lsrErrors |= UART_LSR.OE;
      this.thrPending = true;
      return;
    }
    // A full FIFO loses the byte, as a THR write without waiting for THRE does on hardware.
    if (this.tx.length < this.fifoSize()) this.tx.push(byte);
    this.flush();
  }

  /** Offers the TX FIFO to the host; an emptied FIFO raises the THRE interrupt condition. */
  private flush(): void {
    if (this.tx.length === 0) return;
    const accepted = this.host.write(Uint8Array.from(this.tx));
    const n = Math.max(0, Math.min(this.tx.length, Math.trunc(accepted)));
    if (n > 0) this.tx.splice(0, n);
    if (this.tx.length === 0) this.thrPending = true;
  }

  private writeIer(byte: number): void {
    const enabling = (byte & IER_ETBEI) !== 0 && (this.ier & IER_ETBEI) === 0;
    this.ier = byte & 0x0f;
    // Enabling ETBEI while THR is empty raises THRE (PC16550D; Linux's THRE test needs it).
    if (enabling && this.tx.length === 0) this.thrPending = true;
  }

  private writeFcr(byte: number): void {
    const wasEnabled = this.fifoEnabled();
    this.fcr = byte & 0xc9;
    // Changing FIFO enable clears both FIFOs (PC16550D, FCR bit 0).
    if (wasEnabled !== this.fifoEnabled() || (byte & FCR_CLEAR_RX) !== 0) this.rx = [];
    if (wasEnabled !== this.fifoEnabled() || (byte & FCR_CLEAR_TX) !== 0) {
      if (this.tx.length > 0) this.thrPending = true;
      this.tx = [];
    }
  }

  private writeMcr(value: number): void {
    const before = this.msrStatus();
    this.mcr = value;
    const after = this.msrStatus();
    const changed = before ^ after;
    // Delta bits: DCTS, DDSR for any change; TERI on RI's trailing edge; DDCD for any change.
    let delta = 0;
    if (changed & 0x10) delta |= 0x01;
    if (changed & 0x20) delta |= 0x02;
    if (before & 0x40 && !(after & 0x40)) delta |= 0x04;
    if (changed & 0x80) delta |= 0x08;
    this.msrDelta |= delta;
  }

  private msrStatus(): number {
    if (!this.loopback()) return MSR_CONNECTED;
    const m = this.mcr;
    return ((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4);
  }

  private lsr(): number {
    let v = this.lsrErrors;
    if (this.rx.length > 0) v |= UART_LSR.DR;
    if (this.tx.length === 0) v |= UART_LSR.THRE | UART_LSR.TEMT;
    return v;
  }

  /** The highest-priority pending interrupt (PC16550D, Table 4). */
  private identify(): number {
    if (this.ier & IER_ELSI && this.lsrErrors !== 0) return UART_IIR.RLS;
    if (this.ier & IER_ERBFI && this.rx.length > 0) {
      if (!this.fifoEnabled()) return UART_IIR.RDA;
      const trigger = TRIGGER_LEVELS[this.fcr >> 6] ?? 1;
      return this.rx.length >= trigger ? UART_IIR.RDA : UART_IIR.CTI;
    }
    if (this.ier & IER_ETBEI && this.thrPending) return UART_IIR.THRE;
    if (this.ier & IER_EDSSI && this.msrDelta !== 0) return UART_IIR.MSR;
    return UART_IIR.NONE;
  }

  private readIir(): number {
    const id = this.identify();
    // Reading IIR clears THRE when it is the source reported (PC16550D, Table 4).
    if (id === UART_IIR.THRE) this.thrPending = false;
    return id | (this.fifoEnabled() ? IIR_FIFO_BITS : 0);
  }

  private update(): void {
    const level = this.identify() !== UART_IIR.NONE;
    if (level !== this.level) {
      this.level = level;
      this.irq.set(level);
    }
  }

  /** The UART's whole state: registers, both FIFOs, pending conditions. */
  save(): DeviceState {
    const w = new StateWriter()
      .u8(this.ier)
      .u8(this.lcr)
      .u8(this.mcr)
      .u8(this.scr)
      .u8(this.dll)
      .u8(this.dlm)
      .u8(this.fcr)
      .u8(this.lsrErrors)
      .u8(this.msrDelta)
      .bool(this.thrPending)
      .bytes(Uint8Array.from(this.rx))
      .bytes(Uint8Array.from(this.tx));
    return { version: STATE_VERSION, bytes: w.finish() };
  }

  /**
   * Replaces the UART's state and drives the interrupt line to match it.
   * @throws DeviceStateError on an unknown version or malformed bytes (the UART is unchanged).
   */
  restore(state: DeviceState): void {
    const r = stateReader(this.name, state, STATE_VERSION);
    const ier = r.u8("IER");
    const lcr = r.u8("LCR");
    const mcr = r.u8("MCR");
    const scr = r.u8("SCR");
    const dll = r.u8("DLL");
    const dlm = r.u8("DLM");
    const fcr = r.u8("FCR");
    const lsrErrors = r.u8("LSR errors");
    const msrDelta = r.u8("MSR deltas");
    const thrPending = r.bool("THRE pending");
    const fifo = (fcr & FCR_ENABLE) !== 0 ? UART_FIFO_SIZE : 1;
    const rx = r.bytes("the RX FIFO", fifo);
    const tx = r.bytes("the TX FIFO", fifo);
    r.end();
    if (ier > 0x0f || mcr > 0x1f || (fcr & ~0xc9) !== 0 || (lsrErrors & ~0x1e) !== 0)
      throw r.fail("a register holds bits the UART never sets");
    if (msrDelta > 0x0f) throw r.fail("MSR deltas hold status bits");
    this.ier = ier;
    this.lcr = lcr;
    this.mcr = mcr;
    this.scr = scr;
    this.dll = dll;
    this.dlm = dlm;
    this.fcr = fcr;
    this.lsrErrors = lsrErrors;
    this.msrDelta = msrDelta;
    this.thrPending = thrPending;
    this.rx = [...rx];
    this.tx = [...tx];
    // Drive the line even if it matches the old level: the new machine's controller may not.
    this.level = this.identify() !== UART_IIR.NONE;
    this.irq.set(this.level);
  }
}
