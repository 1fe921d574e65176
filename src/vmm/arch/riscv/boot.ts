/**
 * The device tree a RISC-V guest receives in `a1` (Documentation/arch/riscv/boot.rst), and the
 * registers a KVM RISC-V guest starts with.
 *
 * Node and property names follow the Linux bindings: Documentation/devicetree/bindings/riscv/
 * cpus.yaml (`riscv,isa`, `riscv,isa-base`, `riscv,isa-extensions`, `mmu-type`, the per-hart
 * `riscv,cpu-intc` interrupt controller) and extensions.yaml, plus the generic /memory and
 * /chosen nodes of the Devicetree Specification v0.4 §3.4–3.6. Linux reads
 * `riscv,isa-extensions` when present and falls back to parsing `riscv,isa`
 * (arch/riscv/kernel/cpufeature.c), so both are written.
 */
import { fdtNode, fdtValue, writeFdt, type FdtNode } from "../../fdt.js";
import { ImageError, hex } from "../../image.js";
import { placeAtTop, type GuestRam, type Region } from "../../guest-memory.js";

/** Options of `riscvDeviceTree()`. */
export interface RiscvDtOptions {
  readonly memBase: bigint;
  readonly memSize: bigint;
  /** ISA string; default `DEFAULT_RISCV_ISA`. */
  readonly isa?: string;
  /** `timebase-frequency` in Hz; default 10 MHz (QEMU virt, kvmtool). */
  readonly timebaseFrequency?: number;
  /** `/chosen/bootargs`; omitted when undefined. */
  readonly bootargs?: string;
  /** `/chosen/stdout-path`; omitted when undefined. */
  readonly stdoutPath?: string;
  /** `/chosen/linux,initrd-start` and `-end` (end exclusive); omitted when undefined. */
  readonly initrd?: { readonly start: bigint; readonly end: bigint };
  /** Harts, numbered 0..n-1; default 1. */
  readonly hartCount?: number;
  /** `mmu-type`; default `"riscv,sv39"`. */
  readonly mmuType?: string;
  /** Extra nodes appended under the root (devices). */
  readonly extraNodes?: readonly FdtNode[];
}

/** The ISA regvisor's soft backend advertises by default (RV64GC + Zicntr). */
export const DEFAULT_RISCV_ISA = "rv64imafdc_zicsr_zifencei_zicntr";
/** Default `timebase-frequency`: 10 MHz, as QEMU virt and kvmtool. */
export const DEFAULT_TIMEBASE_HZ = 10_000_000;

/** An ISA string split as the DT binding wants it. */
export interface RiscvIsa {
  /** `"rv64i"` or `"rv32i"` (the `riscv,isa-base` enum). */
  readonly base: string;
  /** Lower-case extension names, single letters first: `["i", "m", …, "zicsr"]`. */
  readonly extensions: readonly string[];
}

/**
 * Splits an ISA string (`rv64imafdc_zicsr_zifencei`) into base and extensions; `g` expands to
 * `imafd_zicsr_zifencei` (unprivileged spec, "G" = IMAFD + Zicsr + Zifencei).
 * @throws RangeError when the text is not an RV32/RV64 I-based ISA string.
 */
export function parseRiscvIsa(isa: string): RiscvIsa {
  const text = isa.toLowerCase();
  const match = /^rv(32|64)([a-z]+)((?:_[a-z][a-z0-9]*)*)$/.exec(text);
  const letters = match?.[2] ?? "";
  if (match === null || !(letters.startsWith("i") || letters.startsWith("g"))) {
    throw new RangeError(`not a RISC-V ISA string of the form rv64imac_zicsr: "${isa}"`);
  }
  const single: string[] = [];
  const multi = (match[3] ?? "").split("_").filter((s) => s !== "");
  for (const letter of letters) {
    if (letter === "g") {
      single.push("i", "m", "a", "f", "d");
      multi.unshift("zicsr", "zifencei");
    } else {
      single.push(letter);
    }
  }
  const extensions = [...new Set([...single, ...multi])];
  return { base: `rv${match[1] ?? ""}i`, extensions };
}

/** Canonical order of single-letter extensions (unprivileged spec, "ISA Extension Naming"). */
const CANONICAL = "imafdqlcbkjtpvh";

/**
 * An ISA string from extension names (e.g. the enabled `isa_ext.*` registers of a vCPU, as
 * kvmtool builds `riscv,isa` in riscv/fdt.c): letters in canonical order, then Z extensions
 * by category letter and name, then S, then X extensions.
 * @throws RangeError when `i` is missing or a name is not lower-case alphanumeric.
 */
export function riscvIsaString(xlen: 32 | 64, extensions: readonly string[]): string {
  const names = [...new Set(extensions.map((e) => e.toLowerCase()))];
  for (const n of names)
    if (!/^[a-z][a-z0-9]*$/.test(n)) throw new RangeError(`bad extension name "${n}"`);
  if (!names.includes("i")) throw new RangeError("an ISA needs the base I extension");
  const rank = (c: string): number => {
    const i = CANONICAL.indexOf(c);
    return i < 0 ? CANONICAL.length + c.charCodeAt(0) : i;
  };
  const letters = names.filter((n) => n.length === 1).sort((a, b) => rank(a) - rank(b));
  const group = (n: string): number => ({ z: 0, s: 1, x: 2 })[n[0] ?? ""] ?? 3;
  const multi = names
    .filter((n) => n.length > 1)
    .sort((a, b) => {
      const byGroup = group(a) - group(b);
      if (byGroup !== 0) return byGroup;
      const byCategory = group(a) === 0 ? rank(a[1] ?? "") - rank(b[1] ?? "") : 0;
      return byCategory !== 0 ? byCategory : a < b ? -1 : a > b ? 1 : 0;
    });
  return [`rv${xlen}${letters.join("")}`, ...multi].join("_");
}

/**
 * The device tree a RISC-V guest gets: /cpus with one `cpu@N` per hart (each with its
 * `riscv,cpu-intc`), /memory@base and /chosen.
 * @throws RangeError for an invalid ISA string, hart count or size.
 */
export function riscvDeviceTreeNode(options: RiscvDtOptions): FdtNode {
  const isa = options.isa ?? DEFAULT_RISCV_ISA;
  const { base, extensions } = parseRiscvIsa(isa);
  const hartCount = options.hartCount ?? 1;
  if (!Number.isInteger(hartCount) || hartCount < 1 || hartCount > 1024) {
    throw new RangeError(`hartCount must be 1..1024, got ${hartCount}`);
  }
  const cpu = (hart: number): FdtNode =>
    fdtNode(
      `cpu@${hart.toString(16)}`,
      {
        device_type: fdtValue.string("cpu"),
        reg: fdtValue.u32(hart),
        status: fdtValue.string("okay"),
        compatible: fdtValue.string("riscv"),
        "riscv,isa": fdtValue.string(isa.toLowerCase()),
        "riscv,isa-base": fdtValue.string(base),
        "riscv,isa-extensions": fdtValue.strings(extensions),
        "mmu-type": fdtValue.string(options.mmuType ?? "riscv,sv39"),
      },
      [
        fdtNode("interrupt-controller", {
          // An interrupt provider states #address-cells (dtc's interrupt_provider check).
          "#address-cells": fdtValue.u32(0),
          "#interrupt-cells": fdtValue.u32(1),
          "interrupt-controller": fdtValue.empty(),
          compatible: fdtValue.string("riscv,cpu-intc"),
          phandle: fdtValue.u32(hart + 1),
        }),
      ],
    );
  const cpus = fdtNode(
    "cpus",
    {
      "#address-cells": fdtValue.u32(1),
      "#size-cells": fdtValue.u32(0),
      "timebase-frequency": fdtValue.u32(options.timebaseFrequency ?? DEFAULT_TIMEBASE_HZ),
    },
    Array.from({ length: hartCount }, (_, hart) => cpu(hart)),
  );
  const memory = fdtNode(`memory@${options.memBase.toString(16)}`, {
    device_type: fdtValue.string("memory"),
    reg: fdtValue.u64(options.memBase, options.memSize),
  });
  const chosen: Record<string, Uint8Array> = {};
  if (options.bootargs !== undefined) chosen.bootargs = fdtValue.string(options.bootargs);
  if (options.stdoutPath !== undefined) chosen["stdout-path"] = fdtValue.string(options.stdoutPath);
  if (options.initrd !== undefined) {
    // 64-bit values, so the blob's size does not depend on where the initrd lands.
    chosen["linux,initrd-start"] = fdtValue.u64(options.initrd.start);
    chosen["linux,initrd-end"] = fdtValue.u64(options.initrd.end);
  }
  return fdtNode(
    "",
    {
      "#address-cells": fdtValue.u32(2),
      "#size-cells": fdtValue.u32(2),
      compatible: fdtValue.string("regvisor,virt"),
      model: fdtValue.string("regvisor"),
    },
    [cpus, memory, fdtNode("chosen", chosen), ...(options.extraNodes ?? [])],
  );
}

/** `riscvDeviceTreeNode()` serialised as a DTB blob (boot CPU 0). */
export function riscvDeviceTree(options: RiscvDtOptions): Uint8Array {
  return writeFdt(riscvDeviceTreeNode(options));
}

/** A register assignment by catalog name (lookupReg("riscv", name)). */
export interface NamedRegValue {
  readonly name: string;
  readonly value: bigint;
}

/**
 * Where the DTB goes: the top of RAM, 2 MiB aligned as QEMU does (`riscv_compute_fdt_addr`),
 * else 4 KiB aligned when RAM is too small, never over `occupied` (the image).
 * @throws ImageError IMAGE_TOO_BIG when there is no room.
 */
export function placeDeviceTree(ram: GuestRam, size: number, occupied: readonly Region[]): bigint {
  try {
    return placeAtTop(ram, BigInt(size), 2n << 20n, occupied, "the device tree");
  } catch (error) {
    if (!(error instanceof ImageError)) throw error;
    return placeAtTop(ram, BigInt(size), 0x1000n, occupied, "the device tree");
  }
}

/**
 * Start registers of a KVM RISC-V guest (kvmtool riscv/kvm-cpu.c, `kvm_cpu__reset_vcpu`;
 * boot.rst): `pc` = entry, `a0` = hart id, `a1` = DTB address, S-mode (`core.mode` = 1).
 * @throws ImageError IMAGE_BAD_ENTRY when the entry is not 2-byte aligned (IALIGN=16 with C).
 */
export function riscvBootRegs(entry: bigint, dtbAddr: bigint, hartId = 0): NamedRegValue[] {
  if ((entry & 1n) !== 0n) {
    throw new ImageError(
      "IMAGE_BAD_ENTRY",
      `Cannot start the guest at ${hex(entry)}: a RISC-V entry point must be 2-byte aligned`,
    );
  }
  return [
    { name: "core.pc", value: entry },
    { name: "core.a0", value: BigInt(hartId) },
    { name: "core.a1", value: dtbAddr },
    { name: "core.mode", value: 1n },
  ];
}
