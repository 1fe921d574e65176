/**
 * Everything `regvisor run FILE` decides before a backend exists: which loader, which
 * architecture, where every byte goes in guest RAM, and the start registers — validated as a
 * whole, so a bad image is refused before a VM is created (issue 6, "rejected before the guest
 * starts"). `writeBootPlan()` then fills the backend's RAM; the registers are applied by the
 * caller (RISC-V: ONE_REG by catalog name; x86: KVM_SET_REGS / KVM_SET_SREGS fields).
 */
import { createRequire } from "node:module";
import { isElf, loadElf } from "./elf.js";
import {
  checkEntry,
  checkRegions,
  imageRegions,
  ramBaseFor,
  writeImage,
  type GuestBlob,
  type GuestRam,
  type RamViews,
} from "./guest-memory.js";
import {
  ImageError,
  headOf,
  loadFlat,
  type GuestFile,
  type GuestImage,
  type ImageArch,
} from "./image.js";
import { isLinuxImage, loadLinuxImage } from "./arch/riscv/linux-image.js";
import { riscvBootRegs, type NamedRegValue } from "./arch/riscv/boot.js";
import { planRiscvBlobs, type RiscvBlobPlan } from "./arch/riscv/placement.js";
import { OptionValueError } from "./size.js";
import type * as X86Boot from "./x86-boot.js";
import type { X86BootState, X86Mode } from "./x86-boot.js";

const require = createRequire(import.meta.url);

function isX86Boot(module: unknown): module is typeof X86Boot {
  return typeof module === "object" && module !== null && "x86BootState" in module;
}

/**
 * x86's boot structures (GDT, TSS, page tables: ./x86-boot.ts), loaded by the first x86 plan: a
 * RISC-V boot never builds them (start-up time counts in every boot, issue 13). `planBoot` is
 * synchronous, so this is Node's synchronous `require()` of an ES module, as
 * src/abi/catalog.ts loads the register catalogs (a literal one, which the CLI bundle follows).
 */
function x86Boot(): typeof X86Boot {
  const module: unknown = require("./x86-boot.js");
  if (!isX86Boot(module)) throw new Error("Cannot load the x86 boot structures: unexpected module");
  return module;
}

/** What the command line asked for. */
export interface BootRequest {
  /** The guest file's bytes, or the file itself, read as far as the plan needs (./image.ts). */
  readonly file: Uint8Array | GuestFile;
  /** The architecture the selected backend runs; required for flat binaries. */
  readonly arch?: ImageArch;
  /** Guest RAM size (see `parseMemSize`). */
  readonly memSize: bigint;
  /** Flat binaries only: `--load-addr` and `--entry` (default: the load address). */
  readonly loadAddr?: bigint;
  readonly entry?: bigint;
  /** x86 only: `--x86-mode` (default: `defaultX86Mode(image)`). */
  readonly x86Mode?: X86Mode;
  /** RISC-V only: `/chosen/bootargs` (`--cmdline`). */
  readonly cmdline?: string;
  /** RISC-V only: the initial ramdisk (`--initrd`). */
  readonly initrd?: Uint8Array;
  /** vCPUs (`--cpus`); default 1. */
  readonly cpus?: number;
  /** RISC-V: virtio-mmio transports the machine will have (their device tree nodes). */
  readonly virtioDevices?: number;
}

interface PlanCommon {
  readonly ram: GuestRam;
  readonly image: GuestImage;
  /** VMM-made bytes to write with the image (DTB, GDT, page tables). */
  readonly blobs: readonly GuestBlob[];
}

/** A validated plan, per architecture. */
export type BootPlan =
  | (PlanCommon & {
      readonly arch: "riscv";
      /** pc, a0, a1, mode by catalog name. */
      readonly regs: readonly NamedRegValue[];
      readonly dtbAddr: bigint;
      /** Where the device tree and the initrd go; the tree itself is built at start. */
      readonly riscv: RiscvBlobPlan;
    })
  | (PlanCommon & { readonly arch: "x86"; readonly x86: X86BootState });

const ARCH_LABEL: Readonly<Record<ImageArch, string>> = { x86: "x86", riscv: "RISC-V" };

/**
 * Loads, places and validates a guest: the result can be written without further checks.
 * @throws ImageError for a bad, foreign or misplaced image; OptionValueError for options that
 *   do not apply (`--load-addr` with an ELF, none with a flat binary, an x86 mode on RISC-V).
 */
export function planBoot(request: BootRequest): BootPlan {
  const image = loadImage(request);
  const arch = image.arch ?? request.arch;
  if (arch === undefined) {
    throw new OptionValueError(
      "--backend",
      "a flat binary needs --backend to say which architecture it is for",
    );
  }
  if (request.arch !== undefined && arch !== request.arch) {
    throw new ImageError(
      "IMAGE_WRONG_ARCH",
      `Cannot run this ELF: it is for ${ARCH_LABEL[arch]}, but the selected backend runs ${ARCH_LABEL[request.arch]} guests`,
    );
  }
  const ram: GuestRam = { base: ramBaseFor(arch), size: request.memSize };
  checkRegions(ram, imageRegions(image));
  checkEntry(ram, image.entry);
  if (arch === "riscv") {
    if (request.x86Mode !== undefined)
      throw new OptionValueError("--x86-mode", "applies to x86 guests only");
    const riscv = planRiscvBlobs(ram, image, {
      hartCount: request.cpus ?? 1,
      virtio: request.virtioDevices ?? 0,
      ...(request.cmdline === undefined ? {} : { cmdline: request.cmdline }),
      ...(request.initrd === undefined ? {} : { initrd: request.initrd }),
    });
    const { dtbAddr } = riscv;
    const regs = riscvBootRegs(image.entry, dtbAddr);
    return { arch, ram, image, blobs: [], dtbAddr, regs, riscv };
  }
  if (request.initrd !== undefined)
    throw new OptionValueError("--initrd", "applies to RISC-V Linux guests only");
  const { defaultX86Mode, x86BootState } = x86Boot();
  const x86 = x86BootState({
    mode: request.x86Mode ?? defaultX86Mode(image),
    entry: image.entry,
    ram,
  });
  checkRegions(ram, [...imageRegions(image), ...x86.reserved]);
  return { arch, ram, image, blobs: x86.blobs, x86 };
}

/**
 * Writes a plan's image and blobs into RAM (`memory[i]` is guest-physical `ram.base + i`).
 * @throws RangeError when `memory` is not `plan.ram.size` bytes.
 */
export function writeBootPlan(plan: BootPlan, memory: Uint8Array | RamViews): void {
  writeImage(plan.ram, memory, plan.image, { blobs: plan.blobs });
}

function loadImage(request: BootRequest): GuestImage {
  // Checked first: an empty file is neither an ELF nor a flat binary, whatever the options say.
  if (request.file.length === 0)
    throw new ImageError("IMAGE_EMPTY", "Cannot load image: the file is empty (0 bytes)");
  if (isLinuxImage(request.file) && request.loadAddr === undefined) {
    if (request.entry !== undefined)
      throw new OptionValueError(
        "--entry",
        "applies to flat binaries; a Linux Image starts at its first byte",
      );
    if (request.arch !== undefined && request.arch !== "riscv") {
      throw new ImageError(
        "IMAGE_WRONG_ARCH",
        "Cannot run this Linux Image: it is for RISC-V, but the selected backend runs x86 guests",
      );
    }
    return loadLinuxImage(request.file, ramBaseFor("riscv"));
  }
  if (isElf(headOf(request.file))) {
    if (request.loadAddr !== undefined)
      throw new OptionValueError("--load-addr", "applies to flat binaries, not ELF files");
    if (request.entry !== undefined)
      throw new OptionValueError("--entry", "applies to flat binaries; an ELF names its entry");
    const { file } = request;
    return loadElf(file instanceof Uint8Array ? file : file.readAll());
  }
  if (request.loadAddr === undefined) {
    throw new OptionValueError(
      "--load-addr",
      "the file is not an ELF file; to run it as a flat binary, give --load-addr (and --entry if it does not start there)",
    );
  }
  return loadFlat(request.file, request.loadAddr, request.entry ?? request.loadAddr);
}
