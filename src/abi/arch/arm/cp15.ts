/**
 * Architectural names of AArch32 CP15 registers (Arm ARM for Armv7-A/Armv8-A AArch32;
 * kvm tables in arch/arm/kvm/coproc.c, coproc_a15.c, coproc_a7.c up to Linux 5.6).
 *
 * 32-bit entries are `[name, crn, opc1, crm, opc2]` (MRC p15, opc1, Rt, CRn, CRm, opc2);
 * 64-bit entries are `[name, opc1, crm]` (MRRC p15, opc1, Rt, Rt2, CRm). A 64-bit view of a
 * register that also has a 32-bit form gets the suffix `_64` (`TTBR0_64`, `PAR_64`).
 *
 * Read-only rows are the "invariant" registers of coproc.c (MIDR, CTR, TCMTR, TLBTR, REVIDR,
 * ID_PFR0/1, ID_DFR0, ID_AFR0, ID_MMFR0..3, ID_ISAR0..5, CLIDR, AIDR): KVM returned the host
 * value and set_invariant_cp15 refused any other value with EINVAL.
 *
 * The generic-timer encodings (CNTV_CTL, CNTP_CTL, CNTPCT, CNTVCT, CNTP_CVAL, CNTV_CVAL) are
 * listed here for completeness; the catalog hands those ids to the KVM timer rows below,
 * which take these names as aliases. There is no CVAL/CNT swap on 32-bit ARM.
 */
import type { RowSpec } from "../table.js";
import type { Cp15Encoding, Cp15Encoding64 } from "./encoding.js";
import { cp15Id, cp15Id64 } from "./encoding.js";

/** A 32-bit CP15 register: name, CRn, Opc1, CRm, Opc2. */
export type Cp15Spec = readonly [
  name: string,
  crn: number,
  opc1: number,
  crm: number,
  opc2: number,
];

/** A 64-bit CP15 register: name, Opc1, CRm. */
export type Cp15Spec64 = readonly [name: string, opc1: number, crm: number];

const family = (count: number, make: (n: number) => Cp15Spec): Cp15Spec[] =>
  Array.from({ length: count }, (_, n) => make(n));

/** 32-bit CP15 registers. */
export const CP15_TABLE: readonly Cp15Spec[] = [
  ["MIDR", 0, 0, 0, 0],
  ["CTR", 0, 0, 0, 1],
  ["TCMTR", 0, 0, 0, 2],
  ["TLBTR", 0, 0, 0, 3],
  ["MPIDR", 0, 0, 0, 5],
  ["REVIDR", 0, 0, 0, 6],
  ["ID_PFR0", 0, 0, 1, 0],
  ["ID_PFR1", 0, 0, 1, 1],
  ["ID_DFR0", 0, 0, 1, 2],
  ["ID_AFR0", 0, 0, 1, 3],
  ...family(4, (n) => [`ID_MMFR${n}`, 0, 0, 1, 4 + n]),
  ...family(6, (n) => [`ID_ISAR${n}`, 0, 0, 2, n]),
  ["ID_MMFR4", 0, 0, 2, 6],
  ["ID_ISAR6", 0, 0, 2, 7],
  ["CCSIDR", 0, 1, 0, 0],
  ["CLIDR", 0, 1, 0, 1],
  ["AIDR", 0, 1, 0, 7],
  ["CSSELR", 0, 2, 0, 0],
  ["SCTLR", 1, 0, 0, 0],
  ["ACTLR", 1, 0, 0, 1],
  ["CPACR", 1, 0, 0, 2],
  ["ACTLR2", 1, 0, 0, 3],
  ["TTBR0", 2, 0, 0, 0],
  ["TTBR1", 2, 0, 0, 1],
  ["TTBCR", 2, 0, 0, 2],
  ["TTBCR2", 2, 0, 0, 3],
  ["DACR", 3, 0, 0, 0],
  ["ICC_PMR", 4, 0, 6, 0],
  ["DFSR", 5, 0, 0, 0],
  ["IFSR", 5, 0, 0, 1],
  ["ADFSR", 5, 0, 1, 0],
  ["AIFSR", 5, 0, 1, 1],
  ["DFAR", 6, 0, 0, 0],
  ["IFAR", 6, 0, 0, 2],
  ["PAR", 7, 0, 4, 0],
  ["PMCR", 9, 0, 12, 0],
  ["PMCNTENSET", 9, 0, 12, 1],
  ["PMCNTENCLR", 9, 0, 12, 2],
  ["PMOVSR", 9, 0, 12, 3],
  ["PMSWINC", 9, 0, 12, 4],
  ["PMSELR", 9, 0, 12, 5],
  ["PMCEID0", 9, 0, 12, 6],
  ["PMCEID1", 9, 0, 12, 7],
  ["PMCCNTR", 9, 0, 13, 0],
  ["PMXEVTYPER", 9, 0, 13, 1],
  ["PMXEVCNTR", 9, 0, 13, 2],
  ["PMUSERENR", 9, 0, 14, 0],
  ["PMINTENSET", 9, 0, 14, 1],
  ["PMINTENCLR", 9, 0, 14, 2],
  ["PMOVSSET", 9, 0, 14, 3],
  // Cortex-A15/A7 IMPLEMENTATION DEFINED L2 control, in KVM's per-target tables.
  ["L2CTLR", 9, 1, 0, 2],
  ["L2ECTLR", 9, 1, 0, 3],
  ["PRRR", 10, 0, 2, 0],
  ["NMRR", 10, 0, 2, 1],
  ["AMAIR0", 10, 0, 3, 0],
  ["AMAIR1", 10, 0, 3, 1],
  ["VBAR", 12, 0, 0, 0],
  ["ISR", 12, 0, 1, 0],
  ["ICC_IAR0", 12, 0, 8, 0],
  ["ICC_EOIR0", 12, 0, 8, 1],
  ["ICC_HPPIR0", 12, 0, 8, 2],
  ["ICC_BPR0", 12, 0, 8, 3],
  ...family(4, (n) => [`ICC_AP0R${n}`, 12, 0, 8, 4 + n]),
  ...family(4, (n) => [`ICC_AP1R${n}`, 12, 0, 9, n]),
  ["ICC_DIR", 12, 0, 11, 1],
  ["ICC_RPR", 12, 0, 11, 3],
  ["ICC_IAR1", 12, 0, 12, 0],
  ["ICC_EOIR1", 12, 0, 12, 1],
  ["ICC_HPPIR1", 12, 0, 12, 2],
  ["ICC_BPR1", 12, 0, 12, 3],
  ["ICC_CTLR", 12, 0, 12, 4],
  ["ICC_SRE", 12, 0, 12, 5],
  ["ICC_IGRPEN0", 12, 0, 12, 6],
  ["ICC_IGRPEN1", 12, 0, 12, 7],
  ["CONTEXTIDR", 13, 0, 0, 1],
  ["TPIDRURW", 13, 0, 0, 2],
  ["TPIDRURO", 13, 0, 0, 3],
  ["TPIDRPRW", 13, 0, 0, 4],
  ["CNTFRQ", 14, 0, 0, 0],
  ["CNTKCTL", 14, 0, 1, 0],
  ["CNTP_TVAL", 14, 0, 2, 0],
  ["CNTP_CTL", 14, 0, 2, 1],
  ["CNTV_TVAL", 14, 0, 3, 0],
  ["CNTV_CTL", 14, 0, 3, 1],
  ...family(31, (n) => [`PMEVCNTR${n}`, 14, 0, 8 | (n >> 3), n & 7]),
  ...family(31, (n) => [`PMEVTYPER${n}`, 14, 0, 12 | (n >> 3), n & 7]),
  ["PMCCFILTR", 14, 0, 15, 7],
  // Cortex-A15/A7 Configuration Base Address Register (IMPLEMENTATION DEFINED).
  ["CBAR", 15, 4, 0, 0],
];

/** 64-bit CP15 registers. */
export const CP15_64_TABLE: readonly Cp15Spec64[] = [
  ["TTBR0_64", 0, 2],
  ["TTBR1_64", 1, 2],
  ["HTTBR", 4, 2],
  ["VTTBR", 6, 2],
  ["PAR_64", 0, 7],
  ["ICC_SGI1R", 0, 12],
  ["ICC_ASGI1R", 1, 12],
  ["ICC_SGI0R", 2, 12],
  ["CNTPCT", 0, 14],
  ["CNTVCT", 1, 14],
  ["CNTP_CVAL", 2, 14],
  ["CNTV_CVAL", 3, 14],
  ["CNTVOFF", 4, 14],
  ["CNTHP_CVAL", 6, 14],
];

/** Invariant registers: KVM refused any value but the host's (set_invariant_cp15). */
export const CP15_READ_ONLY: ReadonlySet<string> = new Set([
  "MIDR",
  "CTR",
  "TCMTR",
  "TLBTR",
  "REVIDR",
  "ID_PFR0",
  "ID_PFR1",
  "ID_DFR0",
  "ID_AFR0",
  "ID_MMFR0",
  "ID_MMFR1",
  "ID_MMFR2",
  "ID_MMFR3",
  "ID_ISAR0",
  "ID_ISAR1",
  "ID_ISAR2",
  "ID_ISAR3",
  "ID_ISAR4",
  "ID_ISAR5",
  "CLIDR",
  "AIDR",
]);

/** Extra names for registers known by two names. */
const CP15_ALIASES: Readonly<Record<string, readonly string[]>> = {
  PRRR: ["MAIR0"],
  NMRR: ["MAIR1"],
};

/** Row for a 32-bit CP15 register (shared with the generic decoder). */
export function cp15Row(name: string, enc: Cp15Encoding): RowSpec {
  const aliases = CP15_ALIASES[name];
  return {
    id: cp15Id(enc),
    name,
    class: "cp15",
    fields: { coproc: 15, ...enc },
    readOnly: CP15_READ_ONLY.has(name),
    ...(aliases === undefined ? {} : { aliases }),
  };
}

/** Row for a 64-bit CP15 register (shared with the generic decoder). */
export function cp15Row64(name: string, enc: Cp15Encoding64): RowSpec {
  return { id: cp15Id64(enc), name, class: "cp15", fields: { coproc: 15, ...enc } };
}

/** Every table row, 32-bit and 64-bit, unsorted. */
export function armCp15Rows(): RowSpec[] {
  return [
    ...CP15_TABLE.map(([name, crn, opc1, crm, opc2]) => cp15Row(name, { crn, opc1, crm, opc2 })),
    ...CP15_64_TABLE.map(([name, opc1, crm]) => cp15Row64(name, { opc1, crm })),
  ];
}

/** The KVM timer ids (`KVM_REG_ARM_{P,}TIMER_{CTL,CNT,CVAL}`), aliased by what they access. */
export function armTimerRows(): RowSpec[] {
  const timer32 = (name: string, accesses: string, enc: Cp15Encoding): RowSpec => ({
    ...cp15Row(accesses, enc),
    name,
    class: "timer",
    fields: { coproc: 15, ...enc, accesses },
    aliases: [`KVM_REG_ARM_${name}`, accesses],
  });
  const timer64 = (name: string, accesses: string, enc: Cp15Encoding64): RowSpec => ({
    ...cp15Row64(accesses, enc),
    name,
    class: "timer",
    fields: { coproc: 15, ...enc, accesses },
    aliases: [`KVM_REG_ARM_${name}`, accesses],
  });
  return [
    timer32("TIMER_CTL", "CNTV_CTL", { crn: 14, opc1: 0, crm: 3, opc2: 1 }),
    timer64("TIMER_CNT", "CNTVCT", { opc1: 1, crm: 14 }),
    timer64("TIMER_CVAL", "CNTV_CVAL", { opc1: 3, crm: 14 }),
    timer32("PTIMER_CTL", "CNTP_CTL", { crn: 14, opc1: 0, crm: 2, opc2: 1 }),
    timer64("PTIMER_CNT", "CNTPCT", { opc1: 0, crm: 14 }),
    timer64("PTIMER_CVAL", "CNTP_CVAL", { opc1: 2, crm: 14 }),
  ];
}
