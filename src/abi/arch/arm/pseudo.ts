/**
 * 32-bit ARM rows outside CORE and CP15 (arch/arm/include/uapi/asm/kvm.h and
 * arch/arm/kvm/coproc.c up to Linux 5.6):
 *
 * - VFP (coproc 0x12): D0..D31 (U64, index 0..31; hosts with 16 D registers listed D0..D15)
 *   and the U32 control registers FPSID, FPSCR, MVFR1, MVFR0, FPEXC, FPINST, FPINST2.
 *   FPSID, MVFR0 and MVFR1 were invariant: vfp_set_reg refused any value but the host's.
 * - DEMUX (coproc 0x11, U32): CCSIDR as selected by CSSELR 0..11 (`CSSELR_MAX` 12), also
 *   invariant ("you can't change it", demux_c15_set).
 * - FW (coproc 0x14, U64): PSCI_VERSION, SMCCC_ARCH_WORKAROUND_1 and _2.
 */
import type { RowSpec } from "../table.js";
import { ARM_COPROC, ARM_CSSELR_MAX, ARM_VFP_INDEX, armId } from "./encoding.js";

/** VFP control registers that KVM refused to change. */
const VFP_READ_ONLY = new Set(["FPSID", "MVFR0", "MVFR1"]);

/** VFP rows in KVM_GET_REG_LIST order: D registers, then the control registers. */
export function armVfpRows(): RowSpec[] {
  const d = Array.from({ length: 32 }, (_, n): RowSpec => ({
    id: armId(ARM_COPROC.VFP, 8, n),
    name: `D${n}`,
    class: "vfp",
    fields: { group: "vfp", index: n },
  }));
  const control = Object.entries(ARM_VFP_INDEX).map(([name, index]): RowSpec => ({
    id: armId(ARM_COPROC.VFP, 4, index),
    name,
    class: "vfp",
    fields: { group: "vfp", index },
    readOnly: VFP_READ_ONLY.has(name),
    aliases: [`KVM_REG_ARM_VFP_${name}`],
  }));
  return [...d, ...control];
}

/** Demux rows `CCSIDR(0)` .. `CCSIDR(11)`. */
export function armDemuxRows(): RowSpec[] {
  return Array.from({ length: ARM_CSSELR_MAX }, (_, csselr) => ({
    id: armId(ARM_COPROC.DEMUX, 4, csselr),
    name: `CCSIDR(${csselr})`,
    class: "demux",
    fields: { group: "demux", csselr, level: (csselr >> 1) + 1, ind: csselr & 1 },
    readOnly: true,
  }));
}

/** FW register numbers defined by the 32-bit header (`KVM_REG_ARM_FW_REG(n)`). */
const FW_NAMES = ["PSCI_VERSION", "SMCCC_ARCH_WORKAROUND_1", "SMCCC_ARCH_WORKAROUND_2"];

/** A FW-group row for register `number` (shared with the generic decoder). */
export function armFwRow(number: number, name: string, aliases: string[] = []): RowSpec {
  return {
    id: armId(ARM_COPROC.FW, 8, number),
    name,
    class: "fw",
    fields: { group: "fw", number },
    aliases,
  };
}

/** FW rows. */
export function armFwRows(): RowSpec[] {
  return FW_NAMES.map((name, n) => armFwRow(n, name, [`KVM_REG_ARM_${name}`]));
}
