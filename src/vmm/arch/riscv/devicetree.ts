/**
 * Device tree nodes of the RISC-V machine's devices, laid out as QEMU's `virt` board does
 * (hw/riscv/virt.c, as facts): a PLIC at 0x0c000000 with one S-mode context (interrupt 9 of
 * each hart's `riscv,cpu-intc`) per hart, a 16550A UART at 0x10000000 on PLIC source 10, and
 * virtio-mmio transports at 0x10001000 + n·0x1000 on sources 1 + n, all under a `simple-bus`.
 * Bindings: Documentation/devicetree/bindings/interrupt-controller/sifive,plic-1.0.0.yaml,
 * serial/8250.yaml, virtio/mmio.yaml. `riscvMachineDeviceTree` is the whole tree: harts,
 * memory, `/chosen` (bootargs, stdout-path to the UART, the initrd) and these devices.
 */
import { fdtNode, fdtValue, type FdtNode } from "../../fdt.js";
import type { GuestRam } from "../../guest-memory.js";
import { riscvDeviceTree } from "./boot.js";

/** PLIC base and size (QEMU virt `VIRT_PLIC`). */
export const PLIC_BASE = 0x0c00_0000n;
export const PLIC_SIZE = 0x60_0000n;
/** The first UART (QEMU virt `VIRT_UART0`), its PLIC source and its input clock. */
export const UART0_BASE = 0x1000_0000n;
export const UART0_SIZE = 0x100n;
export const UART0_IRQ = 10;
export const UART_CLOCK_HZ = 3_686_400;
/** virtio-mmio transports (QEMU virt `VIRT_VIRTIO`): n at base + n·stride, source 1 + n. */
export const VIRTIO_MMIO_BASE = 0x1000_1000n;
export const VIRTIO_MMIO_STRIDE = 0x1000n;
export const VIRTIO_MMIO_FIRST_IRQ = 1;
/** At most 8 transports, as QEMU virt (sources 1..8, below the UART's 10). */
export const VIRTIO_MMIO_MAX = 8;
/** PLIC sources the machine declares (`riscv,ndev`), as QEMU virt (`VIRT_IRQCHIP_NUM_SOURCES`). */
export const PLIC_SOURCES = 95;
/** Interrupt number of a hart's supervisor external interrupt (privileged spec, `mip.SEIP`). */
export const IRQ_S_EXT = 9;

/** Which devices the machine has, for its device tree. */
export interface RiscvDeviceLayout {
  readonly hartCount: number;
  readonly uart: boolean;
  /** Number of virtio-mmio transports. */
  readonly virtio: number;
}

/** Phandle of hart n's interrupt controller (riscv-boot.ts gives cpu n's intc n + 1). */
const intcPhandle = (hart: number): number => hart + 1;

/** The PLIC's phandle: after every hart's. */
export const plicPhandle = (hartCount: number): number => hartCount + 1;

/** Guest-physical base of virtio-mmio transport `n`. */
export function virtioMmioBase(n: number): bigint {
  return VIRTIO_MMIO_BASE + BigInt(n) * VIRTIO_MMIO_STRIDE;
}

const reg = (base: bigint, size: bigint): Uint8Array => fdtValue.u64(base, size);

/** Path of the UART node, for `/chosen/stdout-path`. */
export const UART0_PATH = `/soc/serial@${UART0_BASE.toString(16)}`;

/** The `/soc` bus with the PLIC, the UART and the virtio transports of `layout`. */
export function riscvSocNode(layout: RiscvDeviceLayout): FdtNode {
  const plic = plicPhandle(layout.hartCount);
  const contexts = Array.from({ length: layout.hartCount }, (_, hart) => [
    intcPhandle(hart),
    IRQ_S_EXT,
  ]).flat();
  const children: FdtNode[] = [
    fdtNode(`plic@${PLIC_BASE.toString(16)}`, {
      compatible: fdtValue.strings(["sifive,plic-1.0.0", "riscv,plic0"]),
      reg: reg(PLIC_BASE, PLIC_SIZE),
      "#address-cells": fdtValue.u32(0),
      "#interrupt-cells": fdtValue.u32(1),
      "interrupt-controller": fdtValue.empty(),
      "interrupts-extended": fdtValue.u32(...contexts),
      "riscv,ndev": fdtValue.u32(PLIC_SOURCES),
      phandle: fdtValue.u32(plic),
    }),
  ];
  if (layout.uart) {
    children.push(
      fdtNode(`serial@${UART0_BASE.toString(16)}`, {
        compatible: fdtValue.string("ns16550a"),
        reg: reg(UART0_BASE, UART0_SIZE),
        "clock-frequency": fdtValue.u32(UART_CLOCK_HZ),
        interrupts: fdtValue.u32(UART0_IRQ),
        "interrupt-parent": fdtValue.u32(plic),
      }),
    );
  }
  for (let n = 0; n < layout.virtio; n++) {
    const base = virtioMmioBase(n);
    children.push(
      fdtNode(`virtio_mmio@${base.toString(16)}`, {
        compatible: fdtValue.string("virtio,mmio"),
        reg: reg(base, VIRTIO_MMIO_STRIDE),
        interrupts: fdtValue.u32(VIRTIO_MMIO_FIRST_IRQ + n),
        "interrupt-parent": fdtValue.u32(plic),
      }),
    );
  }
  return fdtNode(
    "soc",
    {
      "#address-cells": fdtValue.u32(2),
      "#size-cells": fdtValue.u32(2),
      compatible: fdtValue.string("simple-bus"),
      ranges: fdtValue.empty(),
    },
    children,
  );
}

/** The vCPU's facts the tree carries (kvmtool riscv/fdt.c reads them from the vCPU). */
export interface RiscvCpuFacts {
  readonly isa?: string;
  readonly timebaseFrequency?: number;
  readonly initrd: { readonly start: bigint; readonly end: bigint } | undefined;
}

/** The machine's DTB for `ram` and the request's harts, devices and command line. */
export function riscvMachineDeviceTree(
  ram: GuestRam,
  shape: { readonly hartCount: number; readonly virtio: number; readonly cmdline?: string },
  facts: RiscvCpuFacts,
): Uint8Array {
  return riscvDeviceTree({
    memBase: ram.base,
    memSize: ram.size,
    hartCount: shape.hartCount,
    stdoutPath: UART0_PATH,
    extraNodes: [riscvSocNode({ hartCount: shape.hartCount, uart: true, virtio: shape.virtio })],
    ...(facts.isa === undefined ? {} : { isa: facts.isa }),
    ...(facts.timebaseFrequency === undefined
      ? {}
      : { timebaseFrequency: facts.timebaseFrequency }),
    ...(shape.cmdline === undefined ? {} : { bootargs: shape.cmdline }),
    ...(facts.initrd === undefined ? {} : { initrd: facts.initrd }),
  });
}
