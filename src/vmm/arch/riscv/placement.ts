/**
 * Where a RISC-V guest's boot blobs go, decided before any VM exists so that a Linux Image,
 * an initrd and the device tree that do not fit together are refused up front (issue 11
 * point 10). The device tree is built for real only at start, from the vCPU's own ISA and
 * timebase registers; its slot is sized here from a tree with the same nodes plus slack, and
 * its initrd properties are 64-bit so the addresses do not change its size.
 *
 * Layout, as QEMU does it (hw/riscv/boot.c): the device tree at the top of RAM, 2 MiB aligned
 * where room allows; the initrd right below it, page aligned (Linux needs it inside RAM and
 * clear of the kernel, Documentation/arch/riscv/boot.rst).
 */
import { imageRegions, placeAtTop, type GuestRam } from "../../guest-memory.js";
import type { GuestImage } from "../../image.js";
import { placeDeviceTree } from "./boot.js";
import { riscvMachineDeviceTree } from "./devicetree.js";

/** What shapes the device tree besides the vCPU's own registers. */
export interface RiscvBlobRequest {
  readonly hartCount: number;
  readonly virtio: number;
  readonly cmdline?: string;
  readonly initrd?: Uint8Array;
}

/** Where the device tree and the initrd go. */
export interface RiscvBlobPlan extends RiscvBlobRequest {
  readonly dtbAddr: bigint;
  /** Bytes reserved for the device tree at `dtbAddr`. */
  readonly dtbReserve: number;
  /** Guest-physical address of the initrd, when there is one. */
  readonly initrdAddr?: bigint;
}

const PAGE = 0x1000;
/** Room for a longer ISA string than the default one. */
const DTB_SLACK = 0x1000;

/**
 * Places the device tree and the initrd around `image`.
 * @throws ImageError IMAGE_TOO_BIG when either does not fit in RAM.
 */
export function planRiscvBlobs(
  ram: GuestRam,
  image: GuestImage,
  request: RiscvBlobRequest,
): RiscvBlobPlan {
  const probe = riscvMachineDeviceTree(ram, request, {
    initrd: request.initrd === undefined ? undefined : { start: 0n, end: 0n },
  });
  const dtbReserve = Math.ceil((probe.length + DTB_SLACK) / PAGE) * PAGE;
  const occupied = imageRegions(image);
  const dtbAddr = placeDeviceTree(ram, dtbReserve, occupied);
  if (request.initrd === undefined) return { ...request, dtbAddr, dtbReserve };
  const initrdAddr = placeAtTop(
    ram,
    BigInt(Math.max(request.initrd.length, 1)),
    BigInt(PAGE),
    [...occupied, { label: "the device tree", start: dtbAddr, size: BigInt(dtbReserve) }],
    `the initrd`,
  );
  return { ...request, dtbAddr, dtbReserve, initrdAddr };
}
