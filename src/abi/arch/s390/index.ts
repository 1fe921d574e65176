/**
 * The s390 register catalog (arch/s390/include/uapi/asm/kvm.h, arch/s390/kvm/kvm-s390.c).
 *
 * `id = 0x5000000000000000 | size | number`. kvm_arch_vcpu_ioctl_{get,set}_one_reg switch on
 * the whole id, so the size is part of the identity and an id that is not in this table is not
 * a register (EINVAL): there are no generic names, and `decode()` answers `undefined` for every
 * id without a row. `fields` is `{ index }` (the low 32 bits).
 */
import { makeRegId } from "../../regid.js";
import type { RowSpec } from "../table.js";
import { makeCatalog } from "../table.js";

/** [name, number, size in bytes, class] for every KVM_REG_S390_* id. */
const S390_REGS = [
  ["TODPR", 1, 4, "timer"],
  ["EPOCHDIFF", 2, 8, "timer"],
  ["CPU_TIMER", 3, 8, "timer"],
  ["CLOCK_COMP", 4, 8, "timer"],
  ["PFTOKEN", 5, 8, "pfault"],
  ["PFCOMPARE", 6, 8, "pfault"],
  ["PFSELECT", 7, 8, "pfault"],
  ["PP", 8, 8, "misc"],
  ["GBEA", 9, 8, "misc"],
] as const;

const rows = (): RowSpec[] =>
  S390_REGS.map(([name, index, size, cls]) => ({
    id: makeRegId("s390", size, BigInt(index)),
    name,
    class: cls,
    fields: { index },
    aliases: [`KVM_REG_S390_${name}`],
  }));

/** The s390 catalog. */
export const catalog = makeCatalog({
  arch: "s390",
  title: "s390",
  classes: ["timer", "pfault", "misc"],
  rows,
  decodeGeneric: () => undefined,
  parseGenericName: () => undefined,
});
