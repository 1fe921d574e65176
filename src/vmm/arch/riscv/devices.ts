/**
 * The RISC-V machine's devices on its MMIO bus, at the addresses of ./devicetree.ts: the PLIC,
 * whose context n drives hart n's supervisor external interrupt (`KVM_INTERRUPT` through
 * `Vcpu.setExternalInterrupt`), the 16550A UART on PLIC source 10, one virtio-blk per disk on
 * virtio-mmio transports 0…, and with `--virtio-console` a virtio-console on the next transport.
 *
 * The UART's host side is the machine's console sink with backpressure: while the sink has not
 * drained, the UART is told that the host took nothing, so its TX FIFO fills, LSR.THRE stays
 * clear and the guest waits, as on hardware; once the sink drains, the FIFO is offered again
 * (and the THRE interrupt follows). Input is pulled from the machine's input source into the
 * RX FIFO, only as much as fits, when the guest makes room and on the machine's poll — but only
 * once the guest has enabled the receive interrupt (IER.ERBFI, what Linux's 8250 driver does
 * when the tty is opened): until then the input belongs to the SBI console, so a guest on
 * `console=hvc0` whose kernel merely probed the UART still reads every byte.
 *
 * The virtio console is the guest console when present: its output has the same backpressure
 * (a transmit buffer stays in the ring until the sink takes it, so the guest's writes block when
 * the ring is full), and it takes input ahead of the UART once its driver has posted receive
 * buffers, at most `CONSOLE_INPUT_CHUNK` bytes held between reads. Linux 6.1 names its port 0
 * hvc1 when the SBI console driver (CONFIG_HVC_RISCV_SBI) is built in: that one claims hvc
 * slot 0 at console_initcall (drivers/tty/hvc/hvc_riscv_sbi.c `hvc_instantiate(0, …)`), and the
 * virtio port's vterm number 1 matches no slot, so `hvc_alloc` gives it the first free one
 * (drivers/tty/hvc/hvc_console.c, drivers/char/virtio_console.c `next_vtermno = 1`).
 */
import type { Vcpu } from "../../../backends/vcpu.js";
import { MmioBus } from "../../devices/bus.js";
import { Plic } from "../../devices/plic.js";
import type { Device, DmaMemory } from "../../devices/types.js";
import { Uart16550 } from "../../devices/uart16550.js";
import { VirtioBlk } from "../../devices/virtio/blk.js";
import { VirtioConsole } from "../../devices/virtio/console.js";
import type { BlockBackend } from "../../devices/virtio/disk.js";
import { VIRTIO_MMIO_SIZE } from "../../devices/virtio/mmio.js";
import type { MachineIo } from "../../machine/types.js";
import {
  PLIC_BASE,
  PLIC_SIZE,
  PLIC_SOURCES,
  UART0_BASE,
  UART0_IRQ,
  UART0_SIZE,
  VIRTIO_MMIO_FIRST_IRQ,
  virtioMmioBase,
} from "./devicetree.js";

/** The devices of one RISC-V machine. */
export interface RiscvDevices {
  readonly bus: MmioBus;
  readonly plic: Plic;
  readonly uart: Uart16550;
  /** The virtio console (`--virtio-console`), on transport `disks.length`. */
  readonly console: VirtioConsole | undefined;
  /** Every device, in DEVICE-section order. */
  readonly all: readonly Device[];
  /** Moves pending console input into the UART (called from the machine's poll). */
  pollInput(): void;
}

/** LCR.DLAB and IER.ERBFI (PC16550D register map). */
const LCR = 3;
const LCR_DLAB = 0x80;
const IER = 1;
const IER_ERBFI = 0x01;

/** Whether the guest has enabled receive interrupts (reads of LCR and IER have no side effect). */
function receiving(uart: Uart16550): boolean {
  return (uart.readRegister(LCR) & LCR_DLAB) === 0 && (uart.readRegister(IER) & IER_ERBFI) !== 0;
}

/** What the devices need besides the vCPUs and the console. */
export interface RiscvDeviceOptions {
  /** Guest RAM for DMA. */
  readonly dma: DmaMemory;
  /** One virtio-blk device per disk, at virtio-mmio transport n = its index. */
  readonly disks: readonly BlockBackend[];
  /** A virtio-console after the disks (`--virtio-console`). */
  readonly virtioConsole?: boolean;
}

/** Bytes of stdin read for the virtio console at a time (and held until its buffers take them). */
export const CONSOLE_INPUT_CHUNK = 256;

/**
 * A console host over the machine's sink: takes everything offered until the sink reports it is
 * full, then nothing until it drains, when `resume` offers the device's held output again.
 */
function sinkHost(io: MachineIo, resume: () => void): (bytes: Uint8Array) => number {
  let waiting = false;
  return (bytes) => {
    if (waiting) return 0;
    if (!io.console.write(bytes)) {
      waiting = true;
      void io.console.drained().then(() => {
        waiting = false;
        resume();
      });
    }
    return bytes.length;
  };
}

/** Builds the PLIC, the UART and the virtio devices for `vcpus` and maps them. */
export function riscvDevices(
  vcpus: readonly Vcpu[],
  io: MachineIo,
  options: RiscvDeviceOptions,
): RiscvDevices {
  const plic = new Plic({
    sources: PLIC_SOURCES,
    outputs: vcpus.map((vcpu) => ({
      set: (level: boolean) => {
        vcpu.setExternalInterrupt?.(level);
      },
    })),
  });
  let eof = false;
  /** Input read for the virtio console that its receive buffers have not taken yet. */
  let held: Uint8Array = new Uint8Array(0);
  const uart: Uart16550 = new Uart16550("uart0", plic.irqLine(UART0_IRQ), {
    write: sinkHost(io, () => {
      uart.drain();
    }),
    rxSpace: () => {
      pollInput();
    },
  });
  const n = options.disks.length;
  const vcon =
    options.virtioConsole === true
      ? new VirtioConsole({
          name: "virtio-console0",
          mem: options.dma,
          irq: plic.irqLine(VIRTIO_MMIO_FIRST_IRQ + n),
          host: {
            write: sinkHost(io, () => {
              vcon?.drain();
            }),
            rxSpace: () => {
              pollInput();
            },
          },
        })
      : undefined;
  /** Feeds the virtio console; true when it is the one taking input. */
  const feedConsole = (): boolean => {
    if (vcon === undefined) return false;
    if (held.length === 0 && !eof) {
      const bytes = io.input.read(CONSOLE_INPUT_CHUNK);
      if (bytes === null) eof = true;
      else held = bytes;
    }
    if (held.length > 0) held = held.subarray(vcon.receive(held));
    return true;
  };
  const pollInput = (): void => {
    if (feedConsole()) return;
    if (eof || !receiving(uart)) return;
    const room = uart.rxRoom();
    if (room <= 0) return;
    const bytes = io.input.read(room);
    if (bytes === null) eof = true;
    else if (bytes.length > 0) uart.receive(bytes);
  };
  const bus = new MmioBus();
  bus.register("plic", PLIC_BASE, PLIC_SIZE, plic);
  bus.register("uart0", UART0_BASE, UART0_SIZE, uart);
  const all: Device[] = [plic, uart];
  options.disks.forEach((disk, n) => {
    const name = `virtio-blk${n}`;
    const irq = plic.irqLine(VIRTIO_MMIO_FIRST_IRQ + n);
    const blk = new VirtioBlk({ name, mem: options.dma, irq, disk });
    bus.register(name, virtioMmioBase(n), BigInt(VIRTIO_MMIO_SIZE), blk);
    all.push(blk);
  });
  if (vcon !== undefined) {
    bus.register(vcon.name, virtioMmioBase(n), BigInt(VIRTIO_MMIO_SIZE), vcon);
    all.push(vcon);
  }
  return { bus, plic, uart, console: vcon, all, pollInput };
}
