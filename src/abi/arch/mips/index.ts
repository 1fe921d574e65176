/**
 * The mips register catalog (arch/mips/include/uapi/asm/kvm.h for the layout, GP, KVM, FPU and
 * MSA ids; arch/mips/include/asm/kvm_host.h for the CP0 ids; Linux 6.18).
 *
 * ```
 *  63   56 55  52 51        32 31          16 15                    0
 * +-------+------+------------+--------------+----------------------+
 * | 0x70  | size | must be 0  | register set | set-specific         |
 * +-------+------+------------+--------------+----------------------+
 * set 0 GP:  number 0..31 = R0..R31, 32 HI, 33 LO, 34 PC (U64)
 * set 1 CP0: bits 15..8 = 0, bits 7..0 = 8·reg + sel (U32 or U64 per register);
 *            bits 15..8 = 1: MAAR(n), n 0..63 (U64)
 * set 2 KVM: 0 COUNT_CTL, 1 COUNT_RESUME, 2 COUNT_HZ (U64)
 * set 3 FPU: bits 15..8 subset (0 FPR, 1 FCR, 2 MSA control), bits 4..0 number;
 *            FPR_32(n) U32, FPR_64(n) U64, VEC_128(n) U128; FCR and MSA control are U32
 * ```
 *
 * The kernel matches whole ids, so size is part of identity. Generic names cover the slots the
 * layout defines but no register uses: `CP0_32(reg,sel)` / `CP0_64(reg,sel)` (a (reg, sel) that
 * has a row is only decoded at that row's size), `FCR(n)` and `MSACR(n)` (U32, n 0..31).
 * Everything else without a row (GP numbers past PC, other KVM numbers, MAAR past 63, unknown
 * sets or subsets, stray bits) is `undefined`. Named CP0 rows also answer to `CP0(reg,sel)`.
 * `fields`: `{ set, index }` for GP/KVM, `{ set, reg, sel }` for CP0, `{ set, maar }` for MAAR,
 * `{ set, subset, index }` for FPU/MSA.
 */
import type { RegId } from "../../regid.js";
import { archCode, ARCH_CODES, makeRegId, payloadOf, regSize } from "../../regid.js";
import type { RowSpec } from "../table.js";
import { makeCatalog } from "../table.js";

const SET = { GP: 0, CP0: 1, KVM: 2, FPU: 3 } as const;
const FPU_SUBSET = { FPR: 0, FCR: 1, MSACR: 2 } as const;
const MAAR_SELECT = 1; // bits 15..8 of a CP0-set id: KVM_REG_MIPS_MAAR = KVM_REG_MIPS_CP0 | 1 << 8

const payload = (set: number, low: number): bigint => (BigInt(set) << 16n) | BigInt(low);
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** CP0 registers KVM exposes: [name, reg, sel, size] (kvm_host.h KVM_REG_MIPS_CP0_*). */
// prettier-ignore
const CP0: readonly (readonly [string, number, number, 4 | 8])[] = [
  ["INDEX", 0, 0, 4], ["ENTRYLO0", 2, 0, 8], ["ENTRYLO1", 3, 0, 8], ["CONTEXT", 4, 0, 8],
  ["CONTEXTCONFIG", 4, 1, 4], ["USERLOCAL", 4, 2, 8], ["XCONTEXTCONFIG", 4, 3, 8],
  ["PAGEMASK", 5, 0, 4], ["PAGEGRAIN", 5, 1, 4], ["SEGCTL0", 5, 2, 8], ["SEGCTL1", 5, 3, 8],
  ["SEGCTL2", 5, 4, 8], ["PWBASE", 5, 5, 8], ["PWFIELD", 5, 6, 8], ["PWSIZE", 5, 7, 8],
  ["WIRED", 6, 0, 4], ["PWCTL", 6, 6, 4], ["HWRENA", 7, 0, 4], ["BADVADDR", 8, 0, 8],
  ["BADINSTR", 8, 1, 4], ["BADINSTRP", 8, 2, 4], ["COUNT", 9, 0, 4], ["ENTRYHI", 10, 0, 8],
  ["COMPARE", 11, 0, 4], ["STATUS", 12, 0, 4], ["INTCTL", 12, 1, 4], ["CAUSE", 13, 0, 4],
  ["EPC", 14, 0, 8], ["PRID", 15, 0, 4], ["EBASE", 15, 1, 8], ["CONFIG", 16, 0, 4],
  ["CONFIG1", 16, 1, 4], ["CONFIG2", 16, 2, 4], ["CONFIG3", 16, 3, 4], ["CONFIG4", 16, 4, 4],
  ["CONFIG5", 16, 5, 4], ["CONFIG6", 16, 6, 4], ["CONFIG7", 16, 7, 4], ["MAARI", 17, 2, 8],
  ["XCONTEXT", 20, 0, 8], ["DIAG", 22, 0, 4], ["ERROREPC", 30, 0, 8], ["KSCRATCH1", 31, 2, 8],
  ["KSCRATCH2", 31, 3, 8], ["KSCRATCH3", 31, 4, 8], ["KSCRATCH4", 31, 5, 8],
  ["KSCRATCH5", 31, 6, 8], ["KSCRATCH6", 31, 7, 8],
];

const cp0Size = new Map(CP0.map(([, reg, sel, size]) => [reg * 8 + sel, size]));

function gpRows(): RowSpec[] {
  const names = [...range(32).map((n) => `R${n}`), "HI", "LO", "PC"];
  return names.map((name, index) => ({
    id: makeRegId("mips", 8, payload(SET.GP, index)),
    name,
    class: "gp",
    fields: { set: SET.GP, index },
    aliases: [`KVM_REG_MIPS_${name}`],
  }));
}

function cp0Row(reg: number, sel: number, size: number, name: string): RowSpec {
  return {
    id: makeRegId("mips", size, payload(SET.CP0, reg * 8 + sel)),
    name,
    class: "cp0",
    fields: { set: SET.CP0, reg, sel },
  };
}

function fpuRow(subset: number, index: number, size: number, name: string, cls: string): RowSpec {
  return {
    id: makeRegId("mips", size, payload(SET.FPU, (subset << 8) | index)),
    name,
    class: cls,
    fields: { set: SET.FPU, subset, index },
    aliases: [`KVM_REG_MIPS_${name}`],
  };
}

function rows(): RowSpec[] {
  const kvm = ["COUNT_CTL", "COUNT_RESUME", "COUNT_HZ"];
  return [
    ...gpRows(),
    ...CP0.map(([name, reg, sel, size]) => ({
      ...cp0Row(reg, sel, size, `CP0_${name}`),
      aliases: [`KVM_REG_MIPS_CP0_${name}`, `CP0(${reg},${sel})`],
    })),
    ...range(64).map((n) => ({
      id: makeRegId("mips", 8, payload(SET.CP0, (MAAR_SELECT << 8) | n)),
      name: `MAAR(${n})`,
      class: "maar",
      fields: { set: SET.CP0, maar: n },
      aliases: [`KVM_REG_MIPS_CP0_MAAR(${n})`],
    })),
    ...kvm.map((name, index) => ({
      id: makeRegId("mips", 8, payload(SET.KVM, index)),
      name,
      class: "kvm",
      fields: { set: SET.KVM, index },
      aliases: [`KVM_REG_MIPS_${name}`],
    })),
    ...range(32).map((n) => fpuRow(FPU_SUBSET.FPR, n, 4, `FPR_32(${n})`, "fpu")),
    ...range(32).map((n) => fpuRow(FPU_SUBSET.FPR, n, 8, `FPR_64(${n})`, "fpu")),
    ...range(32).map((n) => fpuRow(FPU_SUBSET.FPR, n, 16, `VEC_128(${n})`, "fpu")),
    fpuRow(FPU_SUBSET.FCR, 0, 4, "FCR_IR", "fcr"),
    fpuRow(FPU_SUBSET.FCR, 31, 4, "FCR_CSR", "fcr"),
    fpuRow(FPU_SUBSET.MSACR, 0, 4, "MSA_IR", "msa"),
    fpuRow(FPU_SUBSET.MSACR, 1, 4, "MSA_CSR", "msa"),
  ];
}

function decodeGeneric(id: RegId): RowSpec | undefined {
  if (archCode(id) !== ARCH_CODES.mips) return undefined;
  const p = payloadOf(id);
  if (p >> 32n !== 0n) return undefined;
  const set = Number(p >> 16n);
  const hi = Number((p >> 8n) & 0xffn);
  const low = Number(p & 0xffn);
  const size = regSize(id);
  if (set === SET.CP0 && hi === 0 && (size === 4 || size === 8)) {
    if (cp0Size.has(low)) return undefined; // named (reg, sel) at the other size
    const [reg, sel] = [low >> 3, low & 7];
    return cp0Row(reg, sel, size, `CP0_${size * 8}(${reg},${sel})`);
  }
  if (set === SET.FPU && size === 4 && low < 32) {
    if (hi === FPU_SUBSET.FCR) return fpuRow(hi, low, 4, `FCR(${low})`, "fcr");
    if (hi === FPU_SUBSET.MSACR) return fpuRow(hi, low, 4, `MSACR(${low})`, "msa");
  }
  return undefined;
}

function parseGenericName(name: string): bigint | undefined {
  const cp0 = /^CP0_(32|64)\((\d{1,2}),(\d)\)$/i.exec(name);
  if (cp0 !== null) {
    const [reg, sel] = [Number(cp0[2]), Number(cp0[3])];
    if (reg > 31 || sel > 7) return undefined;
    return makeRegId("mips", Number(cp0[1]) / 8, payload(SET.CP0, reg * 8 + sel));
  }
  const ctl = /^(FCR|MSACR)\((\d{1,2})\)$/i.exec(name);
  if (ctl === null || Number(ctl[2]) > 31) return undefined;
  const subset = ctl[1]?.toUpperCase() === "FCR" ? FPU_SUBSET.FCR : FPU_SUBSET.MSACR;
  return makeRegId("mips", 4, payload(SET.FPU, (subset << 8) | Number(ctl[2])));
}

/** The mips catalog. */
export const catalog = makeCatalog({
  arch: "mips",
  title: "mips",
  classes: ["gp", "cp0", "maar", "kvm", "fpu", "fcr", "msa"],
  rows,
  decodeGeneric,
  parseGenericName,
});
