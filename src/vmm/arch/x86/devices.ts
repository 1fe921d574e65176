/**
 * The x86 machine's devices on its port bus: COM1, the 16550A UART of ../../devices/uart16550.ts
 * (the same model as RISC-V's) at 0x3f8 on ISA IRQ 4; the debug console at 0xe9; and the exit
 * port 0xf4, QEMU's isa-debug-exit location, where the run's exit status is exactly the value
 * written (issue 6), not QEMU's (value << 1) | 1.
 *
 * IRQ 4 goes to the in-kernel irqchip (`Vm.setIrqLine`, KVM_IRQ_LINE: GSIs 0–15 reach both the
 * 8259 pair and the IOAPIC, arch/x86/kvm/irq_comm.c) when the VM has one; without one the line
 * goes nowhere and guests poll LSR/IIR, which the model answers the same way.
 *
 * Output has backpressure as on RISC-V (./../riscv/devices.ts): while the console sink has not
 * drained, the UART is told the host took nothing, so its TX FIFO fills and LSR.THRE stays
 * clear; the exit that filled it is reported congested, so the machine parks the vCPU until the
 * sink drains rather than letting a polling guest spin. Input is pulled from the machine's input
 * source into the RX FIFO, only as much as fits, when the guest reads COM1 with the FIFO empty,
 * when it makes room, and on the machine's poll (for interrupt-driven guests).
 *
 * Accesses wider than the device at a port (a 16-bit IN at 0x3ff, an OUT of a word to 0xe9) are
 * split into byte accesses at consecutive ports, as an 8-bit ISA device sees them.
 */
import { PortBus } from "../../devices/bus.js";
import { DEBUGCON_PORT, DebugConsole } from "../../devices/debugcon.js";
import type { Device, IrqLine } from "../../devices/types.js";
import { Uart16550 } from "../../devices/uart16550.js";
import type { PortDevice, PortOutcome } from "../../io.js";
import type { MachineIo } from "../../machine/types.js";

/** Ports and IRQ of the x86 machine's devices (PC/AT: COM1 0x3f8 on IRQ 4). */
export const X86_PORTS = { com1: 0x3f8, com1Irq: 4, debug: DEBUGCON_PORT, exit: 0xf4 } as const;
/** Ports the UART decodes (PC16550D: 8 byte registers). */
const COM1_SIZE = 8;

/** The devices of one x86 machine. */
export interface X86Devices {
  readonly bus: PortBus;
  readonly uart: Uart16550;
  readonly debug: DebugConsole;
  /** Every device, in DEVICE-section order. */
  readonly all: readonly Device[];
  /** The bus, the exit port and byte splitting, as `serviceIoExit` wants them. */
  readonly ports: PortDevice;
  /** Moves pending console input into the UART (called from the machine's poll). */
  pollInput(): void;
  /** Whether output since the last call found the host side full (and clears it). */
  takeCongested(): boolean;
}

/** Builds COM1 (interrupt output `irq`) and the debug console over the machine's console. */
export function x86Devices(io: MachineIo, irq: IrqLine): X86Devices {
  let waiting = false;
  let congested = false;
  let eof = false;
  const uart: Uart16550 = new Uart16550("uart0", irq, {
    write(bytes) {
      if (waiting) {
        congested = true;
        return 0;
      }
      if (!io.console.write(bytes)) {
        waiting = true;
        congested = true;
        void io.console.drained().then(() => {
          waiting = false;
          uart.drain();
        });
      }
      return bytes.length;
    },
    rxSpace: () => {
      pollInput();
    },
  });
  const pollInput = (): void => {
    if (eof) return;
    const room = uart.rxRoom();
    if (room <= 0) return;
    const bytes = io.input.read(room);
    if (bytes === null) eof = true;
    else if (bytes.length > 0) uart.receive(bytes);
  };
  const debug = new DebugConsole("debugcon", (bytes) => {
    const took = io.console.write(bytes);
    if (!took) congested = true;
    return took;
  });
  const bus = new PortBus();
  bus.register("uart0", X86_PORTS.com1, COM1_SIZE, uart);
  bus.register("debugcon", X86_PORTS.debug, 1, debug);
  const ports = x86PortDevice(bus, (port) => {
    // A polled guest reads LSR or RBR: have stdin's bytes there if the FIFO is empty.
    if (port >= X86_PORTS.com1 && port < X86_PORTS.com1 + COM1_SIZE && uart.rxRoom() > 0) {
      pollInput();
    }
  });
  return {
    bus,
    uart,
    debug,
    all: [uart, debug],
    ports,
    pollInput,
    takeCongested() {
      const was = congested;
      congested = false;
      return was;
    },
  };
}

/** What a read from an empty ISA bus returns: every data line pulled high. */
const allOnes = (size: number): number => (size === 4 ? 0xffff_ffff : (1 << (8 * size)) - 1);

/**
 * The port bus plus the exit port as a `PortDevice`; `beforeIn` runs before each IN byte.
 * An access no device takes whole is split into byte accesses.
 */
export function x86PortDevice(bus: PortBus, beforeIn?: (port: number) => void): PortDevice {
  return {
    ioIn(port, size) {
      beforeIn?.(port);
      const whole = bus.read(port, size);
      if (whole !== undefined || size === 1) return whole;
      let value = 0;
      let claimed = false;
      for (let i = 0; i < size; i++) {
        if (i > 0) beforeIn?.(port + i);
        const byte = bus.read(port + i, 1);
        if (byte !== undefined) claimed = true;
        value |= (byte ?? 0xff) << (8 * i);
      }
      return claimed ? value >>> 0 : undefined;
    },
    ioOut(port, size, value): PortOutcome {
      if (port === X86_PORTS.exit) {
        return { kind: "exit", status: (value & allOnes(size)) >>> 0 };
      }
      if (bus.write(port, size, value)) return { kind: "handled" };
      if (size === 1) return { kind: "unhandled" };
      let claimed = false;
      for (let i = 0; i < size; i++) {
        if (bus.write(port + i, 1, (value >>> (8 * i)) & 0xff)) claimed = true;
      }
      return { kind: claimed ? "handled" : "unhandled" };
    },
  };
}
