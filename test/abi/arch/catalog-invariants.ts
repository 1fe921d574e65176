/**
 * Invariants every arch catalog must keep, registered as node:test cases for one catalog:
 * table rows round-trip through decode() and lookup() (names and aliases, any letter case),
 * ids and names are unique, sizes come from the id, and any id the catalog decodes (row or
 * generic) maps back to itself through lookup(). Not a test file itself; catalog tests call
 * `describeCatalogInvariants()`.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { ArchCatalog } from "../../../src/abi/arch/types.js";
import { ARCH_CODES, archCode, formatRegId, regId, regSize } from "../../../src/abi/regid.js";

const LOW_52 = (1n << 52n) - 1n;

/** Random ids in `catalog`'s namespace: row ids with a few bits flipped, and raw payloads. */
export function idsNear(catalog: ArchCatalog): fc.Arbitrary<bigint> {
  const arch = BigInt(ARCH_CODES[catalog.arch]) << 56n;
  const rowIds: bigint[] = catalog.entries.map((e) => e.id);
  const flipped = fc
    .tuple(fc.constantFrom(...rowIds), fc.array(fc.integer({ min: 0, max: 55 }), { maxLength: 3 }))
    .map(([id, bits]) => bits.reduce<bigint>((acc, bit) => acc ^ (1n << BigInt(bit)), id));
  const lowOnly = fc
    .tuple(fc.integer({ min: 0, max: 15 }), fc.bigInt({ min: 0n, max: 0xffffffffn }))
    .map(([size, low]) => arch | (BigInt(size) << 52n) | low);
  const anyPayload = fc.bigInt({ min: 0n, max: (1n << 56n) - 1n }).map((p) => arch | p);
  return fc.oneof(flipped, lowOnly, anyPayload);
}

/** Registers the shared invariant tests for `catalog`. */
export function describeCatalogInvariants(catalog: ArchCatalog): void {
  const label = catalog.arch;
  describe(`${label} catalog invariants`, () => {
    it("has rows, all in this arch's namespace, named, with size = regSize(id)", () => {
      assert.ok(catalog.entries.length > 0);
      for (const e of catalog.entries) {
        assert.equal(archCode(e.id), ARCH_CODES[label], e.name);
        assert.equal(e.arch, label, e.name);
        assert.equal(e.size, regSize(e.id), e.name);
        assert.equal(e.named, true, e.name);
        assert.ok(catalog.classes.includes(e.class), `${e.name}: class ${e.class} not listed`);
      }
      for (const cls of catalog.classes) {
        assert.ok(
          catalog.entries.some((e) => e.class === cls),
          `class ${cls} has no rows`,
        );
      }
    });

    it("has no duplicate ids and no duplicate names or aliases (case-insensitive)", () => {
      const ids = new Set(catalog.entries.map((e) => e.id));
      assert.equal(ids.size, catalog.entries.length);
      const names = catalog.entries.flatMap((e) => [e.name, ...(e.aliases ?? [])]);
      assert.equal(new Set(names.map((n) => n.toLowerCase())).size, names.length);
    });

    it("round-trips every row: id → decode → same row, name/alias → lookup → same id", () => {
      for (const e of catalog.entries) {
        const decoded = catalog.decode(e.id);
        assert.equal(decoded?.name, e.name, formatRegId(e.id));
        assert.equal(decoded.named, true);
        for (const name of [e.name, ...(e.aliases ?? [])]) {
          assert.equal(catalog.lookup(name)?.id, e.id, name);
          assert.equal(catalog.lookup(` ${name.toUpperCase()} `)?.id, e.id, name);
          assert.equal(catalog.lookup(name.toLowerCase())?.id, e.id, name);
        }
      }
    });

    it("rejects ids from a foreign arch byte, even when the low bits match a row", () => {
      for (const e of catalog.entries) {
        const foreign = regId((e.id & LOW_52) | (BigInt(ARCH_CODES.generic) << 56n));
        assert.equal(catalog.decode(foreign), undefined, e.name);
      }
    });

    it("answers every id it decodes consistently (property)", () => {
      fc.assert(
        fc.property(idsNear(catalog), (raw) => {
          const id = regId(raw);
          const info = catalog.decode(id);
          if (info === undefined) return;
          assert.equal(info.id, id);
          assert.equal(info.size, regSize(id));
          assert.equal(info.arch, label);
          assert.ok(catalog.classes.includes(info.class), info.class);
          assert.equal(catalog.lookup(info.name)?.id, id, info.name);
        }),
        { numRuns: 3000 },
      );
    });

    it("returns undefined from lookup() for names it does not know", () => {
      for (const name of ["", "nonsense", "core.", "CSR(", "x99", "0x8030000002000001"]) {
        assert.equal(catalog.lookup(name), undefined, name);
      }
    });
  });
}
