/**
 * The device tree of the RISC-V machine: harts, memory, `/chosen` (bootargs, stdout-path to the
 * UART, the initrd) and the `/soc` devices (./devicetree.ts).
 */
import type { GuestRam } from "../../guest-memory.js";
import { riscvDeviceTree } from "./boot.js";
import { UART0_PATH, riscvSocNode } from "./devicetree.js";

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
