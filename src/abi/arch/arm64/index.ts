/** arm64 register catalog (placeholder until its table lands). */
import { makeCatalog } from "../table.js";

/** The arm64 catalog. */
export const catalog = makeCatalog({
  arch: "arm64",
  title: "arm64",
  classes: [],
  rows: [],
  decodeGeneric: () => undefined,
  parseGenericName: () => undefined,
});
