/** ppc register catalog (placeholder until its table lands). */
import { makeCatalog } from "../table.js";

/** The ppc catalog. */
export const catalog = makeCatalog({
  arch: "ppc",
  title: "ppc",
  classes: [],
  rows: [],
  decodeGeneric: () => undefined,
  parseGenericName: () => undefined,
});
