import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  catalog,
  RISCV_CLASSES,
  RISCV_CSR_SUBTYPE,
  RISCV_EXT_SUBTYPE,
  RISCV_ISA_EXT_NAMES,
  RISCV_ISA_MULTI_REG_LAST,
  RISCV_REG_TYPE,
  RISCV_SBI_EXT_NAMES,
  RISCV_SBI_MULTI_REG_LAST,
  riscvRegId,
  riscvRegParts,
} from "../../../src/abi/arch/riscv/index.js";
import type { RegInfo } from "../../../src/abi/arch/types.js";
import { describeReg, regLabel } from "../../../src/abi/catalog.js";
import { regId } from "../../../src/abi/regid.js";
import { describeCatalogInvariants } from "./catalog-invariants.js";

const T = RISCV_REG_TYPE;

function named(name: string): RegInfo {
  const info = catalog.lookup(name);
  assert.ok(info, `no riscv register named ${name}`);
  return info;
}

/** Header values (arch/riscv/include/uapi/asm/kvm.h, RV64) as listed in kvm-register-abi.md §8. */
const GOLDEN: readonly (readonly [string, bigint])[] = [
  ["config.isa", 0x8030000001000000n],
  ["config.zicbom_block_size", 0x8030000001000001n],
  ["config.mimpid", 0x8030000001000004n],
  ["config.satp_mode", 0x8030000001000006n],
  ["config.zicbop_block_size", 0x8030000001000007n],
  ["core.pc", 0x8030000002000000n],
  ["core.ra", 0x8030000002000001n],
  ["core.s0", 0x8030000002000008n],
  ["core.a0", 0x803000000200000an],
  ["core.s2", 0x8030000002000012n],
  ["core.t6", 0x803000000200001fn],
  ["core.mode", 0x8030000002000020n],
  ["csr.sstatus", 0x8030000003000000n],
  ["csr.sepc", 0x8030000003000004n],
  ["csr.senvcfg", 0x803000000300000an],
  ["csr.aia.siselect", 0x8030000003010000n],
  ["csr.aia.iprio2h", 0x8030000003010006n],
  ["csr.smstateen.sstateen0", 0x8030000003020000n],
  ["timer.frequency", 0x8030000004000000n],
  ["timer.state", 0x8030000004000003n],
  ["fp_f.f0", 0x8020000005000000n],
  ["fp_f.f31", 0x802000000500001fn],
  ["fp_f.fcsr", 0x8020000005000020n],
  ["fp_d.f0", 0x8030000006000000n],
  ["fp_d.f31", 0x803000000600001fn],
  ["fp_d.fcsr", 0x8020000006000020n],
  ["vector.vstart", 0x8030000009000000n],
  ["vector.vlenb", 0x8030000009000004n],
  ["vector.v0", 0x8040000009000006n],
  ["vector.v31", 0x8040000009000025n],
  ["isa_ext.a", 0x8030000007000000n],
  ["isa_ext.sstc", 0x8030000007000008n],
  ["isa_ext.zicbom", 0x803000000700000bn],
  ["isa_ext.v", 0x803000000700000fn],
  ["isa_ext.smnpm", 0x803000000700003en],
  ["isa_ext.zvfbfwma", 0x803000000700004an],
  ["isa_ext.multi_en.0", 0x8030000007010000n],
  ["isa_ext.multi_dis.1", 0x8030000007020001n],
  ["sbi_ext.v01", 0x8030000008000000n],
  ["sbi_ext.dbcn", 0x8030000008000009n],
  ["sbi_ext.fwft", 0x803000000800000cn],
  ["sbi_ext.multi_en.0", 0x8030000008010000n],
  ["sbi_ext.multi_dis.0", 0x8030000008020000n],
  ["sbi_state.sta.shmem_lo", 0x803000000a000000n],
  ["sbi_state.sta.shmem_hi", 0x803000000a000001n],
  ["sbi_state.fwft.misaligned_deleg.enable", 0x803000000a010000n],
  ["sbi_state.fwft.pointer_masking.value", 0x803000000a010005n],
];

describeCatalogInvariants(catalog);

describe("riscv catalog", () => {
  it("matches the kernel header ids (golden table)", () => {
    for (const [name, id] of GOLDEN) assert.equal(named(name).id, id, name);
  });

  it("has every register 6.18 defines, per class", () => {
    const counts = Object.fromEntries(
      catalog.classes.map((c) => [c, catalog.entries.filter((e) => e.class === c).length]),
    );
    assert.deepEqual(counts, {
      config: 8,
      core: 33,
      csr: 19,
      timer: 4,
      fp_f: 33,
      fp_d: 33,
      vector: 37,
      isa_ext: 75 + 2 * (RISCV_ISA_MULTI_REG_LAST + 1),
      sbi_ext: 13 + 2 * (RISCV_SBI_MULTI_REG_LAST + 1),
      sbi_state: 8,
    });
    assert.equal(catalog.entries.length, 269);
  });

  it("numbers core registers in user_regs_struct order with ABI and xN aliases", () => {
    const abi = ["ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3"];
    abi.forEach((name, i) => {
      assert.equal(named(`x${i + 1}`).name, `core.${name}`);
      assert.equal(named(name).fields.index, i + 1);
    });
    assert.equal(named("x31").name, "core.t6");
    assert.equal(named("fp").id, named("core.s0").id);
    assert.equal(named("pc").fields.index, 0);
    assert.equal(catalog.lookup("x0"), undefined, "x0 is not exposed by KVM");
  });

  it("keeps the CSR sepc and the core pc apart", () => {
    assert.equal(named("sepc").name, "csr.sepc");
    assert.equal(named("pc").name, "core.pc");
    assert.notEqual(named("sepc").id, named("pc").id);
  });

  it("pins the FP_D fcsr quirk: a U32 register inside the 64-bit FP_D class", () => {
    assert.equal(named("fp_d.fcsr").size, 4);
    assert.equal(named("fp_d.f7").size, 8);
    assert.equal(named("fp_f.fcsr").size, 4);
    assert.equal(named("fp_f.f7").size, 4);
    assert.equal(catalog.decode(riscvRegId(T.FP_D, 0, 32, 8)), undefined, "U64 fcsr is EINVAL");
    assert.equal(catalog.decode(riscvRegId(T.FP_D, 0, 0, 4)), undefined, "U32 f0 is EINVAL");
    assert.equal(named("fp_d.32").name, "fp_d.fcsr", "numeric lookup uses the row's own size");
  });

  it("marks exactly the read-only registers", () => {
    const readOnly = catalog.entries.filter((e) => e.readOnly).map((e) => e.name);
    assert.deepEqual(readOnly.sort(), [
      "config.satp_mode",
      "config.zicbom_block_size",
      "config.zicbop_block_size",
      "config.zicboz_block_size",
      "timer.frequency",
      "vector.vlenb",
    ]);
  });
});

describe("riscv vector registers", () => {
  it("lists v0..v31 at VLEN 128 (U128) with vlenb 16", () => {
    for (let n = 0; n < 32; n++) {
      const v = named(`vector.v${n}`);
      assert.equal(v.size, 16);
      assert.deepEqual([v.fields.vreg, v.fields.vlenb, v.fields.index], [n, 16, 6 + n]);
      assert.equal(named(`v${n}`).id, v.id);
    }
  });

  it("decodes v3 at VLEN 256 (U256) structurally as vector.v3@256", () => {
    const id = riscvRegId(T.VECTOR, 0, 6 + 3, 32);
    const info = catalog.decode(id);
    assert.equal(info?.name, "vector.v3@256");
    assert.equal(info.named, false);
    assert.equal(info.size, 32);
    assert.equal(info.fields.vlenb, 32);
    assert.equal(info.fields.vreg, 3);
    assert.equal(catalog.lookup("vector.v3@256")?.id, id);
    assert.equal(catalog.lookup("vector.v3")?.size, 16, "the plain name is the U128 row");
    assert.equal(catalog.lookup("vector.v3@128")?.name, "vector.v3");
  });

  it("accepts VLEN 32..65536 and nothing outside it", () => {
    assert.equal(catalog.decode(riscvRegId(T.VECTOR, 0, 37, 8192))?.name, "vector.v31@65536");
    assert.equal(catalog.decode(riscvRegId(T.VECTOR, 0, 6, 4))?.name, "vector.v0@32");
    assert.equal(catalog.decode(riscvRegId(T.VECTOR, 0, 6, 2)), undefined);
    assert.equal(catalog.decode(riscvRegId(T.VECTOR, 0, 6, 16384)), undefined);
    assert.equal(catalog.lookup("vector.v0@48"), undefined);
    assert.equal(catalog.lookup("vector.v32@128"), undefined);
  });

  it("gives the never-valid datap slot and numbers past v31 generic names", () => {
    assert.equal(catalog.decode(riscvRegId(T.VECTOR, 0, 5, 8))?.name, "vector.5");
    assert.equal(catalog.decode(riscvRegId(T.VECTOR, 0, 38, 8))?.name, "vector.38");
  });
});

describe("riscv ISA_EXT and SBI_EXT", () => {
  it("names all 75 ISA extension ids 0..74 in enum order", () => {
    assert.equal(RISCV_ISA_EXT_NAMES.length, 75);
    RISCV_ISA_EXT_NAMES.forEach((ext, i) => {
      const info = catalog.decode(riscvRegId(T.ISA_EXT, RISCV_EXT_SUBTYPE.SINGLE, i, 8));
      assert.equal(info?.name, `isa_ext.${ext}`);
      assert.equal(info.named, true);
    });
  });

  it("decodes ISA_EXT id 75 generically (append-only enum)", () => {
    const info = catalog.decode(riscvRegId(T.ISA_EXT, RISCV_EXT_SUBTYPE.SINGLE, 75, 8));
    assert.equal(info?.name, "isa_ext.75");
    assert.equal(info.named, false);
    assert.equal(info.fields.subtypeName, "single");
    assert.equal(catalog.lookup("isa_ext.75")?.id, info.id);
  });

  it("names the MULTI words up to LAST and decodes later words generically", () => {
    assert.equal(RISCV_ISA_MULTI_REG_LAST, 1);
    assert.equal(RISCV_SBI_MULTI_REG_LAST, 0);
    const next = catalog.decode(riscvRegId(T.ISA_EXT, RISCV_EXT_SUBTYPE.MULTI_EN, 2, 8));
    assert.equal(next?.name, "isa_ext.multi_en.2");
    const sbi = catalog.decode(riscvRegId(T.SBI_EXT, RISCV_EXT_SUBTYPE.MULTI_DIS, 1, 8));
    assert.equal(sbi?.name, "sbi_ext.multi_dis.1");
  });

  it("names the 13 SBI extensions and decodes id 13 generically", () => {
    assert.deepEqual(
      RISCV_SBI_EXT_NAMES.map((_, i) => catalog.decode(riscvRegId(T.SBI_EXT, 0, i, 8))?.name),
      RISCV_SBI_EXT_NAMES.map((ext) => `sbi_ext.${ext}`),
    );
    assert.equal(catalog.decode(riscvRegId(T.SBI_EXT, 0, 13, 8))?.name, "sbi_ext.13");
  });
});

describe("riscv structural decoding", () => {
  it("returns undefined for unknown types", () => {
    for (const type of [0, 11, 12, 0x80, 255]) {
      assert.equal(catalog.decode(riscvRegId(type, 0, 0, 8)), undefined, `type ${type}`);
    }
  });

  it("returns undefined for unknown subtypes", () => {
    const cases: [number, number][] = [
      [T.CSR, 3],
      [T.CONFIG, 1],
      [T.CORE, 0xff],
      [T.ISA_EXT, 3],
      [T.SBI_EXT, 3],
      [T.SBI_STATE, 2],
      [T.VECTOR, 1],
    ];
    for (const [type, subtype] of cases) {
      assert.equal(
        catalog.decode(riscvRegId(type, subtype, 0, 8)),
        undefined,
        `${type}/${subtype}`,
      );
    }
  });

  it("returns undefined when bits 51..32 are set (the kernel folds them into the number)", () => {
    assert.equal(catalog.decode(regId(named("core.ra").id | (1n << 32n))), undefined);
    assert.equal(catalog.decode(regId(named("isa_ext.a").id | (1n << 51n))), undefined);
  });

  it("returns undefined for a named register at the wrong size (EINVAL, not a register)", () => {
    assert.equal(catalog.decode(riscvRegId(T.CORE, 0, 1, 4)), undefined);
    assert.equal(catalog.decode(riscvRegId(T.CORE, 0, 1, 16)), undefined);
    assert.equal(catalog.decode(riscvRegId(T.TIMER, 0, 0, 4)), undefined);
    assert.equal(catalog.decode(riscvRegId(T.FP_F, 0, 0, 8)), undefined);
    assert.equal(catalog.decode(riscvRegId(T.SBI_STATE, 0, 0, 4)), undefined);
  });

  it("decodes unnamed numbers only at the class's slot size", () => {
    assert.equal(catalog.decode(riscvRegId(T.CONFIG, 0, 8, 8))?.name, "config.8");
    assert.equal(catalog.decode(riscvRegId(T.CONFIG, 0, 8, 4)), undefined);
    assert.equal(catalog.decode(riscvRegId(T.FP_F, 0, 33, 4))?.name, "fp_f.33");
    assert.equal(catalog.decode(riscvRegId(T.FP_F, 0, 33, 8)), undefined);
    const csr = catalog.decode(riscvRegId(T.CSR, RISCV_CSR_SUBTYPE.GENERAL, 11, 8));
    assert.equal(csr?.name, "csr.general.11");
    assert.deepEqual(csr.fields, {
      type: 3,
      typeName: "csr",
      subtype: 0,
      subtypeName: "general",
      index: 11,
    });
    assert.equal(catalog.decode(riscvRegId(T.SBI_STATE, 1, 6, 8))?.name, "sbi_state.fwft.6");
  });

  it("round-trips generic names beyond every table through lookup() (property)", () => {
    const slots = RISCV_CLASSES.flatMap((cls) => cls.subtypes.map((_, sub) => ({ cls, sub })));
    fc.assert(
      fc.property(
        fc.constantFrom(...slots),
        fc.integer({ min: 76, max: 0xffff }),
        ({ cls, sub }, index) => {
          const id = riscvRegId(cls.type, sub, index, cls.slotBytes);
          const info = catalog.decode(id);
          assert.ok(info, `${cls.name}/${sub}/${index}`);
          assert.equal(info.named, false);
          assert.match(info.name, new RegExp(`^${cls.name}(\\.[a-z_]+)?\\.${index}$`));
          assert.deepEqual(
            [info.fields.type, info.fields.subtype, info.fields.index],
            [cls.type, sub, index],
          );
          assert.equal(catalog.lookup(info.name)?.id, id);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("accepts the numeric form of named registers in lookup()", () => {
    assert.equal(named("core.1").name, "core.ra");
    assert.equal(named("csr.general.4").name, "csr.sepc");
    assert.equal(named("isa_ext.11").name, "isa_ext.zicbom");
    assert.equal(named("ISA_EXT.MULTI_EN.1").name, "isa_ext.multi_en.1");
    assert.equal(catalog.lookup("core.65536"), undefined);
    assert.equal(catalog.lookup("csr.11"), undefined);
  });
});

describe("riscvRegId() / riscvRegParts()", () => {
  it("builds and splits ids", () => {
    const id = riscvRegId(T.SBI_STATE, 1, 5, 8);
    assert.equal(id, named("sbi_state.fwft.pointer_masking.value").id);
    assert.deepEqual(riscvRegParts(id), { sizeBytes: 8, type: 10, subtype: 1, index: 5, high: 0 });
  });

  it("rejects fields that do not fit with RangeError", () => {
    assert.throws(() => riscvRegId(256, 0, 0, 8), RangeError);
    assert.throws(() => riscvRegId(1, -1, 0, 8), RangeError);
    assert.throws(() => riscvRegId(1, 0, 0x10000, 8), RangeError);
    assert.throws(() => riscvRegId(1, 0, 1.5, 8), RangeError);
    assert.throws(() => riscvRegId(1, 0, 0, 3), RangeError);
  });

  it("feeds the shared labels used in error messages", () => {
    const ra = named("core.ra").id;
    assert.equal(describeReg(ra), "riscv core.ra");
    assert.equal(regLabel(ra), "0x8030000002000001 (riscv core.ra)");
  });
});
