/** mips register catalog (placeholder until its table lands). */
import { makeCatalog } from "../table.js";

/** The mips catalog. */
export const catalog = makeCatalog({
  arch: "mips",
  title: "mips",
  classes: [],
  rows: [],
  decodeGeneric: () => undefined,
  parseGenericName: () => undefined,
});
