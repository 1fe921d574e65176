/**
 * The arm64 register catalog (arch byte 0x60; docs/kvm-register-abi.md §7, §10.2, §11).
 *
 * Names are architectural and upper-case: core `X0`..`X30`, `SP`, `PC`, `PSTATE`, `SP_EL1`,
 * `ELR_EL1`, `SPSR_EL1`/`_ABT`/`_UND`/`_IRQ`/`_FIQ`, `V0`..`V31`, `FPSR`, `FPCR` (core.ts);
 * system registers by Arm name, e.g. `MIDR_EL1` (sysregs.ts); the KVM timer ids `TIMER_CTL`,
 * `TIMER_CVAL`, `TIMER_CNT`, `PTIMER_*` (timer.ts, which explains the CVAL/CNT swap);
 * firmware `PSCI_VERSION`, `SMCCC_ARCH_WORKAROUND_1..3`, `STD_BMAP`, `STD_HYP_BMAP`,
 * `VENDOR_HYP_BMAP`, `VENDOR_HYP_BMAP_2`; SVE `SVE_VLS`, `Z0`..`Z31`, `P0`..`P15`, `FFR`;
 * demux `CCSIDR(0)`..`CCSIDR(13)` (pseudo.ts). Ids without a row decode generically
 * (decode.ts): `ARM64_SYS_REG(3,0,1,0,0)`, `FW(0x4)`, `FW_FEAT_BMAP(4)`, `Z3[1]`.
 *
 * Classes: `core`, `sve`, `fw`, `fw_feat_bmap`, `sysreg`, `timer`, `demux`. `entries` follow
 * KVM_GET_REG_LIST order: core, SVE, FW, bitmaps, sysregs and timers by encoding (timers at
 * the position of the register they access), demux.
 *
 * readOnly rule: a row is read-only only when every 6.18 kernel refuses every SET of a
 * different value, whatever the VM's capabilities and state. No arm64 row qualifies: ID
 * registers are writable within the host's limits until first run, MIDR/REVIDR/AIDR become
 * writable with KVM_CAP_ARM_WRITABLE_IMP_ID_REGS, CCSIDR values are settable, TIMER_CNT /
 * PTIMER_CNT set the counter offset, SVE_VLS is writable until finalisation. Refusals that
 * depend on state are the kernel's answer at run time (EINVAL/EBUSY/EPERM), not a catalog
 * property, so every arm64 row has `readOnly: false`.
 */
import { makeCatalog } from "../table.js";
import type { RowSpec } from "../table.js";
import { arm64CoreRows } from "./core.js";
import { decodeArm64Generic, parseArm64GenericName } from "./decode.js";
import { sysRegId, sysRegIndex } from "./encoding.js";
import type { SysRegEncoding } from "./encoding.js";
import { arm64DemuxRows, arm64FwRows, arm64SveRows } from "./pseudo.js";
import { SYSREG_ALIASES, SYSREG_TABLE } from "./sysregs.js";
import { arm64TimerRows } from "./timer.js";

export {
  ARM64_CSSELR_MAX,
  ARM64_GROUP,
  ARM64_SVE_INDEX,
  ARM64_SVE_MAX_SLICES,
  ARM64_SVE_SIZE,
  arm64Id,
  sysRegFields,
  sysRegId,
  sysRegIndex,
} from "./encoding.js";
export type { SysRegEncoding } from "./encoding.js";
export { ARM64_CORE_OFFSET, ARM64_KVM_REGS_SIZE } from "./core.js";
export { sysRegGenericName } from "./decode.js";
export { SYSREG_TABLE } from "./sysregs.js";

/** Class names in `entries` order. */
export const ARM64_CLASSES = ["core", "sve", "fw", "fw_feat_bmap", "sysreg", "timer", "demux"];

interface SortedRow {
  readonly row: RowSpec;
  readonly listedAt: number;
}

/**
 * Sysreg rows from the name table plus the timer rows, in encoding order. Table entries whose
 * id a timer row owns are dropped; their names must be aliases of a timer row.
 * @throws {Error} if a dropped table name is not a timer alias (a table bug, caught at load).
 */
function sysregAndTimerRows(): RowSpec[] {
  const timers = arm64TimerRows();
  const timerIds = new Set(timers.map((t) => t.row.id));
  const timerAliases = new Set(timers.flatMap((t) => t.row.aliases ?? []));
  const sorted: SortedRow[] = timers.map((t) => ({
    row: t.row,
    listedAt: sysRegIndex(t.listedAt),
  }));
  for (const [name, op0, op1, crn, crm, op2] of SYSREG_TABLE) {
    const enc: SysRegEncoding = { op0, op1, crn, crm, op2 };
    const id = sysRegId(enc);
    if (timerIds.has(id)) {
      if (!timerAliases.has(name)) throw new Error(`arm64 catalog: ${name} hidden by a timer row`);
      continue;
    }
    const row: RowSpec = { id, name, class: "sysreg", fields: { ...enc } };
    const aliases = SYSREG_ALIASES[name];
    sorted.push({
      row: aliases === undefined ? row : { ...row, aliases },
      listedAt: sysRegIndex(enc),
    });
  }
  return sorted.sort((a, b) => a.listedAt - b.listedAt).map((s) => s.row);
}

/** The arm64 catalog. */
export const catalog = makeCatalog({
  arch: "arm64",
  title: "arm64 (AArch64)",
  classes: ARM64_CLASSES,
  rows: () => [
    ...arm64CoreRows(),
    ...arm64SveRows(),
    ...arm64FwRows(),
    ...sysregAndTimerRows(),
    ...arm64DemuxRows(),
  ],
  decodeGeneric: decodeArm64Generic,
  parseGenericName: parseArm64GenericName,
});
