/**
 * The powerpc register catalog: every KVM_REG_PPC_* ONE_REG id in
 * arch/powerpc/include/uapi/asm/kvm.h (Linux 6.18), with the sizes the header gives.
 *
 * `id = 0x1000000000000000 | size | index`; index bit 31 (`KVM_REG_PPC_TM`) selects the
 * transactional-memory checkpointed copies. kvmppc_get_one_reg / kvmppc_set_one_reg and the
 * Book3S/BookE handlers switch on the whole id, so the size is part of the identity: LPCR (U32)
 * and LPCR_64 (U64) share index 0xb5, MAS0 (U32) and ICP_STATE (U64) share 0x8c, MAS1 (U32)
 * and VP_STATE (U128) share 0x8d. An id without a row is not a register (EINVAL): there are no
 * generic names. Names drop the `KVM_REG_PPC_` prefix, which stays accepted as an alias.
 * `fields` is `{ index, tm }` (index without the TM bit; tm 0 or 1).
 */
import { makeRegId } from "../../regid.js";
import type { RowSpec } from "../table.js";
import { makeCatalog } from "../table.js";

/** `KVM_REG_PPC_TM` without the arch byte; indices stay positive numbers (no `|` on it). */
const TM_BIT = 0x80000000;

/** [index, name, size in bytes] of one register. */
type Def = readonly [number, string, number];

/** `count` registers `prefix<from>..` at indices `first..`, all one size (FPR0..31, PMC1..8). */
const series = (first: number, prefix: string, count: number, size: number, from = 0): Def[] =>
  Array.from({ length: count }, (_, n): Def => [first + n, `${prefix}${from + n}`, size]);

// prettier-ignore
const CLASSES: readonly (readonly [string, readonly Def[]])[] = [
  [
    "spr",
    [
      [0x01, "HIOR", 8], ...series(0x02, "IAC", 4, 8, 1),
      [0x06, "DAC1", 8], [0x07, "DAC2", 8], [0x08, "DABR", 8], [0x09, "DSCR", 8],
      [0x0a, "PURR", 8], [0x0b, "SPURR", 8], [0x0c, "DAR", 8], [0x0d, "DSISR", 4],
      [0x0e, "AMR", 8], [0x0f, "UAMOR", 8], [0x9c, "TB_OFFSET", 8], [0x9f, "IAMR", 8],
      [0xa0, "TFHAR", 8], [0xa1, "TFIAR", 8], [0xa2, "TEXASR", 8], [0xa3, "FSCR", 8],
      [0xa4, "PSPB", 4], [0xa5, "EBBHR", 8], [0xa6, "EBBRR", 8], [0xa7, "BESCR", 8],
      [0xa8, "TAR", 8], [0xa9, "DPDES", 8], [0xaa, "DAWR", 8], [0xab, "DAWRX", 8],
      [0xac, "CIABR", 8], [0xad, "IC", 8], [0xae, "VTB", 8], [0xaf, "CSIGR", 8],
      [0xb0, "TACR", 8], [0xb1, "TCSCR", 8], [0xb2, "PID", 8], [0xb3, "ACOP", 8],
      [0xb5, "LPCR", 4], [0xb5, "LPCR_64", 8], [0xb6, "PPR", 8], [0xb7, "ARCH_COMPAT", 4],
      [0xb8, "DABRX", 4], [0xb9, "WORT", 8], [0xbc, "TIDR", 8], [0xbd, "PSSCR", 8],
      [0xbe, "DEC_EXPIRY", 8], [0xbf, "ONLINE", 4], [0xc0, "PTCR", 8], [0xc4, "DAWR1", 8],
      [0xc5, "DAWRX1", 8], [0xc6, "DEXCR", 8], [0xc7, "HASHKEYR", 8], [0xc8, "HASHPKEYR", 8],
    ],
  ],
  [
    "pmu",
    [
      [0x10, "MMCR0", 8], [0x11, "MMCR1", 8], [0x12, "MMCRA", 8], [0x13, "MMCR2", 8],
      [0x14, "MMCRS", 8], [0x15, "SIAR", 8], [0x16, "SDAR", 8], [0x17, "SIER", 8],
      ...series(0x18, "PMC", 8, 4, 1),
      [0x9d, "SPMC1", 4], [0x9e, "SPMC2", 4], [0xc1, "MMCR3", 8], [0xc2, "SIER2", 8],
      [0xc3, "SIER3", 8],
    ],
  ],
  ["fpr", [...series(0x20, "FPR", 32, 8), [0x80, "FPSCR", 8]]],
  ["vr", [...series(0x40, "VR", 32, 16), [0x81, "VSCR", 4], [0xb4, "VRSAVE", 4]]],
  ["vsr", series(0x60, "VSR", 32, 16)],
  ["vpa", [[0x82, "VPA_ADDR", 8], [0x83, "VPA_SLB", 16], [0x84, "VPA_DTL", 16]]],
  ["interrupt", [[0x8c, "ICP_STATE", 8], [0x8d, "VP_STATE", 16]]],
  [
    "booke",
    [
      [0x85, "EPCR", 4], [0x86, "EPR", 4], [0x87, "OR_TSR", 4], [0x88, "CLEAR_TSR", 4],
      [0x89, "TCR", 4], [0x8a, "TSR", 4], [0x8b, "DEBUG_INST", 4], [0x8c, "MAS0", 4],
      [0x8d, "MAS1", 4], [0x8e, "MAS2", 8], [0x8f, "MAS7_3", 8], [0x90, "MAS4", 4],
      [0x91, "MAS6", 4], [0x92, "MMUCFG", 4],
      ...[0, 1, 2, 3].map((n): Def => [0x93 + n, `TLB${n}CFG`, 4]),
      ...[0, 1, 2, 3].map((n): Def => [0x97 + n, `TLB${n}PS`, 4]),
      [0x9b, "EPTCFG", 4], [0xba, "SPRG9", 8], [0xbb, "DBSR", 4],
    ],
  ],
  [
    "tm",
    [
      ...series(TM_BIT, "TM_GPR", 32, 8),
      ...series(TM_BIT + 0x20, "TM_VSR", 64, 16),
      [TM_BIT + 0x60, "TM_CR", 8], [TM_BIT + 0x61, "TM_LR", 8], [TM_BIT + 0x62, "TM_CTR", 8],
      [TM_BIT + 0x63, "TM_FPSCR", 8], [TM_BIT + 0x64, "TM_AMR", 8], [TM_BIT + 0x65, "TM_PPR", 8],
      [TM_BIT + 0x66, "TM_VRSAVE", 8], [TM_BIT + 0x67, "TM_VSCR", 4],
      [TM_BIT + 0x68, "TM_DSCR", 8], [TM_BIT + 0x69, "TM_TAR", 8], [TM_BIT + 0x6a, "TM_XER", 8],
    ],
  ],
];

const rows = (): RowSpec[] =>
  CLASSES.flatMap(([cls, defs]) =>
    defs.map(([index, name, size]): RowSpec => {
      const tm = index >= TM_BIT ? 1 : 0;
      return {
        id: makeRegId("ppc", size, BigInt(index)),
        name,
        class: cls,
        fields: { index: index - tm * TM_BIT, tm },
        aliases: [`KVM_REG_PPC_${name}`],
      };
    }),
  );

/** The powerpc catalog. */
export const catalog = makeCatalog({
  arch: "ppc",
  title: "powerpc",
  classes: CLASSES.map(([cls]) => cls),
  rows,
  decodeGeneric: () => undefined,
  parseGenericName: () => undefined,
});
