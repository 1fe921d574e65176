/** s390 register catalog (placeholder until its table lands). */
import { makeCatalog } from "../table.js";

/** The s390 catalog. */
export const catalog = makeCatalog({
  arch: "s390",
  title: "s390",
  classes: [],
  rows: [],
  decodeGeneric: () => undefined,
  parseGenericName: () => undefined,
});
