import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { lazy, makeCatalog, type RowSpec } from "../../../src/abi/arch/table.js";
import { riscvRegId, RISCV_REG_TYPE } from "../../../src/abi/arch/riscv/index.js";

describe("makeCatalog()", () => {
  it("builds its rows once, on first use, not when the catalog is made", () => {
    let built = 0;
    const row: RowSpec = {
      id: riscvRegId(RISCV_REG_TYPE.CORE, 0, 1, 8),
      name: "ra",
      class: "core",
      fields: {},
    };
    const catalog = makeCatalog({
      arch: "riscv",
      title: "test",
      classes: ["core"],
      rows: () => {
        built++;
        return [row];
      },
      decodeGeneric: () => undefined,
      parseGenericName: () => undefined,
    });
    assert.equal(built, 0);
    assert.equal(catalog.lookup("RA")?.name, "ra");
    assert.equal(catalog.decode(catalog.entries[0]?.id ?? riscvRegId(0, 0, 0, 8))?.name, "ra");
    assert.equal(catalog.entries.length, 1);
    assert.equal(built, 1);
  });

  it("reports a duplicate name when the table is first read", () => {
    const row: RowSpec = {
      id: riscvRegId(RISCV_REG_TYPE.CORE, 0, 1, 8),
      name: "a",
      class: "c",
      fields: {},
    };
    const other: RowSpec = { ...row, id: riscvRegId(RISCV_REG_TYPE.CORE, 0, 2, 8) };
    const catalog = makeCatalog({
      arch: "riscv",
      title: "test",
      classes: ["c"],
      rows: () => [row, other],
      decodeGeneric: () => undefined,
      parseGenericName: () => undefined,
    });
    assert.throws(() => catalog.entries, /name "a" used by a too/);
  });
});

describe("lazy()", () => {
  it("calls make once and hands back the same value, undefined included", () => {
    let calls = 0;
    const get = lazy((): number | undefined => {
      calls++;
      return undefined;
    });
    assert.equal(get(), undefined);
    assert.equal(get(), undefined);
    assert.equal(calls, 1);
  });
});
