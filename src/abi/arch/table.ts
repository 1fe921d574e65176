/**
 * Shared machinery for catalogs: a name/id index over table rows, with a structural decoder
 * behind it for ids that have no row. Each arch supplies its rows and its decoder; this file
 * holds the lookups so that every catalog behaves the same (case-insensitive names, aliases,
 * generic names accepted by `lookup()`).
 */
import type { ArchName, RegId } from "../regid.js";
import { regId, regSize } from "../regid.js";
import type { ArchCatalog, RegFields, RegInfo } from "./types.js";

/** Input for one table row; `size` is derived from the id. */
export interface RowSpec {
  readonly id: bigint;
  readonly name: string;
  readonly class: string;
  readonly fields: RegFields;
  readonly readOnly?: boolean;
  readonly aliases?: readonly string[];
  readonly pseudo?: boolean;
}

/** Builds a `RegInfo` for `arch`; shared by table rows and generic decodings. */
export function regInfo(arch: ArchName, spec: RowSpec, named: boolean): RegInfo {
  const id = regId(spec.id);
  const info: RegInfo = {
    id,
    arch,
    size: regSize(id),
    name: spec.name,
    class: spec.class,
    readOnly: spec.readOnly ?? false,
    named,
    fields: spec.fields,
    ...(spec.aliases !== undefined && spec.aliases.length > 0 ? { aliases: spec.aliases } : {}),
    ...(spec.pseudo === true ? { pseudo: true } : {}),
  };
  return info;
}

/** Options for `makeCatalog`. */
export interface CatalogSpec {
  readonly arch: ArchName;
  readonly title: string;
  readonly classes: readonly string[];
  /** The table rows, built on first use (a process that needs one arch builds no other). */
  readonly rows: () => readonly RowSpec[];
  /**
   * Structural decoder for ids with no row: returns a generic row (named: false is applied by
   * the caller) or `undefined` when the id fits no namespace of this arch.
   */
  readonly decodeGeneric: (id: RegId) => RowSpec | undefined;
  /**
   * Parser for generic names (e.g. `ARM64_SYS_REG(3,0,1,0,0)`) back to an id; `undefined` when
   * the text is not a generic name of this arch.
   */
  readonly parseGenericName: (name: string) => bigint | undefined;
}

/**
 * Builds a catalog from rows and a structural decoder.
 * @throws {Error} (on first use) if two rows share an id or a name/alias: a bug in the table,
 *   caught by the catalog tests, which build every catalog.
 */
export function makeCatalog(spec: CatalogSpec): ArchCatalog {
  const index = lazy(() => indexRows(spec));
  const decode = (id: RegId): RegInfo | undefined => {
    const row = index().byId.get(id);
    if (row !== undefined) return row;
    const generic = spec.decodeGeneric(id);
    return generic === undefined ? undefined : regInfo(spec.arch, generic, false);
  };
  return {
    arch: spec.arch,
    title: spec.title,
    classes: spec.classes,
    get entries() {
      return index().entries;
    },
    decode,
    lookup(name: string): RegInfo | undefined {
      const row = index().byName.get(name.trim().toLowerCase());
      if (row !== undefined) return row;
      const raw = spec.parseGenericName(name.trim());
      if (raw === undefined || raw < 0n || raw >= 1n << 64n) return undefined;
      return decode(regId(raw));
    },
  };
}

/** A catalog's rows with their id and name indexes. */
interface RowIndex {
  readonly entries: readonly RegInfo[];
  readonly byId: ReadonlyMap<bigint, RegInfo>;
  readonly byName: ReadonlyMap<string, RegInfo>;
}

/** @throws {Error} if two rows share an id or a name/alias. */
function indexRows(spec: CatalogSpec): RowIndex {
  const entries = spec.rows().map((row) => regInfo(spec.arch, row, true));
  const byId = new Map<bigint, RegInfo>();
  const byName = new Map<string, RegInfo>();
  for (const entry of entries) {
    if (byId.has(entry.id)) {
      throw new Error(`${spec.arch} catalog: duplicate id 0x${entry.id.toString(16)}`);
    }
    byId.set(entry.id, entry);
    for (const name of [entry.name, ...(entry.aliases ?? [])]) {
      const key = name.toLowerCase();
      const other = byName.get(key);
      if (other !== undefined) {
        throw new Error(`${spec.arch} catalog: name "${name}" used by ${other.name} too`);
      }
      byName.set(key, entry);
    }
  }
  return { entries, byId, byName };
}

/**
 * `make()` run once, on the first call: tables every process does not need (seven of the
 * eight arch catalogs on a soft run) cost nothing until something reads them.
 */
export function lazy<T>(make: () => T): () => T {
  let made: { readonly value: T } | undefined;
  return () => (made ??= { value: make() }).value;
}
