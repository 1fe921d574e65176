/**
 * The riscv register table: every (type, subtype, number) Linux 6.18 defines, RV64 sizes.
 *
 * Sources: arch/riscv/include/uapi/asm/kvm.h (struct layouts and enums),
 * arch/riscv/include/uapi/asm/ptrace.h (user_regs_struct order), vcpu_onereg.c / vcpu_fp.c /
 * vcpu_vector.c / vcpu_timer.c / vcpu_sbi*.c (sizes and read-only rules). Every id is pinned by
 * docs/kvm-register-abi.md §8 and a golden table in test/abi/arch/riscv.test.ts.
 *
 * Naming: dotted, lower-case, class first (`core.ra`, `csr.aia.siselect`, `isa_ext.zicbom`,
 * `sbi_state.fwft.pointer_masking.flags`). Vector data registers are listed at VLEN = 128
 * (U128, `vector.v0`); other vector lengths are decoded structurally (see decode.ts).
 */
import type { RegFields } from "../types.js";
import type { RowSpec } from "../table.js";
import {
  RISCV_CSR_SUBTYPE,
  RISCV_EXT_SUBTYPE,
  RISCV_ISA_EXT_NAMES,
  RISCV_ISA_MULTI_REG_LAST,
  RISCV_REG_TYPE,
  RISCV_SBI_EXT_NAMES,
  RISCV_SBI_MULTI_REG_LAST,
  RISCV_SBI_STATE_SUBTYPE,
  RISCV_ULONG_BYTES,
  RISCV_VECTOR_REG_BASE,
  riscvRegId,
} from "./constants.js";

const T = RISCV_REG_TYPE;
const U64 = RISCV_ULONG_BYTES;

/** How one register class is laid out: its catalog class name and its subtype names by code. */
export interface RiscvClassInfo {
  readonly type: number;
  /** Catalog class name, e.g. `"isa_ext"`. */
  readonly name: string;
  /** Subtype names indexed by subtype code; `[""]` for classes without subtypes. */
  readonly subtypes: readonly string[];
  /** Size in bytes of a register of this class that has no row (FP_F words are 4, all else 8). */
  readonly slotBytes: number;
}

/** Classes by type code (types 1..10), in type order. */
export const RISCV_CLASSES: readonly RiscvClassInfo[] = [
  { type: T.CONFIG, name: "config", subtypes: [""], slotBytes: U64 },
  { type: T.CORE, name: "core", subtypes: [""], slotBytes: U64 },
  { type: T.CSR, name: "csr", subtypes: ["general", "aia", "smstateen"], slotBytes: U64 },
  { type: T.TIMER, name: "timer", subtypes: [""], slotBytes: 8 },
  { type: T.FP_F, name: "fp_f", subtypes: [""], slotBytes: 4 },
  { type: T.FP_D, name: "fp_d", subtypes: [""], slotBytes: 8 },
  {
    type: T.ISA_EXT,
    name: "isa_ext",
    subtypes: ["single", "multi_en", "multi_dis"],
    slotBytes: U64,
  },
  {
    type: T.SBI_EXT,
    name: "sbi_ext",
    subtypes: ["single", "multi_en", "multi_dis"],
    slotBytes: U64,
  },
  { type: T.VECTOR, name: "vector", subtypes: [""], slotBytes: U64 },
  { type: T.SBI_STATE, name: "sbi_state", subtypes: ["sta", "fwft"], slotBytes: U64 },
];

/** The class for a type code, or `undefined` for 0 and 11..255. */
export function riscvClass(type: number): RiscvClassInfo | undefined {
  return RISCV_CLASSES.find((c) => c.type === type);
}

/** The `fields` object every riscv RegInfo carries. */
export function riscvFields(
  type: number,
  subtype: number,
  index: number,
  extra?: Readonly<Record<string, number>>,
): RegFields {
  const cls = riscvClass(type);
  return {
    type,
    typeName: cls?.name ?? "",
    subtype,
    subtypeName: cls?.subtypes[subtype] ?? "",
    index,
    ...extra,
  };
}

interface Entry {
  readonly name: string;
  readonly aliases?: readonly string[];
  readonly readOnly?: boolean;
}

function rows(
  type: number,
  subtype: number,
  prefix: string,
  entries: readonly (Entry | string)[],
  sizeOf: (index: number) => number,
): RowSpec[] {
  const cls = riscvClass(type);
  if (cls === undefined) throw new Error(`riscv table: no class for type ${type}`);
  return entries.map((entry, index) => {
    const e: Entry = typeof entry === "string" ? { name: entry } : entry;
    return {
      id: riscvRegId(type, subtype, index, sizeOf(index)),
      name: `${prefix}.${e.name}`,
      class: cls.name,
      fields: riscvFields(type, subtype, index),
      ...(e.readOnly === true ? { readOnly: true } : {}),
      ...(e.aliases !== undefined ? { aliases: e.aliases } : {}),
    };
  });
}

const ulong = (): number => U64;

/** user_regs_struct order (ptrace.h): index 0 is pc, then x1..x31 by ABI name. */
// prettier-ignore
const CORE_ABI_NAMES = [
  "pc", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
  "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
];

function coreEntries(): Entry[] {
  const regs = CORE_ABI_NAMES.map((abi, x): Entry => {
    if (x === 0) return { name: "pc", aliases: ["pc"] };
    return { name: abi, aliases: x === 8 ? [abi, "fp", "x8"] : [abi, `x${x}`] };
  });
  return [...regs, { name: "mode" }];
}

/** The unaliased name doubles as an alias when nothing else in the namespace uses it. */
const selfAliased = (names: readonly string[]): Entry[] =>
  names.map((name) => ({ name, aliases: [name] }));

const CSR_GENERAL = ["sstatus", "sie", "stvec", "sscratch", "sepc", "scause", "stval", "sip"];
const CSR_GENERAL_REST = ["satp", "scounteren", "senvcfg"];
const CSR_AIA = ["siselect", "iprio1", "iprio2", "sieh", "siph", "iprio1h", "iprio2h"];

const fpNames = (): string[] => [...Array.from({ length: 32 }, (_, n) => `f${n}`), "fcsr"];

function vectorRows(): RowSpec[] {
  const csrs = rows(
    T.VECTOR,
    0,
    "vector",
    [
      ...selfAliased(["vstart", "vl", "vtype", "vcsr"]),
      { name: "vlenb", aliases: ["vlenb"], readOnly: true },
    ],
    ulong,
  );
  const data = Array.from({ length: 32 }, (_, n): RowSpec => {
    const index = RISCV_VECTOR_REG_BASE + n;
    return {
      id: riscvRegId(T.VECTOR, 0, index, 16),
      name: `vector.v${n}`,
      class: "vector",
      fields: riscvFields(T.VECTOR, 0, index, { vreg: n, vlenb: 16 }),
      aliases: [`v${n}`],
    };
  });
  return [...csrs, ...data];
}

function multiRows(type: number, prefix: string, last: number): RowSpec[] {
  const words = Array.from({ length: last + 1 }, (_, w) => String(w));
  return [
    ...rows(type, RISCV_EXT_SUBTYPE.MULTI_EN, `${prefix}.multi_en`, words, ulong),
    ...rows(type, RISCV_EXT_SUBTYPE.MULTI_DIS, `${prefix}.multi_dis`, words, ulong),
  ];
}

/**
 * Every named riscv register, in KVM_GET_REG_LIST order (config, core, csr, timer, fp_f, fp_d,
 * vector, isa_ext, sbi_ext, sbi_state); MULTI words, which the kernel never lists, close their
 * class.
 */
export function riscvRows(): RowSpec[] {
  const S = RISCV_CSR_SUBTYPE;
  const fpD = (index: number): number => (index === 32 ? 4 : 8); // fcsr is U32 in FP_D (§8.7)
  return [
    ...rows(
      T.CONFIG,
      0,
      "config",
      [
        "isa",
        { name: "zicbom_block_size", readOnly: true },
        "mvendorid",
        "marchid",
        "mimpid",
        { name: "zicboz_block_size", readOnly: true },
        { name: "satp_mode", readOnly: true },
        { name: "zicbop_block_size", readOnly: true },
      ],
      ulong,
    ),
    ...rows(T.CORE, 0, "core", coreEntries(), ulong),
    ...rows(T.CSR, S.GENERAL, "csr", selfAliased([...CSR_GENERAL, ...CSR_GENERAL_REST]), ulong),
    ...rows(T.CSR, S.AIA, "csr.aia", selfAliased(CSR_AIA), ulong),
    ...rows(T.CSR, S.SMSTATEEN, "csr.smstateen", selfAliased(["sstateen0"]), ulong),
    ...rows(
      T.TIMER,
      0,
      "timer",
      [{ name: "frequency", readOnly: true }, "time", "compare", "state"],
      () => 8,
    ),
    ...rows(T.FP_F, 0, "fp_f", fpNames(), () => 4),
    ...rows(T.FP_D, 0, "fp_d", fpNames(), fpD),
    ...vectorRows(),
    ...rows(T.ISA_EXT, RISCV_EXT_SUBTYPE.SINGLE, "isa_ext", RISCV_ISA_EXT_NAMES, ulong),
    ...multiRows(T.ISA_EXT, "isa_ext", RISCV_ISA_MULTI_REG_LAST),
    ...rows(T.SBI_EXT, RISCV_EXT_SUBTYPE.SINGLE, "sbi_ext", RISCV_SBI_EXT_NAMES, ulong),
    ...multiRows(T.SBI_EXT, "sbi_ext", RISCV_SBI_MULTI_REG_LAST),
    ...rows(
      T.SBI_STATE,
      RISCV_SBI_STATE_SUBTYPE.STA,
      "sbi_state.sta",
      ["shmem_lo", "shmem_hi"],
      ulong,
    ),
    ...rows(
      T.SBI_STATE,
      RISCV_SBI_STATE_SUBTYPE.FWFT,
      "sbi_state.fwft",
      [
        "misaligned_deleg.enable",
        "misaligned_deleg.flags",
        "misaligned_deleg.value",
        "pointer_masking.enable",
        "pointer_masking.flags",
        "pointer_masking.value",
      ],
      ulong,
    ),
  ];
}
