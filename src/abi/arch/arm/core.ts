/**
 * 32-bit ARM core registers: every 32-bit word of struct kvm_regs, addressed by word offset
 * (arch/arm/include/uapi/asm/kvm.h, `KVM_REG_ARM_CORE_REG(name) = offsetof(kvm_regs, name) / 4`).
 *
 * struct kvm_regs (152 bytes, 38 words): usr_regs (struct pt_regs: uregs[18] = R0..R12,
 * SP_usr, LR_usr, PC, CPSR, ORIG_R0) @0, svc_regs[3] @72, abt_regs[3] @84, und_regs[3] @96,
 * irq_regs[3] @108 (each SP, LR, SPSR of that mode), fiq_regs[8] @120 (R8..R12 = fp/ip,
 * SP, LR, SPSR of FIQ mode). KVM accepts only U32 ids for indices 0..37
 * (get_core_reg/set_core_reg in arch/arm/kvm/guest.c) and lists all 38.
 */
import type { RowSpec } from "../table.js";
import { ARM_COPROC, armId } from "./encoding.js";

/** Number of 32-bit words in struct kvm_regs. */
export const ARM_CORE_WORDS = 38;

/** Names in word order, with aliases. */
const CORE_NAMES: readonly (readonly [string, ...string[]])[] = [
  ...Array.from({ length: 13 }, (_, n): [string] => [`R${n}`]),
  ["SP_USR", "R13", "SP"],
  ["LR_USR", "R14", "LR"],
  ["PC", "R15"],
  ["CPSR"],
  ["ORIG_R0"],
  ...["SVC", "ABT", "UND", "IRQ"].flatMap((mode): [string][] => [
    [`SP_${mode}`],
    [`LR_${mode}`],
    [`SPSR_${mode}`],
  ]),
  ["R8_FIQ"],
  ["R9_FIQ"],
  ["R10_FIQ"],
  ["FP_FIQ", "R11_FIQ"],
  ["IP_FIQ", "R12_FIQ"],
  ["SP_FIQ"],
  ["LR_FIQ"],
  ["SPSR_FIQ"],
];

/** Core rows in struct order (the order KVM_GET_REG_LIST reported them in). */
export function armCoreRows(): RowSpec[] {
  return CORE_NAMES.map(([name, ...aliases], index) => ({
    id: armId(ARM_COPROC.CORE, 4, index),
    name,
    class: "core",
    fields: { group: "core", offset: index * 4, index },
    aliases,
  }));
}
