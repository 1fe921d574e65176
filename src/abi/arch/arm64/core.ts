/**
 * arm64 core registers: the fields of struct kvm_regs, addressed by word offset
 * (arch/arm64/include/uapi/asm/kvm.h, `KVM_REG_ARM_CORE_REG(name) = offsetof(kvm_regs, name) / 4`;
 * layout in docs/kvm-register-abi.md §7.1).
 *
 * struct kvm_regs (864 bytes): user_pt_regs { regs[31], sp, pc, pstate } (8 bytes each) @0,
 * sp_el1 @272, elr_el1 @280, spsr[5] @288 (EL1/SVC, ABT, UND, IRQ, FIQ), then
 * user_fpsimd_state @336 { vregs[32] (16 bytes each), fpsr u32 @848, fpcr u32 @852 }.
 * Only these offsets at exactly these sizes are registers; KVM refuses any other index or
 * size (validate_core_offset in arch/arm64/kvm/guest.c), so the table is complete and the
 * core group has no generic names.
 */
import type { RowSpec } from "../table.js";
import { ARM64_GROUP, arm64Id } from "./encoding.js";

/** Byte offsets of the struct kvm_regs fields (see the header comment). */
export const ARM64_CORE_OFFSET = {
  REGS: 0,
  SP: 248,
  PC: 256,
  PSTATE: 264,
  SP_EL1: 272,
  ELR_EL1: 280,
  SPSR: 288,
  VREGS: 336,
  FPSR: 848,
  FPCR: 852,
} as const;

/** Size of struct kvm_regs in bytes. */
export const ARM64_KVM_REGS_SIZE = 864;

/** Names of spsr[0..4] (`KVM_SPSR_EL1`, `_ABT`, `_UND`, `_IRQ`, `_FIQ`). */
const SPSR_NAMES = ["SPSR_EL1", "SPSR_ABT", "SPSR_UND", "SPSR_IRQ", "SPSR_FIQ"] as const;

function coreRow(name: string, offset: number, size: number, aliases: string[] = []): RowSpec {
  return {
    id: arm64Id(ARM64_GROUP.CORE, size, offset / 4),
    name,
    class: "core",
    fields: { group: "core", offset, index: offset / 4 },
    aliases,
  };
}

/** X register aliases beyond the plain name: the AAPCS64 frame pointer and link register. */
const X_ALIASES: Readonly<Partial<Record<number, string[]>>> = { 29: ["FP"], 30: ["LR"] };

/** Core rows in struct order, which is the order KVM_GET_REG_LIST reports them in. */
export function arm64CoreRows(): RowSpec[] {
  const O = ARM64_CORE_OFFSET;
  const rows: RowSpec[] = [];
  for (let n = 0; n < 31; n++) rows.push(coreRow(`X${n}`, O.REGS + 8 * n, 8, X_ALIASES[n]));
  rows.push(coreRow("SP", O.SP, 8, ["SP_EL0"]));
  rows.push(coreRow("PC", O.PC, 8));
  rows.push(coreRow("PSTATE", O.PSTATE, 8));
  rows.push(coreRow("SP_EL1", O.SP_EL1, 8));
  rows.push(coreRow("ELR_EL1", O.ELR_EL1, 8));
  SPSR_NAMES.forEach((name, i) => {
    rows.push(coreRow(name, O.SPSR + 8 * i, 8, i === 0 ? ["SPSR_SVC"] : []));
  });
  for (let n = 0; n < 32; n++) rows.push(coreRow(`V${n}`, O.VREGS + 16 * n, 16, [`Q${n}`]));
  rows.push(coreRow("FPSR", O.FPSR, 4));
  rows.push(coreRow("FPCR", O.FPCR, 4));
  return rows;
}
