/** loongarch register catalog (placeholder until its table lands). */
import { makeCatalog } from "../table.js";

/** The loongarch catalog. */
export const catalog = makeCatalog({
  arch: "loongarch",
  title: "loongarch",
  classes: [],
  rows: [],
  decodeGeneric: () => undefined,
  parseGenericName: () => undefined,
});
