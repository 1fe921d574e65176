/**
 * The RISC-V machine's devices on its MMIO bus, at the addresses of ./devicetree.ts: the PLIC,
 * whose context n drives hart n's supervisor external interrupt (`KVM_INTERRUPT` through
 * `Vcpu.setExternalInterrupt`), and the 16550A UART on PLIC source 10.
 *
 * The UART's host side is the machine's console sink with backpressure: while the sink has not
 * drained, the UART is told that the host took nothing, so its TX FIFO fills, LSR.THRE stays
 * clear and the guest waits, as on hardware; once the sink drains, the FIFO is offered again
 * (and the THRE interrupt follows). Input is pulled from the machine's input source into the
 * RX FIFO, only as much as fits, when the guest makes room and on the machine's poll — but only
 * once the guest has enabled the receive interrupt (IER.ERBFI, what Linux's 8250 driver does
 * when the tty is opened): until then the input belongs to the SBI console, so a guest on
 * `console=hvc0` whose kernel merely probed the UART still reads every byte.
 */
import type { Vcpu } from "../../../backends/vcpu.js";
import { MmioBus } from "../../devices/bus.js";
import { Plic } from "../../devices/plic.js";
import type { Device, DmaMemory } from "../../devices/types.js";
import { Uart16550 } from "../../devices/uart16550.js";
import { VirtioBlk } from "../../devices/virtio/blk.js";
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
}

/** Builds the PLIC, the UART and the virtio-blk devices for `vcpus` and maps them. */
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
  let waiting = false;
  let eof = false;
  const uart: Uart16550 = new Uart16550("uart0", plic.irqLine(UART0_IRQ), {
    write(bytes) {
      if (waiting) return 0;
      if (!io.console.write(bytes)) {
        waiting = true;
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
  return { bus, plic, uart, all, pollInput };
}
