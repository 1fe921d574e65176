import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { ArchCatalog, RegInfo } from "../../../src/abi/arch/types.js";
import { catalog as loongarch } from "../../../src/abi/arch/loongarch/index.js";
import { catalog as mips } from "../../../src/abi/arch/mips/index.js";
import { catalog as ppc } from "../../../src/abi/arch/ppc/index.js";
import { catalog as s390 } from "../../../src/abi/arch/s390/index.js";
import type { RegId } from "../../../src/abi/regid.js";
import { makeRegId, payloadOf, regId, regSize } from "../../../src/abi/regid.js";
import { describeCatalogInvariants } from "./catalog-invariants.js";

function named(catalog: ArchCatalog, name: string): RegInfo {
  const info = catalog.lookup(name);
  assert.ok(info, `no ${catalog.arch} register named ${name}`);
  return info;
}

/** The same register's id with another size, everything else kept. */
function resized(info: RegInfo, sizeBytes: number): RegId {
  return makeRegId(info.arch, sizeBytes, payloadOf(info.id));
}

/** Header values as listed in kvm-register-abi.md §9 (name → id). */
const GOLDEN: readonly (readonly [ArchCatalog, string, bigint])[] = [
  [s390, "TODPR", 0x5020000000000001n],
  [s390, "EPOCHDIFF", 0x5030000000000002n],
  [s390, "CPU_TIMER", 0x5030000000000003n],
  [s390, "CLOCK_COMP", 0x5030000000000004n],
  [s390, "PFTOKEN", 0x5030000000000005n],
  [s390, "PFCOMPARE", 0x5030000000000006n],
  [s390, "PFSELECT", 0x5030000000000007n],
  [s390, "PP", 0x5030000000000008n],
  [s390, "GBEA", 0x5030000000000009n],
  [ppc, "HIOR", 0x1030000000000001n],
  [ppc, "IAC1", 0x1030000000000002n],
  [ppc, "IAC4", 0x1030000000000005n],
  [ppc, "DAC2", 0x1030000000000007n],
  [ppc, "DSCR", 0x1030000000000009n],
  [ppc, "DSISR", 0x102000000000000dn],
  [ppc, "UAMOR", 0x103000000000000fn],
  [ppc, "MMCR0", 0x1030000000000010n],
  [ppc, "PMC1", 0x1020000000000018n],
  [ppc, "PMC8", 0x102000000000001fn],
  [ppc, "FPR0", 0x1030000000000020n],
  [ppc, "FPR31", 0x103000000000003fn],
  [ppc, "VR0", 0x1040000000000040n],
  [ppc, "VR31", 0x104000000000005fn],
  [ppc, "VSR0", 0x1040000000000060n],
  [ppc, "VSR31", 0x104000000000007fn],
  [ppc, "FPSCR", 0x1030000000000080n],
  [ppc, "VSCR", 0x1020000000000081n],
  [ppc, "VPA_ADDR", 0x1030000000000082n],
  [ppc, "ICP_STATE", 0x103000000000008cn],
  [ppc, "MAS0", 0x102000000000008cn],
  [ppc, "TB_OFFSET", 0x103000000000009cn],
  [ppc, "LPCR", 0x10200000000000b5n],
  [ppc, "LPCR_64", 0x10300000000000b5n],
  [ppc, "ARCH_COMPAT", 0x10200000000000b7n],
  [ppc, "DEC_EXPIRY", 0x10300000000000ben],
  [ppc, "PTCR", 0x10300000000000c0n],
  [ppc, "DEXCR", 0x10300000000000c6n],
  [ppc, "TM_GPR0", 0x1030000080000000n],
  [ppc, "TM_GPR31", 0x103000008000001fn],
  [ppc, "TM_VSR0", 0x1040000080000020n],
  [ppc, "TM_VSR63", 0x104000008000005fn],
  [ppc, "TM_CR", 0x1030000080000060n],
  [mips, "R0", 0x7030000000000000n],
  [mips, "HI", 0x7030000000000020n],
  [mips, "LO", 0x7030000000000021n],
  [mips, "PC", 0x7030000000000022n],
  [mips, "CP0_STATUS", 0x7020000000010060n],
  [mips, "CP0_CAUSE", 0x7020000000010068n],
  [mips, "CP0_EPC", 0x7030000000010070n],
  [mips, "CP0_COUNT", 0x7020000000010048n],
  [mips, "CP0_INDEX", 0x7020000000010000n],
  [mips, "MAAR(0)", 0x7030000000010100n],
  [mips, "MAAR(63)", 0x703000000001013fn],
  [mips, "COUNT_CTL", 0x7030000000020000n],
  [mips, "COUNT_RESUME", 0x7030000000020001n],
  [mips, "COUNT_HZ", 0x7030000000020002n],
  [mips, "FPR_32(0)", 0x7020000000030000n],
  [mips, "FPR_64(0)", 0x7030000000030000n],
  [mips, "VEC_128(0)", 0x7040000000030000n],
  [mips, "FCR_IR", 0x7020000000030100n],
  [mips, "FCR_CSR", 0x702000000003011fn],
  [mips, "MSA_IR", 0x7020000000030200n],
  [mips, "MSA_CSR", 0x7020000000030201n],
  [loongarch, "CRMD", 0x9030000000010000n],
  [loongarch, "PRMD", 0x9030000000010008n],
  [loongarch, "ESTAT", 0x9030000000010028n],
  [loongarch, "ERA", 0x9030000000010030n],
  [loongarch, "TCFG", 0x9030000000010208n],
  [loongarch, "CPUCFG2", 0x9030000000040010n],
  [loongarch, "COUNTER", 0x9030000000020001n],
  [loongarch, "VCPU_RESET", 0x9030000000020002n],
  [loongarch, "DEBUG_INST", 0x9030000000020003n],
  [loongarch, "SCR0", 0x9030000000050001n],
  [loongarch, "SCR3", 0x9030000000050004n],
  [loongarch, "EFLAGS", 0x9030000000050005n],
  [loongarch, "FTOP", 0x9030000000050006n],
];

for (const catalog of [s390, ppc, mips, loongarch]) describeCatalogInvariants(catalog);

describe("s390, powerpc, mips, loongarch catalogs", () => {
  it("match the kernel header ids (golden table)", () => {
    for (const [catalog, name, id] of GOLDEN) {
      assert.equal(named(catalog, name).id, id, `${catalog.arch} ${name}`);
    }
  });

  it("have the expected number of rows", () => {
    const counts = [s390, ppc, mips, loongarch].map((c) => [c.arch, c.entries.length]);
    assert.deepEqual(counts, [
      ["s390", 9],
      ["ppc", 310],
      ["mips", 250],
      ["loongarch", 177],
    ]);
  });

  it("accept the kernel macro names as aliases", () => {
    assert.equal(named(s390, "KVM_REG_S390_GBEA").name, "GBEA");
    assert.equal(named(ppc, "kvm_reg_ppc_lpcr_64").name, "LPCR_64");
    assert.equal(named(mips, "KVM_REG_MIPS_CP0_EPC").name, "CP0_EPC");
    assert.equal(named(loongarch, "KVM_REG_LOONGARCH_COUNTER").name, "COUNTER");
  });
});

describe("s390 catalog", () => {
  it("decodes only exact ids: a known number at another size is not a register", () => {
    const todpr = named(s390, "TODPR");
    assert.equal(todpr.size, 4);
    assert.equal(s390.decode(resized(todpr, 8)), undefined);
    assert.equal(s390.decode(makeRegId("s390", 8, 10n)), undefined);
  });
});

describe("powerpc catalog", () => {
  it("treats size as identity: LPCR/LPCR_64, MAS0/ICP_STATE, MAS1/VP_STATE share indices", () => {
    const pairs = [
      ["LPCR", "LPCR_64", 4, 8],
      ["MAS0", "ICP_STATE", 4, 8],
      ["MAS1", "VP_STATE", 4, 16],
    ] as const;
    for (const [a, b, sizeA, sizeB] of pairs) {
      const [ra, rb] = [named(ppc, a), named(ppc, b)];
      assert.equal(ra.fields.index, rb.fields.index, `${a}/${b}`);
      assert.deepEqual([ra.size, rb.size], [sizeA, sizeB]);
      assert.equal(payloadOf(ra.id), payloadOf(rb.id));
      assert.notEqual(ra.id, rb.id);
    }
  });

  it("sets index bit 31 exactly on the TM checkpointed registers", () => {
    for (const e of ppc.entries) {
      const tmBit = (payloadOf(e.id) >> 31n) & 1n;
      assert.equal(tmBit === 1n, e.class === "tm", e.name);
      assert.equal(e.fields.tm, Number(tmBit), e.name);
    }
    assert.equal(named(ppc, "TM_VSCR").size, 4);
    assert.equal(ppc.entries.filter((e) => e.class === "tm").length, 32 + 64 + 11);
  });

  it("returns undefined for unnamed ids (kernel switches on whole ids)", () => {
    assert.equal(ppc.decode(makeRegId("ppc", 8, 0xc9n)), undefined);
    assert.equal(ppc.decode(resized(named(ppc, "HIOR"), 4)), undefined);
    assert.equal(ppc.decode(makeRegId("ppc", 8, 0x8000006bn)), undefined);
  });
});

describe("mips catalog", () => {
  it("names CP0 registers by (reg, sel) with their own size", () => {
    const status = named(mips, "CP0(12,0)");
    assert.equal(status.name, "CP0_STATUS");
    assert.deepEqual([status.fields.reg, status.fields.sel, status.size], [12, 0, 4]);
    assert.equal(named(mips, "CP0_32(12,0)").id, status.id);
    assert.equal(mips.decode(resized(status, 8)), undefined, "U64 STATUS is not a register");
    assert.equal(named(mips, "CP0_EBASE").size, 8);
  });

  it("decodes unnamed CP0 slots as CP0_32(reg,sel) / CP0_64(reg,sel)", () => {
    const random32 = makeRegId("mips", 4, (1n << 16n) | 8n);
    const random64 = makeRegId("mips", 8, (1n << 16n) | 8n);
    assert.equal(mips.decode(random32)?.name, "CP0_32(1,0)");
    assert.equal(mips.decode(random64)?.name, "CP0_64(1,0)");
    assert.equal(mips.decode(random64)?.named, false);
    assert.equal(mips.lookup("cp0_64(1,0)")?.id, random64);
    assert.equal(mips.decode(makeRegId("mips", 16, (1n << 16n) | 8n)), undefined);
    assert.equal(mips.lookup("CP0_32(32,0)"), undefined);
  });

  it("decodes FCR and MSA control slots generically and nothing else", () => {
    const fcr5 = mips.decode(makeRegId("mips", 4, (3n << 16n) | 0x105n));
    assert.equal(fcr5?.name, "FCR(5)");
    assert.equal(named(mips, "FCR(31)").name, "FCR_CSR");
    assert.equal(named(mips, "MSACR(1)").name, "MSA_CSR");
    assert.equal(mips.decode(makeRegId("mips", 8, (3n << 16n) | 0x105n)), undefined);
    assert.equal(mips.decode(makeRegId("mips", 4, (3n << 16n) | 0x120n)), undefined);
  });

  it("returns undefined outside the defined registers of closed sets", () => {
    assert.equal(mips.decode(makeRegId("mips", 8, 35n)), undefined, "GP past PC");
    assert.equal(mips.decode(makeRegId("mips", 8, (2n << 16n) | 3n)), undefined, "KVM 3");
    assert.equal(mips.decode(makeRegId("mips", 8, (1n << 16n) | 0x140n)), undefined, "MAAR 64");
    assert.equal(mips.decode(makeRegId("mips", 4, (1n << 16n) | 0x208n)), undefined);
    assert.equal(mips.decode(makeRegId("mips", 8, 4n << 16n)), undefined, "set 4");
    assert.equal(mips.decode(regId(named(mips, "PC").id | (1n << 40n))), undefined);
  });

  it("lists all three FPR views for every register number", () => {
    for (let n = 0; n < 32; n++) {
      const sizes = [`FPR_32(${n})`, `FPR_64(${n})`, `VEC_128(${n})`].map((x) =>
        regSize(named(mips, x).id),
      );
      assert.deepEqual(sizes, [4, 8, 16]);
    }
  });
});

describe("loongarch catalog", () => {
  it("decodes CSR and CPUCFG numbers without a name generically", () => {
    const csr = loongarch.decode(makeRegId("loongarch", 8, (1n << 16n) | (0x7ffn << 3n)));
    assert.equal(csr?.name, "CSR(0x7ff)");
    assert.deepEqual(csr.fields, { group: 1, number: 0x7ff });
    assert.equal(loongarch.lookup("csr(0X7FF)")?.id, csr.id);
    const cfg = loongarch.decode(makeRegId("loongarch", 8, (4n << 16n) | (21n << 3n)));
    assert.equal(cfg?.name, "CPUCFG(21)");
    assert.equal(named(loongarch, "CSR(0x41)").name, "TCFG");
    assert.equal(named(loongarch, "CPUCFG(20)").name, "CPUCFG20");
    assert.equal(loongarch.lookup("CSR(0x1000)"), undefined);
  });

  it("accepts only U64 and only the canonical number << 3 encoding", () => {
    const crmd = named(loongarch, "CRMD");
    assert.equal(loongarch.decode(resized(crmd, 4)), undefined);
    assert.equal(loongarch.decode(regId(crmd.id | 1n)), undefined);
    assert.equal(loongarch.decode(regId(crmd.id | 0x8000n)), undefined);
    assert.equal(loongarch.decode(regId(crmd.id | (1n << 19n))), undefined);
  });

  it("returns undefined outside KVM/LBT rows and for the GPR/FPSIMD groups", () => {
    assert.equal(loongarch.decode(makeRegId("loongarch", 8, (2n << 16n) | 4n)), undefined);
    assert.equal(loongarch.decode(makeRegId("loongarch", 8, (5n << 16n) | 7n)), undefined);
    assert.equal(loongarch.decode(makeRegId("loongarch", 8, 1n)), undefined);
    assert.equal(loongarch.decode(makeRegId("loongarch", 8, 3n << 16n)), undefined);
  });

  it("marks DEBUG_INST read-only", () => {
    assert.deepEqual(
      loongarch.entries.filter((e) => e.readOnly).map((e) => e.name),
      ["DEBUG_INST"],
    );
  });
});
