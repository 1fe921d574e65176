/**
 * arm64 rows outside the core and sysreg groups (arch/arm64/include/uapi/asm/kvm.h;
 * docs/kvm-register-abi.md §7.4–7.6):
 *
 * - FW (group 0x14, U64): PSCI_VERSION and the three SMCCC_ARCH_WORKAROUND levels.
 * - FW_FEAT_BMAP (group 0x16, U64): the hypercall-service bitmaps (VM-scoped).
 * - SVE (group 0x15): Z0..Z31 (U2048), P0..P15 and FFR (U256) at slice 0, and SVE_VLS (U512).
 *   Only slice 0 exists in 6.18; other slices decode generically (decode.ts).
 * - DEMUX (group 0x11, U32): CCSIDR as selected by CSSELR 0..13, named `CCSIDR(n)`.
 *
 * Fields: FW `{ group: "fw", number }`, bitmaps `{ group: "fw_feat_bmap", number }`, SVE
 * `{ group: "sve", kind: "z" | "p" | "ffr" | "vls", n, slice }` (VLS has no n/slice),
 * demux `{ group: "demux", csselr, level, ind }` with level 1..7 and ind 1 for the
 * instruction cache (CSSELR_EL1.{Level, InD}).
 */
import type { RowSpec } from "../table.js";
import {
  ARM64_CSSELR_MAX,
  ARM64_GROUP,
  ARM64_SVE_INDEX,
  ARM64_SVE_SIZE,
  arm64Id,
} from "./encoding.js";

/** FW register numbers (`KVM_REG_ARM_FW_REG(n)`). */
const FW_NAMES = [
  "PSCI_VERSION",
  "SMCCC_ARCH_WORKAROUND_1",
  "SMCCC_ARCH_WORKAROUND_2",
  "SMCCC_ARCH_WORKAROUND_3",
] as const;

/** FW_FEAT_BMAP register numbers (`KVM_REG_ARM_FW_FEAT_BMAP_REG(n)`). */
const BMAP_NAMES = ["STD_BMAP", "STD_HYP_BMAP", "VENDOR_HYP_BMAP", "VENDOR_HYP_BMAP_2"] as const;

/** A FW-group row for register `number` (shared with the generic decoder). */
export function fwRow(number: number, name: string, aliases: string[] = []): RowSpec {
  return {
    id: arm64Id(ARM64_GROUP.FW, 8, number),
    name,
    class: "fw",
    fields: { group: "fw", number },
    aliases,
  };
}

/** A FW_FEAT_BMAP-group row for register `number` (shared with the generic decoder). */
export function bmapRow(number: number, name: string, aliases: string[] = []): RowSpec {
  return {
    id: arm64Id(ARM64_GROUP.FW_FEAT_BMAP, 8, number),
    name,
    class: "fw_feat_bmap",
    fields: { group: "fw_feat_bmap", number },
    aliases,
  };
}

/** Firmware rows in KVM_GET_REG_LIST order: the FW group, then the bitmaps. */
export function arm64FwRows(): RowSpec[] {
  return [
    ...FW_NAMES.map((name, n) => fwRow(n, name, [`KVM_REG_ARM_${name}`])),
    ...BMAP_NAMES.map((name, n) => bmapRow(n, name, [`KVM_REG_ARM_${name}`])),
  ];
}

/** Which SVE register file a Z/P/FFR id addresses. */
export type SveKind = "z" | "p" | "ffr";

/** Name of an SVE register slice: `Z3`, `P2`, `FFR` at slice 0, `Z3[1]`, `FFR[1]` beyond. */
export function sveName(kind: SveKind, n: number, slice: number): string {
  const base = kind === "ffr" ? "FFR" : `${kind.toUpperCase()}${n}`;
  return slice === 0 ? base : `${base}[${slice}]`;
}

/** The row for SVE register `kind`/`n` at `slice` (shared with the generic decoder). */
export function sveRow(kind: SveKind, n: number, slice: number): RowSpec {
  const index =
    kind === "z"
      ? ARM64_SVE_INDEX.Z | (n << 5) | slice
      : kind === "p"
        ? ARM64_SVE_INDEX.P | (n << 5) | slice
        : ARM64_SVE_INDEX.FFR | slice;
  const size =
    kind === "z" ? ARM64_SVE_SIZE.Z : kind === "p" ? ARM64_SVE_SIZE.P : ARM64_SVE_SIZE.FFR;
  return {
    id: arm64Id(ARM64_GROUP.SVE, size, index),
    name: sveName(kind, n, slice),
    class: "sve",
    fields: { group: "sve", kind, n, slice },
  };
}

/** SVE rows in KVM_GET_REG_LIST order: VLS, Z0..Z31, P0..P15, FFR (all slice 0). */
export function arm64SveRows(): RowSpec[] {
  const vls: RowSpec = {
    id: arm64Id(ARM64_GROUP.SVE, ARM64_SVE_SIZE.VLS, ARM64_SVE_INDEX.VLS),
    name: "SVE_VLS",
    class: "sve",
    fields: { group: "sve", kind: "vls" },
    aliases: ["KVM_REG_ARM64_SVE_VLS"],
  };
  const z = Array.from({ length: 32 }, (_, n) => sveRow("z", n, 0));
  const p = Array.from({ length: 16 }, (_, n) => sveRow("p", n, 0));
  return [vls, ...z, ...p, sveRow("ffr", 0, 0)];
}

/** Demux rows `CCSIDR(0)` .. `CCSIDR(13)` (U32, demux id 0 = CCSIDR). */
export function arm64DemuxRows(): RowSpec[] {
  return Array.from({ length: ARM64_CSSELR_MAX }, (_, csselr) => ({
    id: arm64Id(ARM64_GROUP.DEMUX, 4, csselr),
    name: `CCSIDR(${csselr})`,
    class: "demux",
    fields: { group: "demux", csselr, level: (csselr >> 1) + 1, ind: csselr & 1 },
  }));
}
