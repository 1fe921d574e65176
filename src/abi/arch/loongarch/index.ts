/**
 * The loongarch register catalog (arch/loongarch/include/uapi/asm/kvm.h for the layout,
 * arch/loongarch/include/asm/loongarch.h for CSR numbers, arch/loongarch/kvm/vcpu.c for what
 * ONE_REG serves; Linux 6.18).
 *
 * ```
 *  63   56 55  52 51          19 18   16 15 14            3 2   0
 * +-------+------+--------------+-------+--+---------------+-----+
 * | 0x90  | 0x3  |      0       | group |0 | number (12 b) |  0  |   CSR and CPUCFG
 * +-------+------+--------------+-------+--+---------------+-----+
 * group 0 GPR, 1 CSR, 2 KVM, 3 FPSIMD, 4 CPUCFG, 5 LBT
 * ```
 *
 * Only U64 is served (any other size → EINVAL). CSR and CPUCFG ids carry `number << 3` under
 * a 15-bit mask (KVM_IOC_CSRID / KVM_IOC_CPUCFG), so numbers run 0..0xfff; the kernel drops the
 * low three bits and ignores bits 19..51, but only the canonical encoding (those bits zero) is
 * decoded here, so that every decoded id has exactly one name. KVM (COUNTER 1, VCPU_RESET 2,
 * DEBUG_INST 3) and LBT (SCR0..3 = 1..4, EFLAGS 5, FTOP 6) are matched whole; GPR and FPSIMD
 * are not served by ONE_REG at all.
 *
 * Names: CSRs by their architectural name (`CRMD`, `ERA`, `TCFG`), generic `CSR(0x7ff)` for
 * other numbers; CPUCFG words `CPUCFG0`..`CPUCFG20` (KVM_MAX_CPUCFG_REGS = 21), generic
 * `CPUCFG(21)` above. `lookup()` also takes `CSR(0x0)` / `CPUCFG(2)` for named ones.
 * `fields`: `{ group, number }` for CSR/CPUCFG, `{ group, index }` for KVM/LBT.
 */
import type { RegId } from "../../regid.js";
import { archCode, ARCH_CODES, makeRegId, payloadOf, regSize } from "../../regid.js";
import type { RowSpec } from "../table.js";
import { makeCatalog } from "../table.js";

const GROUP = { GPR: 0, CSR: 1, KVM: 2, FPSIMD: 3, CPUCFG: 4, LBT: 5 } as const;
const NUMBER_MAX = 0xfff; // KVM_CSR_IDX_MASK 0x7fff >> LOONGARCH_REG_SHIFT 3
const CPUCFG_NAMED = 21; // KVM_MAX_CPUCFG_REGS

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const numbered = (first: number, prefix: string, count: number, suffix = ""): [number, string][] =>
  range(count).map((n) => [first + n, `${prefix}${n}${suffix}`]);

/** Breakpoint register quads (ADDR/MASK/CTRL/ASID) at `base + 8·n`, n 0..7. */
const breakpoints = (base: number, kind: string): [number, string][] =>
  range(8).flatMap((n) =>
    ["ADDR", "MASK", "CTRL", "ASID"].map((what, k): [number, string] => [
      base + 8 * n + k,
      `${kind}${n}${what}`,
    ]),
  );

/** Architectural CSR numbers (loongarch.h LOONGARCH_CSR_*); implementation-specific ones left out. */
// prettier-ignore
const CSRS: readonly [number, string][] = [
  [0x0, "CRMD"], [0x1, "PRMD"], [0x2, "EUEN"], [0x3, "MISC"], [0x4, "ECFG"], [0x5, "ESTAT"],
  [0x6, "ERA"], [0x7, "BADV"], [0x8, "BADI"], [0xc, "EENTRY"], [0x10, "TLBIDX"],
  [0x11, "TLBEHI"], [0x12, "TLBELO0"], [0x13, "TLBELO1"], [0x15, "GTLBC"], [0x16, "TRGP"],
  [0x18, "ASID"], [0x19, "PGDL"], [0x1a, "PGDH"], [0x1b, "PGD"], [0x1c, "PWCTL0"],
  [0x1d, "PWCTL1"], [0x1e, "STLBPGSIZE"], [0x1f, "RVACFG"], [0x20, "CPUID"], [0x21, "PRCFG1"],
  [0x22, "PRCFG2"], [0x23, "PRCFG3"], ...numbered(0x30, "KS", 9), [0x40, "TMID"],
  [0x41, "TCFG"], [0x42, "TVAL"], [0x43, "CNTC"], [0x44, "TINTCLR"], [0x50, "GSTAT"],
  [0x51, "GCFG"], [0x52, "GINTC"], [0x53, "GCNTC"], [0x60, "LLBCTL"], [0x80, "IMPCTL1"],
  [0x81, "IMPCTL2"], [0x88, "TLBRENTRY"], [0x89, "TLBRBADV"], [0x8a, "TLBRERA"],
  [0x8b, "TLBRSAVE"], [0x8c, "TLBRELO0"], [0x8d, "TLBRELO1"], [0x8e, "TLBREHI"],
  [0x8f, "TLBRPRMD"], [0x90, "MERRCTL"], [0x91, "MERRINFO1"], [0x92, "MERRINFO2"],
  [0x93, "MERRENTRY"], [0x94, "MERRERA"], [0x95, "MERRSAVE"], [0x98, "CTAG"],
  ...numbered(0x180, "DMWIN", 4),
  ...range(4).flatMap((n): [number, string][] => [[0x200 + 2 * n, `PERFCTRL${n}`], [0x201 + 2 * n, `PERFCNTR${n}`]]),
  [0x300, "MWPC"], [0x301, "MWPS"], ...breakpoints(0x310, "DB"), [0x380, "FWPC"], [0x381, "FWPS"],
  ...breakpoints(0x390, "IB"), [0x500, "DEBUG"], [0x501, "DERA"], [0x502, "DESAVE"],
];

const numberedId = (group: number, number: number): bigint =>
  makeRegId("loongarch", 8, (BigInt(group) << 16n) | (BigInt(number) << 3n));

function csrRow(number: number, name: string): RowSpec {
  return {
    id: numberedId(GROUP.CSR, number),
    name,
    class: "csr",
    fields: { group: GROUP.CSR, number },
  };
}

function cpucfgRow(number: number, name: string): RowSpec {
  return {
    id: numberedId(GROUP.CPUCFG, number),
    name,
    class: "cpucfg",
    fields: { group: GROUP.CPUCFG, number },
  };
}

function wholeRows(group: number, cls: string, names: readonly string[]): RowSpec[] {
  return names.map((name, k) => ({
    id: makeRegId("loongarch", 8, (BigInt(group) << 16n) | BigInt(k + 1)),
    name,
    class: cls,
    fields: { group, index: k + 1 },
    aliases: [`KVM_REG_LOONGARCH_${name}`],
    ...(name === "DEBUG_INST" ? { readOnly: true } : {}),
  }));
}

function rows(): RowSpec[] {
  return [
    ...CSRS.map(([number, name]) => csrRow(number, name)),
    ...range(CPUCFG_NAMED).map((n) => cpucfgRow(n, `CPUCFG${n}`)),
    ...wholeRows(GROUP.KVM, "kvm", ["COUNTER", "VCPU_RESET", "DEBUG_INST"]),
    ...wholeRows(GROUP.LBT, "lbt", ["SCR0", "SCR1", "SCR2", "SCR3", "EFLAGS", "FTOP"]),
  ];
}

function decodeGeneric(id: RegId): RowSpec | undefined {
  if (archCode(id) !== ARCH_CODES.loongarch || regSize(id) !== 8) return undefined;
  const p = payloadOf(id);
  const group = Number(p >> 16n);
  const low = Number(p & 0xffffn);
  if ((low & 0x8007) !== 0) return undefined; // not a canonical number << 3 encoding
  const number = low >> 3;
  if (group === GROUP.CSR) return csrRow(number, `CSR(0x${number.toString(16)})`);
  if (group === GROUP.CPUCFG) return cpucfgRow(number, `CPUCFG(${number})`);
  return undefined;
}

function parseGenericName(name: string): bigint | undefined {
  const m = /^(CSR|CPUCFG)\((0x[0-9a-f]{1,3}|\d{1,4})\)$/i.exec(name);
  if (m === null) return undefined;
  const number = Number(m[2]);
  if (number > NUMBER_MAX) return undefined;
  return numberedId(m[1]?.toUpperCase() === "CSR" ? GROUP.CSR : GROUP.CPUCFG, number);
}

/** The loongarch catalog. */
export const catalog = makeCatalog({
  arch: "loongarch",
  title: "LoongArch",
  classes: ["csr", "cpucfg", "kvm", "lbt"],
  rows,
  decodeGeneric,
  parseGenericName,
});
