/**
 * Every architecture catalog, on every host: a snapshot or a gdb session may concern a foreign
 * arch. This is the one place that maps an id's arch byte to its catalog.
 *
 * Each catalog's module is loaded on first use, not with this one: a RISC-V boot names no x86
 * or arm64 register, and the eight catalogs are ~20 modules (~12 ms of `regvisor run`'s start,
 * issue 13). Lookups are synchronous, so this is Node's synchronous `require()` of an ES module
 * (enabled by default since Node 20.19, package.json "engines"), as src/cli/backends.ts loads
 * the KVM backend.
 */
import { createRequire } from "node:module";
import type { ArchCatalog, RegInfo } from "./arch/types.js";
import type { ArchName, RegId } from "./regid.js";
import { archCode, archOf, formatRegId, regId, regSize } from "./regid.js";
import { UnknownRegisterError } from "../errors.js";

const require = createRequire(import.meta.url);

/**
 * Each arch's catalog module, in CATALOG_ARCHES order. Each is a literal `require()` so that the
 * CLI bundle (scripts/bundle.mjs) can follow it and keep it lazy.
 */
const CATALOG_MODULES: Readonly<Partial<Record<ArchName, () => unknown>>> = {
  x86: (): unknown => require("./arch/x86/index.js"),
  arm64: (): unknown => require("./arch/arm64/index.js"),
  arm: (): unknown => require("./arch/arm/index.js"),
  riscv: (): unknown => require("./arch/riscv/index.js"),
  s390: (): unknown => require("./arch/s390/index.js"),
  ppc: (): unknown => require("./arch/ppc/index.js"),
  mips: (): unknown => require("./arch/mips/index.js"),
  loongarch: (): unknown => require("./arch/loongarch/index.js"),
};

function isCatalogModule(module: unknown): module is { readonly catalog: ArchCatalog } {
  return typeof module === "object" && module !== null && "catalog" in module;
}

/** Catalogs by arch name; `generic` and `ia64` have none (no registers are defined there). */
export const CATALOGS: Readonly<Partial<Record<ArchName, ArchCatalog>>> = Object.defineProperties(
  {},
  Object.fromEntries(
    Object.entries(CATALOG_MODULES).map(([arch, load]): [string, PropertyDescriptor] => {
      let loaded: ArchCatalog | undefined;
      const get = (): ArchCatalog => {
        if (loaded !== undefined) return loaded;
        const module = load();
        if (!isCatalogModule(module)) throw new Error(`Cannot load the ${arch} register catalog`);
        return (loaded = module.catalog);
      };
      return [arch, { enumerable: true, get }];
    }),
  ),
);

/** Arch names that have a catalog, in a stable order. */
export const CATALOG_ARCHES: readonly ArchName[] = Object.keys(CATALOGS) as ArchName[];

/** The catalog for `arch`, or `undefined` for a namespace with no registers. */
export function catalogFor(arch: ArchName): ArchCatalog | undefined {
  // Own keys only: "__proto__" or "toString" must not reach Object.prototype.
  return Object.hasOwn(CATALOGS, arch) ? CATALOGS[arch] : undefined;
}

/** Result of decoding an id that fits no namespace: reported as unknown, never guessed. */
export interface UnknownReg {
  readonly id: RegId;
  readonly arch: ArchName | undefined;
  readonly archCode: number;
  readonly size: number;
  readonly known: false;
}

/** Result of `decodeReg()`: a catalog answer, or an honest "unknown". */
export type Decoded = (RegInfo & { readonly known: true }) | UnknownReg;

/**
 * Decodes any 64-bit id through the catalog of its arch byte.
 * @throws {TypeError} if `id` is not a bigint; {RangeError} if it is negative or above 2^64-1.
 */
export function decodeReg(id: RegId): Decoded {
  regId(id); // a plain bigint from JavaScript may be out of range: refuse it, never decode it
  const arch = archOf(id);
  const info = arch === undefined ? undefined : catalogFor(arch)?.decode(id);
  if (info === undefined) {
    return { id, arch, archCode: archCode(id), size: regSize(id), known: false };
  }
  return { ...info, known: true };
}

/**
 * Short label for messages: `"riscv core.ra"`, or `"unknown"` when the id fits no namespace.
 * Used by every error that names a register.
 */
export function describeReg(id: RegId): string {
  const decoded = decodeReg(id);
  return decoded.known ? `${decoded.arch} ${decoded.name}` : "unknown";
}

/** `0x…` plus the catalog label, as in "0x8030000002000001 (riscv core.ra)". */
export function regLabel(id: RegId): string {
  return `${formatRegId(id)} (${describeReg(id)})`;
}

/**
 * Finds a register of `arch` by name, alias or generic name.
 * @throws {TypeError} if `name` is not a string.
 * @throws {UnknownRegisterError} if the arch has no catalog or no such register name.
 */
export function lookupReg(arch: ArchName, name: string): RegInfo {
  if (typeof name !== "string") throw new TypeError("A register name must be a string");
  const catalog = catalogFor(arch);
  if (catalog === undefined) {
    throw new UnknownRegisterError(
      `No register catalog for arch "${arch}"; one of ${CATALOG_ARCHES.join(", ")}`,
    );
  }
  const info = catalog.lookup(name);
  if (info === undefined) {
    throw new UnknownRegisterError(`No register named "${name}" in the ${arch} catalog`);
  }
  return info;
}
