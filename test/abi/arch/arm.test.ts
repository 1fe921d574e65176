import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ARM_COPROC,
  armId,
  catalog,
  cp15GenericName,
  cp15Id,
  cp15Id64,
  CP15_READ_ONLY,
} from "../../../src/abi/arch/arm/index.js";
import type { RegInfo } from "../../../src/abi/arch/types.js";
import { describeReg } from "../../../src/abi/catalog.js";
import { makeRegId, payloadOf, regId } from "../../../src/abi/regid.js";
import { describeCatalogInvariants } from "./catalog-invariants.js";

function named(name: string): RegInfo {
  const info = catalog.lookup(name);
  assert.ok(info, `no arm register named ${name}`);
  return info;
}

/**
 * Values of the 32-bit ARM header macros (arch/arm/include/uapi/asm/kvm.h, Linux 5.6),
 * worked out from KVM_REG_ARM | size | coproc << 16 | index.
 */
const GOLDEN: readonly (readonly [string, bigint])[] = [
  ["R0", 0x4020000000100000n], // KVM_REG_ARM_CORE_REG(usr_regs.ARM_r0)
  ["PC", 0x402000000010000fn],
  ["CPSR", 0x4020000000100010n],
  ["SP_SVC", 0x4020000000100012n],
  ["SPSR_FIQ", 0x4020000000100025n],
  ["TIMER_CTL", 0x40200000000f7181n], // ARM_CP15_REG32(0, 14, 3, 1)
  ["TIMER_CNT", 0x40300000000f0708n], // ARM_CP15_REG64(1, 14)
  ["TIMER_CVAL", 0x40300000000f0718n], // ARM_CP15_REG64(3, 14)
  ["PTIMER_CTL", 0x40200000000f7101n], // ARM_CP15_REG32(0, 14, 2, 1)
  ["PTIMER_CNT", 0x40300000000f0700n], // ARM_CP15_REG64(0, 14)
  ["PTIMER_CVAL", 0x40300000000f0710n], // ARM_CP15_REG64(2, 14)
  ["D0", 0x4030000000120000n], // KVM_REG_ARM_VFP | KVM_REG_ARM_VFP_BASE_REG
  ["FPSID", 0x4020000000121000n],
  ["FPSCR", 0x4020000000121001n],
  ["MVFR1", 0x4020000000121006n],
  ["MVFR0", 0x4020000000121007n],
  ["FPINST2", 0x402000000012100an],
  ["CCSIDR(0)", 0x4020000000110000n],
  ["PSCI_VERSION", 0x4030000000140000n],
  ["SMCCC_ARCH_WORKAROUND_2", 0x4030000000140002n],
];

/** CP15 names by (CRn, Opc1, CRm, Opc2), as in the kernel's coproc tables. */
const CP15_NAMES: readonly (readonly [string, number, number, number, number])[] = [
  ["MIDR", 0, 0, 0, 0],
  ["MPIDR", 0, 0, 0, 5],
  ["CSSELR", 0, 2, 0, 0],
  ["SCTLR", 1, 0, 0, 0],
  ["CPACR", 1, 0, 0, 2],
  ["TTBR0", 2, 0, 0, 0],
  ["TTBR1", 2, 0, 0, 1],
  ["TTBCR", 2, 0, 0, 2],
  ["DACR", 3, 0, 0, 0],
  ["DFSR", 5, 0, 0, 0],
  ["IFSR", 5, 0, 0, 1],
  ["DFAR", 6, 0, 0, 0],
  ["IFAR", 6, 0, 0, 2],
  ["PRRR", 10, 0, 2, 0],
  ["NMRR", 10, 0, 2, 1],
  ["VBAR", 12, 0, 0, 0],
  ["ICC_SRE", 12, 0, 12, 5],
  ["CONTEXTIDR", 13, 0, 0, 1],
  ["TPIDRURW", 13, 0, 0, 2],
  ["TPIDRURO", 13, 0, 0, 3],
  ["TPIDRPRW", 13, 0, 0, 4],
  ["CNTKCTL", 14, 0, 1, 0],
];

describeCatalogInvariants(catalog);

describe("arm (32-bit) catalog", () => {
  it("matches the kernel header ids (golden table)", () => {
    for (const [name, id] of GOLDEN) {
      assert.equal(named(name).id, id, name);
      assert.equal(catalog.decode(regId(id))?.name, name, name);
    }
  });

  it("names the common CP15 registers at their encodings", () => {
    for (const [name, crn, opc1, crm, opc2] of CP15_NAMES) {
      const info = catalog.decode(cp15Id({ crn, opc1, crm, opc2 }));
      assert.equal(info?.name, name);
      assert.deepEqual(info.fields, { coproc: 15, crn, opc1, crm, opc2 });
      assert.equal(info.size, 4);
    }
    assert.equal(catalog.decode(cp15Id64({ opc1: 0, crm: 2 }))?.name, "TTBR0_64");
    assert.equal(catalog.decode(cp15Id64({ opc1: 1, crm: 2 }))?.name, "TTBR1_64");
    assert.equal(catalog.decode(cp15Id64({ opc1: 0, crm: 7 }))?.name, "PAR_64");
    assert.equal(named("MAIR0").name, "PRRR");
  });

  it("lays out all 38 words of struct kvm_regs as U32 core registers", () => {
    const core = catalog.entries.filter((e) => e.class === "core");
    assert.equal(core.length, 38);
    core.forEach((e, i) => {
      assert.equal(e.size, 4);
      assert.deepEqual(e.fields, { group: "core", offset: 4 * i, index: i });
    });
    assert.equal(named("R13").name, "SP_USR");
    assert.equal(named("R15").name, "PC");
    assert.equal(named("R11_FIQ").name, "FP_FIQ");
    assert.equal(named("ORIG_R0").fields.index, 17);
    assert.equal(named("SP_SVC").fields.offset, 72);
    assert.equal(named("R8_FIQ").fields.offset, 120);
  });

  it("gives the timer ids their CP15 encodings (no swap on 32-bit) and semantic aliases", () => {
    assert.deepEqual(named("TIMER_CTL").fields, {
      coproc: 15,
      crn: 14,
      opc1: 0,
      crm: 3,
      opc2: 1,
      accesses: "CNTV_CTL",
    });
    assert.deepEqual(named("TIMER_CVAL").fields, {
      coproc: 15,
      opc1: 3,
      crm: 14,
      accesses: "CNTV_CVAL",
    });
    assert.equal(named("CNTVCT").name, "TIMER_CNT");
    assert.equal(named("CNTP_CVAL").name, "PTIMER_CVAL");
    assert.equal(named("KVM_REG_ARM_PTIMER_CNT").name, "PTIMER_CNT");
    assert.equal(named("CP15_64(1,14)").name, "TIMER_CNT");
  });

  it("marks exactly the invariant registers read-only", () => {
    const readOnly = catalog.entries.filter((e) => e.readOnly).map((e) => e.name);
    const expected = [
      ...CP15_READ_ONLY,
      "FPSID",
      "MVFR0",
      "MVFR1",
      ...Array.from({ length: 12 }, (_, n) => `CCSIDR(${n})`),
    ];
    assert.deepEqual(readOnly.sort(), expected.sort());
    assert.equal(named("MIDR").readOnly, true);
    assert.equal(named("SCTLR").readOnly, false);
    assert.equal(named("FPSCR").readOnly, false);
  });

  it("names unlisted CP15 encodings generically and parses them back (property)", () => {
    const field = (max: number): fc.Arbitrary<number> => fc.integer({ min: 0, max });
    fc.assert(
      fc.property(field(15), field(15), field(15), field(7), (crn, opc1, crm, opc2) => {
        const enc = { crn, opc1, crm, opc2 };
        const info = catalog.decode(cp15Id(enc));
        assert.ok(info);
        assert.equal(named(info.name).id, info.id);
        assert.equal(named(cp15GenericName(enc)).id, info.id);
        if (!info.named) assert.equal(info.name, cp15GenericName(enc));
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(field(15), field(15), (opc1, crm) => {
        const info = catalog.decode(cp15Id64({ opc1, crm }));
        assert.ok(info);
        assert.equal(named(`CP15_64(${opc1}, ${crm})`).id, info.id);
        if (!info.named) assert.equal(info.name, `CP15_64(${opc1},${crm})`);
      }),
    );
  });

  it("names unknown FW numbers generically", () => {
    const info = catalog.decode(armId(ARM_COPROC.FW, 8, 3));
    assert.equal(info?.name, "FW(0x3)");
    assert.equal(named("FW(3)").id, info.id);
    assert.equal(named("FW(0x1)").name, "SMCCC_ARCH_WORKAROUND_1");
  });

  it("returns undefined for bad sizes, stray bits and unexposed coprocessors", () => {
    const sctlr = named("SCTLR").id;
    const bad = [
      regId(sctlr | (1n << 28n)), // secure bank
      regId(sctlr | (1n << 40n)),
      regId(sctlr | 0x8000n), // bit 15 is no field
      makeRegId("arm", 8, payloadOf(sctlr)), // U32 register asked as U64 with CRn bits set
      makeRegId("arm", 2, payloadOf(sctlr)),
      regId(named("TTBR0_64").id | 1n), // Opc2 bit in a 64-bit id
      makeRegId("arm", 8, payloadOf(named("R0").id)), // core registers are U32
      armId(ARM_COPROC.CORE, 4, 38), // past struct kvm_regs
      makeRegId("arm", 4, payloadOf(named("D0").id)), // D registers are U64
      makeRegId("arm", 8, payloadOf(named("FPSCR").id)),
      armId(ARM_COPROC.VFP, 4, 0x1002),
      armId(ARM_COPROC.VFP, 8, 32),
      armId(ARM_COPROC.DEMUX, 4, 12), // CSSELR_MAX is 12
      armId(ARM_COPROC.FW, 4, 0),
      armId(14, 4, 0), // CP14 was never exposed
    ];
    for (const id of bad) assert.equal(catalog.decode(id), undefined, id.toString(16));
    for (const name of [
      "CP15(16,0,0,0)",
      "CP15(0,0,0,8)",
      "CP15(0,0,0)",
      "CP15_64(16,0)",
      "FW(0x10000)",
    ]) {
      assert.equal(catalog.lookup(name), undefined, name);
    }
  });

  it("is reachable through the shared catalog table", () => {
    assert.equal(describeReg(named("TTBCR").id), "arm TTBCR");
  });
});
