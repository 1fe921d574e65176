/** arm register catalog (placeholder until its table lands). */
import { makeCatalog } from "../table.js";

/** The arm catalog. */
export const catalog = makeCatalog({
  arch: "arm",
  title: "arm",
  classes: [],
  rows: [],
  decodeGeneric: () => undefined,
  parseGenericName: () => undefined,
});
