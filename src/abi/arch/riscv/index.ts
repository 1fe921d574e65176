/**
 * The riscv (RV64) register catalog: the namespace the soft backend implements bit for bit.
 *
 * Table rows come from names.ts (every id Linux 6.18 defines; vector data at VLEN 128),
 * structural decoding and generic names from decode.ts, the shared numbers from constants.ts.
 * `fields` is `{ type, typeName, subtype, subtypeName, index }` (subtype 0 and subtypeName ""
 * for classes without subtypes); vector data registers add `{ vreg, vlenb }`.
 */
import { lazy, makeCatalog } from "../table.js";
import { makeRiscvDecoder } from "./decode.js";
import { riscvRows } from "./names.js";

export {
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
  riscvRegParts,
} from "./constants.js";
export type { RiscvRegParts, RiscvRegType } from "./constants.js";
export { RISCV_CLASSES } from "./names.js";
export type { RiscvClassInfo } from "./names.js";

const rows = lazy(riscvRows);
// The structural decoder needs the rows (the sizes of the ids it must not shadow).
const decoder = lazy(() => makeRiscvDecoder(rows()));

/** The riscv catalog. */
export const catalog = makeCatalog({
  arch: "riscv",
  title: "RISC-V (RV64)",
  classes: [
    "config",
    "core",
    "csr",
    "timer",
    "fp_f",
    "fp_d",
    "vector",
    "isa_ext",
    "sbi_ext",
    "sbi_state",
  ],
  rows,
  decodeGeneric: (id) => decoder().decodeGeneric(id),
  parseGenericName: (name) => decoder().parseGenericName(name),
});
