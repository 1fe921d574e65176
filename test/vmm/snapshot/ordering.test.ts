import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { lookupReg, regLabel } from "../../../src/abi/catalog.js";
import type { ArchName, RegId } from "../../../src/abi/regid.js";
import {
  ARM64_ORDERING,
  orderingProblems,
  orderRegisters,
  placeRegister,
  plainOrdering,
  RISCV_ORDERING,
  X86_ORDERING,
} from "../../../src/vmm/snapshot/ordering.js";
import { unknownRiscvId } from "./samples.js";

const id = (arch: ArchName, name: string): RegId => lookupReg(arch, name).id;

/** Write order (flattened phases) of `names` given in `order`. */
function positions(
  arch: ArchName,
  names: readonly string[],
  order: readonly number[],
): Map<string, number> {
  const ids = order.map((i) => id(arch, names[i] ?? ""));
  const flat = orderRegisters(arch, ids).flatMap((p) => p.ids);
  return new Map(names.map((n) => [n, flat.indexOf(id(arch, n))]));
}

/** Asserts, for every permutation fast-check tries, that each `[a, b]` is written a before b. */
function pinned(
  arch: ArchName,
  names: readonly string[],
  before: readonly (readonly [string, string])[],
): void {
  fc.assert(
    fc.property(fc.shuffledSubarray([...names.keys()], { minLength: names.length }), (order) => {
      const pos = positions(arch, names, order);
      for (const [a, b] of before) {
        const pa = pos.get(a) ?? -1;
        const pb = pos.get(b) ?? -1;
        assert.ok(pa >= 0 && pb >= 0, `${a} or ${b} not written`);
        assert.ok(pa < pb, `${a} (at ${pa}) must be written before ${b} (at ${pb})`);
      }
    }),
    { numRuns: 50 },
  );
}

const X86 = [
  "CPUID",
  "IA32_FEATURE_CONTROL",
  "TSC_KHZ",
  "SREGS",
  "IA32_APICBASE",
  "REGS",
  "FPU",
  "XSAVE",
  "XCRS",
  "LAPIC",
  "IA32_TSC",
  "EFER",
  "LSTAR",
  "MSR(0x12345678)",
  "VCPU_EVENTS",
  "MP_STATE",
  "IA32_TSC_DEADLINE",
  "DEBUGREGS",
];

describe("restore ordering data", () => {
  it("every rule and default names a listed phase, and phase names are unique", () => {
    for (const o of [X86_ORDERING, RISCV_ORDERING, ARM64_ORDERING, plainOrdering("s390")]) {
      assert.deepEqual(orderingProblems(o), [], o.arch);
    }
  });

  it("orderingProblems() catches a rule naming an unlisted phase", () => {
    const broken = { ...X86_ORDERING, rules: [{ phase: "nope", match: {}, why: "" }] };
    assert.equal(orderingProblems(broken).length, 1);
  });

  it("orderRegisters() keeps every write register exactly once", () => {
    const ids = X86.map((n) => id("x86", n));
    const flat = orderRegisters("x86", ids).flatMap((p) => p.ids);
    assert.deepEqual([...flat].sort(), [...ids].sort());
  });
});

describe("x86 ordering (ABI §13.1)", () => {
  it("CPUID before SREGS before LAPIC before IA32_TSC_DEADLINE", () => {
    pinned("x86", X86, [
      ["CPUID", "SREGS"],
      ["SREGS", "LAPIC"],
      ["LAPIC", "IA32_TSC_DEADLINE"],
    ]);
  });

  it("TSC_KHZ before IA32_TSC before IA32_TSC_DEADLINE", () => {
    pinned("x86", X86, [
      ["TSC_KHZ", "IA32_TSC"],
      ["IA32_TSC", "IA32_TSC_DEADLINE"],
    ]);
  });

  it("APIC base (SREGS and IA32_APICBASE) before LAPIC; LAPIC before the MSRs", () => {
    pinned("x86", X86, [
      ["IA32_APICBASE", "LAPIC"],
      ["LAPIC", "IA32_TSC"],
      ["LAPIC", "EFER"],
      ["LAPIC", "MSR(0x12345678)"],
    ]);
  });

  it("VCPU_EVENTS and MP_STATE after REGS and the MSRs, MP_STATE after VCPU_EVENTS", () => {
    const late: [string, string][] = [];
    for (const reg of ["REGS", "IA32_TSC", "EFER", "LSTAR", "MSR(0x12345678)"])
      late.push([reg, "VCPU_EVENTS"], [reg, "MP_STATE"]);
    pinned("x86", X86, [...late, ["VCPU_EVENTS", "MP_STATE"]]);
  });

  it("follows QEMU's order: feature control, TSC kHz, SREGS, REGS, XSAVE, XCRS, MSRs, events, MP state, deadline, DEBUGREGS", () => {
    const qemu = [
      "CPUID",
      "IA32_FEATURE_CONTROL",
      "TSC_KHZ",
      "SREGS",
      "REGS",
      "XSAVE",
      "XCRS",
      "LSTAR",
      "VCPU_EVENTS",
      "MP_STATE",
      "IA32_TSC_DEADLINE",
      "DEBUGREGS",
    ];
    const flat = orderRegisters(
      "x86",
      [...qemu].reverse().map((n) => id("x86", n)),
    ).flatMap((p) => p.ids);
    assert.deepEqual(
      flat.map((x) => regLabel(x)),
      qemu.map((n) => regLabel(id("x86", n))),
    );
  });

  it("unnamed MSRs and unknown ids fall into the MSR phase", () => {
    assert.equal(placeRegister(X86_ORDERING, id("x86", "MSR(0x12345678)")).phase, "msrs");
  });
});

const RISCV = [
  "config.isa",
  "isa_ext.zicbom",
  "isa_ext.v",
  "config.mvendorid",
  "sbi_ext.sta",
  "core.pc",
  "core.ra",
  "csr.sstatus",
  "csr.sepc",
  "fp_d.f0",
  "fp_d.fcsr",
  "sbi_state.sta.shmem_lo",
  "timer.time",
  "timer.compare",
  "timer.state",
];

describe("riscv ordering (ABI §13.3)", () => {
  it("config.isa is written first", () => {
    fc.assert(
      fc.property(fc.shuffledSubarray([...RISCV.keys()], { minLength: RISCV.length }), (order) => {
        const first = orderRegisters(
          "riscv",
          order.map((i) => id("riscv", RISCV[i] ?? "")),
        )[0];
        assert.equal(first?.ids[0], id("riscv", "config.isa"));
      }),
      { numRuns: 30 },
    );
  });

  it("ISA before sstatus and FP; SBI_EXT before SBI_STATE; timer compare before state", () => {
    pinned("riscv", RISCV, [
      ["config.isa", "isa_ext.zicbom"],
      ["isa_ext.v", "csr.sstatus"],
      ["isa_ext.zicbom", "fp_d.f0"],
      ["config.isa", "fp_d.fcsr"],
      ["sbi_ext.sta", "sbi_state.sta.shmem_lo"],
      ["timer.compare", "timer.state"],
      ["core.pc", "timer.state"],
    ]);
  });

  it("read-only registers (timer.frequency, vlenb, satp_mode, zicbo*_block_size) are verify-only", () => {
    for (const n of [
      "timer.frequency",
      "vector.vlenb",
      "config.satp_mode",
      "config.zicbom_block_size",
      "config.zicboz_block_size",
    ]) {
      assert.equal(placeRegister(RISCV_ORDERING, id("riscv", n)).action, "verify", n);
    }
    const ids = ["timer.frequency", "vector.vlenb", "core.pc"].map((n) => id("riscv", n));
    assert.deepEqual(
      orderRegisters("riscv", ids).flatMap((p) => p.ids),
      [id("riscv", "core.pc")],
    );
  });

  it("timer.time is VM-wide; ids the catalog does not know go to the state phase", () => {
    assert.equal(placeRegister(RISCV_ORDERING, id("riscv", "timer.time")).scope, "vm");
    assert.equal(placeRegister(RISCV_ORDERING, unknownRiscvId(5)).phase, "state");
  });
});

const ARM64 = [
  "SVE_VLS",
  "MIDR_EL1",
  "ID_AA64PFR0_EL1",
  "PSCI_VERSION",
  "PSTATE",
  "X0",
  "X30",
  "PC",
  "SP",
  "Z0",
  "SCTLR_EL1",
  "TIMER_CNT",
  "TIMER_CTL",
  "TIMER_CVAL",
];

describe("arm64 ordering (ABI §13.2)", () => {
  it("PSTATE before X0..X30 and PC", () => {
    pinned("arm64", ARM64, [
      ["PSTATE", "X0"],
      ["PSTATE", "X30"],
      ["PSTATE", "PC"],
    ]);
  });

  it("SVE_VLS first, ID registers and firmware registers before core state, TIMER_CNT before CTL/CVAL", () => {
    pinned("arm64", ARM64, [
      ["SVE_VLS", "MIDR_EL1"],
      ["SVE_VLS", "Z0"],
      ["MIDR_EL1", "PSTATE"],
      ["ID_AA64PFR0_EL1", "PSTATE"],
      ["PSCI_VERSION", "PSTATE"],
      ["TIMER_CNT", "TIMER_CTL"],
      ["TIMER_CNT", "TIMER_CVAL"],
    ]);
    assert.equal(placeRegister(ARM64_ORDERING, id("arm64", "TIMER_CNT")).scope, "vm");
  });
});
