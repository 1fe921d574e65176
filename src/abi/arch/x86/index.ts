/** x86 register catalog (placeholder until its table lands). */
import { makeCatalog } from "../table.js";

/** The x86 catalog. */
export const catalog = makeCatalog({
  arch: "x86",
  title: "x86",
  classes: [],
  rows: [],
  decodeGeneric: () => undefined,
  parseGenericName: () => undefined,
});
