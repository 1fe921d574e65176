/** riscv register catalog (placeholder until its table lands). */
import { makeCatalog } from "../table.js";

/** The riscv catalog. */
export const catalog = makeCatalog({
  arch: "riscv",
  title: "riscv",
  classes: [],
  rows: [],
  decodeGeneric: () => undefined,
  parseGenericName: () => undefined,
});
