import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import {
  MSR_NAMES,
  catalog,
  genericMsrName,
  isKernelX86Id,
  msrIndexOf,
  msrRegId,
} from "../../../../src/abi/arch/x86/index.js";
import { formatRegId, regId, regSize } from "../../../../src/abi/regid.js";
import { decodeReg, describeReg } from "../../../../src/abi/catalog.js";

// §6.2 of kvm-register-abi.md: representative ids by name (kernel header values).
const GOLDEN_62: Readonly<Record<string, bigint>> = {
  IA32_TSC: 0x2030000200000010n,
  IA32_APICBASE: 0x203000020000001bn,
  IA32_TSC_ADJUST: 0x203000020000003bn,
  IA32_SPEC_CTRL: 0x2030000200000048n,
  IA32_SYSENTER_CS: 0x2030000200000174n,
  IA32_SYSENTER_ESP: 0x2030000200000175n,
  IA32_SYSENTER_EIP: 0x2030000200000176n,
  IA32_MISC_ENABLE: 0x20300002000001a0n,
  IA32_CR_PAT: 0x2030000200000277n,
  IA32_U_CET: 0x20300002000006a0n,
  IA32_S_CET: 0x20300002000006a2n,
  IA32_PL0_SSP: 0x20300002000006a4n,
  IA32_PL3_SSP: 0x20300002000006a7n,
  IA32_TSC_DEADLINE: 0x20300002000006e0n,
  EFER: 0x20300002c0000080n,
  STAR: 0x20300002c0000081n,
  LSTAR: 0x20300002c0000082n,
  CSTAR: 0x20300002c0000083n,
  SYSCALL_MASK: 0x20300002c0000084n,
  FS_BASE: 0x20300002c0000100n,
  GS_BASE: 0x20300002c0000101n,
  KERNEL_GS_BASE: 0x20300002c0000102n,
  TSC_AUX: 0x20300002c0000103n,
  KVM_SYSTEM_TIME_NEW: 0x203000024b564d01n,
  KVM_WALL_CLOCK_NEW: 0x203000024b564d00n,
  GUEST_SSP: 0x2030000300000000n,
};

function readMsrList(): { index: number[]; feature: number[] } {
  const url = new URL("../../../../../test/data/x86-msr-index-list.txt", import.meta.url);
  const out = { index: [] as number[], feature: [] as number[] };
  let section: number[] | undefined;
  for (const raw of readFileSync(url, "utf8").split("\n")) {
    const line = raw.trim();
    if (line.startsWith("# section: KVM_GET_MSR_INDEX_LIST")) section = out.index;
    else if (line.startsWith("# section: KVM_GET_MSR_FEATURE_INDEX_LIST")) section = out.feature;
    else if (line !== "" && !line.startsWith("#")) {
      assert.ok(section !== undefined, `index before any section: ${line}`);
      assert.match(line, /^0x[0-9a-f]+$/);
      section.push(Number(line));
    }
  }
  return out;
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });

describe("x86 catalog", () => {
  it("names the §6.2 registers with the kernel's ids (golden)", () => {
    for (const [name, id] of Object.entries(GOLDEN_62)) {
      const info = catalog.lookup(name);
      assert.ok(info !== undefined, `${name} is in the catalog`);
      assert.equal(formatRegId(info.id), formatRegId(regId(id)), name);
      assert.equal(info.size, 8);
      assert.equal(info.named, true);
    }
  });

  it("names every MSR this machine's KVM_GET_MSR_INDEX_LIST / FEATURE list returns", () => {
    const { index, feature } = readMsrList();
    assert.equal(index.length, 41, "golden file holds the 41-entry index list");
    assert.equal(feature.length, 4, "golden file holds the 4-entry feature list");
    for (const msr of [...index, ...feature]) {
      const info = catalog.decode(msrRegId(msr));
      assert.ok(info?.named === true, `MSR 0x${msr.toString(16)} has a name`);
      assert.deepEqual(info.fields, { type: 2, msr });
    }
  });

  it("names every MSR that 6.18's msrs_to_save / emulated_msrs / feature lists can return", () => {
    // Kernel macro names (without MSR_) from arch/x86/kvm/x86.c, Linux 6.18.
    const n = (prefix: string, count: number, suffix = ""): string[] =>
      Array.from({ length: count }, (_, i) => `${prefix}${i}${suffix}`);
    const kernelNames = [
      ...["IA32_SYSENTER_CS", "IA32_SYSENTER_ESP", "IA32_SYSENTER_EIP", "STAR", "CSTAR"],
      ...["KERNEL_GS_BASE", "SYSCALL_MASK", "LSTAR", "IA32_TSC", "IA32_CR_PAT", "VM_HSAVE_PA"],
      ...["IA32_FEAT_CTL", "IA32_BNDCFGS", "TSC_AUX", "IA32_SPEC_CTRL", "IA32_TSX_CTRL"],
      ...["IA32_RTIT_CTL", "IA32_RTIT_STATUS", "IA32_RTIT_CR3_MATCH", "IA32_RTIT_OUTPUT_BASE"],
      ...[
        "IA32_RTIT_OUTPUT_MASK",
        ...n("IA32_RTIT_ADDR", 4, "_A"),
        ...n("IA32_RTIT_ADDR", 4, "_B"),
      ],
      ...["IA32_UMWAIT_CONTROL", "IA32_XFD", "IA32_XFD_ERR", "IA32_XSS", "IA32_U_CET"],
      ...["IA32_S_CET", ...n("IA32_PL", 4, "_SSP"), "IA32_INT_SSP_TAB", "IA32_DEBUGCTLMSR"],
      ...["IA32_LASTBRANCHFROMIP", "IA32_LASTBRANCHTOIP", "IA32_LASTINTFROMIP"],
      ...["IA32_LASTINTTOIP", ...n("IA32_FRED_RSP", 4), "IA32_FRED_STKLVLS", "IA32_FRED_CONFIG"],
      ...["IA32_FRED_SSP1", "IA32_FRED_SSP2", "IA32_FRED_SSP3"],
      ...n("ARCH_PERFMON_FIXED_CTR", 3),
      ...["CORE_PERF_FIXED_CTR_CTRL", "CORE_PERF_GLOBAL_STATUS", "CORE_PERF_GLOBAL_CTRL"],
      ...["CORE_PERF_GLOBAL_OVF_CTRL", "IA32_PEBS_ENABLE", "IA32_DS_AREA", "PEBS_DATA_CFG"],
      ...n("ARCH_PERFMON_PERFCTR", 8),
      ...n("ARCH_PERFMON_EVENTSEL", 8),
      ...n("K7_EVNTSEL", 4),
      ...n("K7_PERFCTR", 4),
      ...n("F15H_PERF_CTL", 6),
      ...n("F15H_PERF_CTR", 6),
      ...["AMD64_PERF_CNTR_GLOBAL_CTL", "AMD64_PERF_CNTR_GLOBAL_STATUS"],
      ...["AMD64_PERF_CNTR_GLOBAL_STATUS_CLR", "KVM_SYSTEM_TIME", "KVM_WALL_CLOCK"],
      ...["KVM_SYSTEM_TIME_NEW", "KVM_WALL_CLOCK_NEW", "HV_X64_MSR_GUEST_OS_ID"],
      ...["HV_X64_MSR_HYPERCALL", "HV_X64_MSR_TIME_REF_COUNT", "HV_X64_MSR_REFERENCE_TSC"],
      ...["HV_X64_MSR_TSC_FREQUENCY", "HV_X64_MSR_APIC_FREQUENCY", ...n("HV_X64_MSR_CRASH_P", 5)],
      ...["HV_X64_MSR_CRASH_CTL", "HV_X64_MSR_RESET", "HV_X64_MSR_VP_INDEX"],
      ...["HV_X64_MSR_VP_RUNTIME", "HV_X64_MSR_SCONTROL", "HV_X64_MSR_STIMER0_CONFIG"],
      ...["HV_X64_MSR_VP_ASSIST_PAGE", "HV_X64_MSR_REENLIGHTENMENT_CONTROL"],
      ...["HV_X64_MSR_TSC_EMULATION_CONTROL", "HV_X64_MSR_TSC_EMULATION_STATUS"],
      ...["HV_X64_MSR_TSC_INVARIANT_CONTROL", "HV_X64_MSR_SYNDBG_OPTIONS"],
      ...["HV_X64_MSR_SYNDBG_CONTROL", "HV_X64_MSR_SYNDBG_STATUS", "HV_X64_MSR_SYNDBG_SEND_BUFFER"],
      ...["HV_X64_MSR_SYNDBG_RECV_BUFFER", "HV_X64_MSR_SYNDBG_PENDING_BUFFER", "KVM_ASYNC_PF_EN"],
      ...["KVM_STEAL_TIME", "KVM_PV_EOI_EN", "KVM_ASYNC_PF_INT", "KVM_ASYNC_PF_ACK"],
      ...["IA32_TSC_ADJUST", "IA32_TSC_DEADLINE", "IA32_ARCH_CAPABILITIES"],
      ...["IA32_PERF_CAPABILITIES", "IA32_MISC_ENABLE", "IA32_MCG_STATUS", "IA32_MCG_CTL"],
      ...["IA32_MCG_EXT_CTL", "IA32_SMBASE", "SMI_COUNT", "PLATFORM_INFO"],
      ...["MISC_FEATURES_ENABLES", "AMD64_VIRT_SPEC_CTRL", "AMD64_TSC_RATIO", "IA32_POWER_CTL"],
      ...["IA32_UCODE_REV", "IA32_VMX_BASIC", "IA32_VMX_TRUE_PINBASED_CTLS"],
      ...["IA32_VMX_TRUE_PROCBASED_CTLS", "IA32_VMX_TRUE_EXIT_CTLS", "IA32_VMX_TRUE_ENTRY_CTLS"],
      ...["IA32_VMX_MISC", "IA32_VMX_CR0_FIXED0", "IA32_VMX_CR4_FIXED0", "IA32_VMX_VMCS_ENUM"],
      ...["IA32_VMX_PROCBASED_CTLS2", "IA32_VMX_EPT_VPID_CAP", "IA32_VMX_VMFUNC", "K7_HWCR"],
      ...["KVM_POLL_CONTROL", "AMD64_DE_CFG"],
    ];
    for (const name of kernelNames) {
      const info = catalog.lookup(name);
      assert.ok(info?.class === "msr", `${name} is a named MSR`);
    }
  });

  it("every row round-trips: decode(id) is the row and lookup(name/alias) finds it", () => {
    assert.ok(catalog.entries.length > 400, `${catalog.entries.length} rows`);
    for (const row of catalog.entries) {
      assert.equal(catalog.decode(row.id), row);
      assert.equal(catalog.lookup(row.name), row);
      assert.equal(catalog.lookup(row.name.toLowerCase()), row);
      for (const alias of row.aliases ?? []) assert.equal(catalog.lookup(alias), row, alias);
    }
  });

  it("MSR_NAMES has no duplicate indexes and every MSR row is U64 type 2", () => {
    const indexes = MSR_NAMES.map((m) => m.index);
    assert.equal(new Set(indexes).size, indexes.length);
    for (const row of catalog.entries.filter((r) => r.class === "msr")) {
      assert.ok(isKernelX86Id(row.id), row.name);
      assert.equal(regSize(row.id), 8);
    }
  });

  it("unnamed MSRs get MSR(0x…) with 8 hex digits, and the name parses back (property)", () => {
    fc.assert(
      fc.property(u32, (msr) => {
        const id = msrRegId(msr);
        const info = catalog.decode(id);
        assert.ok(info !== undefined);
        assert.equal(msrIndexOf(id), msr);
        if (!info.named) assert.equal(info.name, genericMsrName(msr));
        assert.match(genericMsrName(msr), /^MSR\(0x[0-9a-f]{8}\)$/);
        assert.equal(catalog.lookup(info.name)?.id, id);
        assert.equal(catalog.lookup(genericMsrName(msr))?.id, id);
      }),
      { numRuns: 2000 },
    );
  });

  it("generic names: MSR(0xdeadbeef), KVM_REG(n), and short hex forms", () => {
    const info = catalog.lookup("MSR(0xdeadbeef)");
    assert.equal(info?.name, "MSR(0xdeadbeef)");
    assert.equal(info.named, false);
    assert.equal(catalog.lookup("msr(0x10)")?.name, "IA32_TSC");
    const kvm = catalog.lookup("KVM_REG(1)");
    assert.equal(kvm?.name, "KVM_REG(1)");
    assert.deepEqual(kvm.fields, { type: 3, index: 1 });
    assert.equal(catalog.lookup("KVM_REG(0)")?.name, "GUEST_SSP");
    assert.equal(catalog.lookup("MSR(0x123456789)"), undefined);
    assert.equal(catalog.lookup("MSR(10)"), undefined);
  });

  it("wrong size, reserved bits and other types decode to undefined", () => {
    const tsc = catalog.lookup("IA32_TSC");
    assert.ok(tsc !== undefined);
    const sizeMask = 0xfn << 52n;
    for (const code of [0n, 1n, 2n, 4n, 8n]) {
      assert.equal(catalog.decode(regId((tsc.id & ~sizeMask) | (code << 52n))), undefined);
    }
    for (const bit of [40n, 47n, 48n, 51n]) {
      assert.equal(catalog.decode(regId(tsc.id | (1n << bit))), undefined, `bit ${bit}`);
    }
    const typeMask = 0xffn << 32n;
    for (const type of [0n, 1n, 4n, 0x80n, 0xfen]) {
      assert.equal(catalog.decode(regId((tsc.id & ~typeMask) | (type << 32n))), undefined);
    }
  });

  it("describeReg() labels x86 ids through the shared catalog index", () => {
    const efer = catalog.lookup("IA32_EFER");
    assert.equal(efer?.name, "EFER");
    assert.equal(describeReg(efer.id), "x86 EFER");
    assert.equal(decodeReg(efer.id).known, true);
  });
});
