/**
 * The legacy 32-bit ARM register catalog (arch byte 0x40). The KVM/arm host was removed in
 * Linux 5.7, but its ids remain defined and appear in old snapshots and tools, so regvisor
 * still names them (header: arch/arm/include/uapi/asm/kvm.h up to 5.6).
 *
 * Names: core `R0`..`R12`, `SP_USR`, `LR_USR`, `PC`, `CPSR`, `ORIG_R0`, the banked
 * `SP_/LR_/SPSR_{SVC,ABT,UND,IRQ}` and `R8_FIQ`..`SPSR_FIQ` (core.ts); CP15 registers by
 * AArch32 name, `MIDR`, `SCTLR`, `TTBR0`, 64-bit views as `TTBR0_64`, `PAR_64` (cp15.ts);
 * KVM timer ids `TIMER_CTL/CNT/CVAL`, `PTIMER_CTL/CNT/CVAL` (cp15.ts); VFP `D0`..`D31`,
 * `FPSID`, `FPSCR`, `MVFR0`, `MVFR1`, `FPEXC`, `FPINST`, `FPINST2`, demux `CCSIDR(0)`..
 * `CCSIDR(11)`, firmware `PSCI_VERSION`, `SMCCC_ARCH_WORKAROUND_1/2` (pseudo.ts). Ids
 * without a row decode generically (decode.ts): `CP15(crn,opc1,crm,opc2)`,
 * `CP15_64(opc1,crm)`, `FW(0x…)`.
 *
 * Classes: `core`, `fw`, `timer`, `cp15`, `vfp`, `demux`, in the order arch/arm/kvm/guest.c
 * listed them (CP15 rows here sorted by id).
 *
 * readOnly rule: true exactly for what the 32-bit kernel always refused to change — the
 * invariant CP15 registers, FPSID/MVFR0/MVFR1 and the CCSIDR demux values (EINVAL on any
 * value but the host's).
 */
import { makeCatalog } from "../table.js";
import type { RowSpec } from "../table.js";
import { armCoreRows } from "./core.js";
import { armCp15Rows, armTimerRows } from "./cp15.js";
import { decodeArmGeneric, parseArmGenericName } from "./decode.js";
import { armDemuxRows, armFwRows, armVfpRows } from "./pseudo.js";

export {
  ARM_COPROC,
  ARM_CSSELR_MAX,
  ARM_VFP_INDEX,
  armId,
  cp15Fields,
  cp15Id,
  cp15Id64,
} from "./encoding.js";
export type { Cp15Encoding, Cp15Encoding64 } from "./encoding.js";
export { ARM_CORE_WORDS } from "./core.js";
export { CP15_64_TABLE, CP15_READ_ONLY, CP15_TABLE } from "./cp15.js";
export { cp15GenericName } from "./decode.js";

/** Class names in `entries` order. */
export const ARM_CLASSES = ["core", "fw", "timer", "cp15", "vfp", "demux"];

/**
 * CP15 rows without the encodings the timer rows own, sorted by id.
 * @throws {Error} if a dropped CP15 name is not a timer alias (a table bug, caught at load).
 */
function cp15Rows(timers: readonly RowSpec[]): RowSpec[] {
  const timerIds = new Set(timers.map((t) => t.id));
  const timerAliases = new Set(timers.flatMap((t) => t.aliases ?? []));
  const rows = armCp15Rows().filter((row) => {
    if (!timerIds.has(row.id)) return true;
    if (!timerAliases.has(row.name)) throw new Error(`arm catalog: ${row.name} hidden by a timer`);
    return false;
  });
  return rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function rows(): RowSpec[] {
  const timers = armTimerRows();
  return [
    ...armCoreRows(),
    ...armFwRows(),
    ...timers,
    ...cp15Rows(timers),
    ...armVfpRows(),
    ...armDemuxRows(),
  ];
}

/** The 32-bit ARM catalog. */
export const catalog = makeCatalog({
  arch: "arm",
  title: "32-bit ARM (legacy, host removed in Linux 5.7)",
  classes: ARM_CLASSES,
  rows,
  decodeGeneric: decodeArmGeneric,
  parseGenericName: parseArmGenericName,
});
