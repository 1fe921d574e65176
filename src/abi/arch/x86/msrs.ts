/**
 * Names of the MSRs a KVM x86 guest can have. Sources: arch/x86/include/asm/msr-index.h and
 * asm/mtrr.h, arch/x86/include/uapi/asm/kvm_para.h (KVM paravirtual MSRs), the Hyper-V TLFS
 * names as used by arch/x86/kvm/hyperv.c, and the Intel SDM vol. 4 / AMD APM vol. 2 for the
 * architectural names. Coverage: every MSR that 6.18's msrs_to_save_base, msrs_to_save_pmu,
 * emulated_msrs_all and msr_based_features (arch/x86/kvm/x86.c) can list, plus the MCE banks,
 * MTRRs, x2APIC registers and the rest of the VMX capability range.
 *
 * Names follow the kernel macro without its `MSR_` prefix (`IA32_TSC`, `EFER`, `LSTAR`,
 * `KVM_SYSTEM_TIME_NEW`, `HV_X64_MSR_HYPERCALL`); where the SDM spells a register differently,
 * the SDM spelling is an alias (`IA32_PAT` for `IA32_CR_PAT`). MTRRs use the SDM names, with
 * the kernel's mixed-case names as aliases.
 */

/** One named MSR. */
export interface MsrName {
  readonly index: number;
  readonly name: string;
  readonly aliases?: readonly string[];
}

function m(index: number, name: string, ...aliases: string[]): MsrName {
  return aliases.length === 0 ? { index, name } : { index, name, aliases };
}

/** `count` MSRs at `base + i * stride`, named by `name(i)`, with aliases from `aliases`. */
function family(
  base: number,
  count: number,
  stride: number,
  name: (i: number) => string,
  ...aliases: ((i: number) => string)[]
): MsrName[] {
  return Array.from({ length: count }, (_, i) =>
    m(base + i * stride, name(i), ...aliases.map((alias) => alias(i))),
  );
}

// Architectural and common Intel MSRs (msr-index.h), in index order.
const INTEL: readonly MsrName[] = [
  m(0x10, "IA32_TSC", "TSC"),
  m(0x1b, "IA32_APICBASE", "IA32_APIC_BASE"),
  m(0x34, "SMI_COUNT"),
  m(0x3a, "IA32_FEAT_CTL", "IA32_FEATURE_CONTROL"),
  m(0x3b, "IA32_TSC_ADJUST"),
  m(0x48, "IA32_SPEC_CTRL"),
  m(0x49, "IA32_PRED_CMD"),
  // Same MSR number on AMD, where it is the microcode patch level.
  m(0x8b, "IA32_UCODE_REV", "IA32_BIOS_SIGN_ID", "AMD64_PATCH_LEVEL"),
  m(0x9e, "IA32_SMBASE"),
  m(0xce, "PLATFORM_INFO"),
  m(0xcf, "IA32_CORE_CAPS", "IA32_CORE_CAPABILITIES"),
  m(0xe1, "IA32_UMWAIT_CONTROL"),
  m(0xe7, "IA32_MPERF"),
  m(0xe8, "IA32_APERF"),
  m(0x10a, "IA32_ARCH_CAPABILITIES"),
  m(0x10b, "IA32_FLUSH_CMD"),
  m(0x122, "IA32_TSX_CTRL"),
  m(0x140, "MISC_FEATURES_ENABLES"),
  m(0x174, "IA32_SYSENTER_CS"),
  m(0x175, "IA32_SYSENTER_ESP"),
  m(0x176, "IA32_SYSENTER_EIP"),
  m(0x179, "IA32_MCG_CAP"),
  m(0x17a, "IA32_MCG_STATUS"),
  m(0x17b, "IA32_MCG_CTL"),
  m(0x1a0, "IA32_MISC_ENABLE"),
  m(0x1c4, "IA32_XFD"),
  m(0x1c5, "IA32_XFD_ERR"),
  m(0x1cc, "IA32_FRED_RSP0"),
  m(0x1cd, "IA32_FRED_RSP1"),
  m(0x1ce, "IA32_FRED_RSP2"),
  m(0x1cf, "IA32_FRED_RSP3"),
  m(0x1d0, "IA32_FRED_STKLVLS"),
  m(0x1d1, "IA32_FRED_SSP1"),
  m(0x1d2, "IA32_FRED_SSP2"),
  m(0x1d3, "IA32_FRED_SSP3"),
  m(0x1d4, "IA32_FRED_CONFIG"),
  m(0x1d9, "IA32_DEBUGCTLMSR", "IA32_DEBUGCTL"),
  m(0x1db, "IA32_LASTBRANCHFROMIP"),
  m(0x1dc, "IA32_LASTBRANCHTOIP"),
  m(0x1dd, "IA32_LASTINTFROMIP"),
  m(0x1de, "IA32_LASTINTTOIP"),
  m(0x1fc, "IA32_POWER_CTL"),
  m(0x277, "IA32_CR_PAT", "IA32_PAT"),
  m(0x329, "PERF_METRICS"),
  m(0x345, "IA32_PERF_CAPABILITIES"),
  m(0x3f1, "IA32_PEBS_ENABLE"),
  m(0x3f2, "PEBS_DATA_CFG"),
  m(0x4d0, "IA32_MCG_EXT_CTL"),
  m(0x560, "IA32_RTIT_OUTPUT_BASE"),
  m(0x561, "IA32_RTIT_OUTPUT_MASK"),
  m(0x570, "IA32_RTIT_CTL"),
  m(0x571, "IA32_RTIT_STATUS"),
  m(0x572, "IA32_RTIT_CR3_MATCH"),
  ...family(0x580, 4, 2, (i) => `IA32_RTIT_ADDR${i}_A`),
  ...family(0x581, 4, 2, (i) => `IA32_RTIT_ADDR${i}_B`),
  m(0x600, "IA32_DS_AREA"),
  m(0x6a0, "IA32_U_CET"),
  m(0x6a2, "IA32_S_CET"),
  ...family(0x6a4, 4, 1, (i) => `IA32_PL${i}_SSP`),
  m(0x6a8, "IA32_INT_SSP_TAB", "IA32_INTERRUPT_SSP_TABLE_ADDR"),
  m(0x6e0, "IA32_TSC_DEADLINE"),
  m(0xd90, "IA32_BNDCFGS"),
  m(0xda0, "IA32_XSS"),
];

// Architectural performance monitoring (Intel SDM vol. 3 ch. 20; msrs_to_save_pmu).
const INTEL_PMU: readonly MsrName[] = [
  ...family(
    0xc1,
    8,
    1,
    (i) => `IA32_PERFCTR${i}`,
    (i) => `IA32_PMC${i}`,
    (i) => `ARCH_PERFMON_PERFCTR${i}`,
  ),
  ...family(
    0x186,
    8,
    1,
    (i) => `IA32_PERFEVTSEL${i}`,
    (i) => `ARCH_PERFMON_EVENTSEL${i}`,
  ),
  ...family(
    0x309,
    4,
    1,
    (i) => `CORE_PERF_FIXED_CTR${i}`,
    (i) => `IA32_FIXED_CTR${i}`,
    (i) => `ARCH_PERFMON_FIXED_CTR${i}`,
  ),
  m(0x38d, "CORE_PERF_FIXED_CTR_CTRL", "IA32_FIXED_CTR_CTRL"),
  m(0x38e, "CORE_PERF_GLOBAL_STATUS", "IA32_PERF_GLOBAL_STATUS"),
  m(0x38f, "CORE_PERF_GLOBAL_CTRL", "IA32_PERF_GLOBAL_CTRL"),
  m(0x390, "CORE_PERF_GLOBAL_OVF_CTRL", "IA32_PERF_GLOBAL_STATUS_RESET"),
  m(0x391, "IA32_PERF_GLOBAL_STATUS_SET"),
  m(0x392, "IA32_PERF_GLOBAL_INUSE"),
  // Full-width aliases of the general-purpose counters.
  ...family(0x4c1, 8, 1, (i) => `IA32_A_PMC${i}`),
];

// Machine check banks (KVM_MAX_MCE_BANKS = 32): four MSRs per bank from 0x400, CTL2 from 0x280.
const MCE: readonly MsrName[] = [
  ...family(0x280, 32, 1, (i) => `IA32_MC${i}_CTL2`),
  ...family(0x400, 32, 4, (i) => `IA32_MC${i}_CTL`),
  ...family(0x401, 32, 4, (i) => `IA32_MC${i}_STATUS`),
  ...family(0x402, 32, 4, (i) => `IA32_MC${i}_ADDR`),
  ...family(0x403, 32, 4, (i) => `IA32_MC${i}_MISC`),
];

const FIX4K = ["C0000", "C8000", "D0000", "D8000", "E0000", "E8000", "F0000", "F8000"];

// MTRRs (SDM names; kernel spellings from msr-index.h / asm/mtrr.h as aliases). KVM emulates
// 8 variable ranges (KVM_NR_VAR_MTRR).
const MTRR: readonly MsrName[] = [
  m(0xfe, "IA32_MTRRCAP", "MTRRcap"),
  ...family(
    0x200,
    8,
    2,
    (i) => `IA32_MTRR_PHYSBASE${i}`,
    (i) => `MTRRphysBase${i}`,
  ),
  ...family(
    0x201,
    8,
    2,
    (i) => `IA32_MTRR_PHYSMASK${i}`,
    (i) => `MTRRphysMask${i}`,
  ),
  m(0x250, "IA32_MTRR_FIX64K_00000", "MTRRfix64K_00000"),
  m(0x258, "IA32_MTRR_FIX16K_80000", "MTRRfix16K_80000"),
  m(0x259, "IA32_MTRR_FIX16K_A0000", "MTRRfix16K_A0000"),
  ...family(
    0x268,
    8,
    1,
    (i) => `IA32_MTRR_FIX4K_${FIX4K[i] ?? ""}`,
    (i) => `MTRRfix4K_${FIX4K[i] ?? ""}`,
  ),
  m(0x2ff, "IA32_MTRR_DEF_TYPE", "MTRRdefType"),
];

// VMX capability MSRs 0x480..0x493 (Intel SDM vol. 3 appendix A).
const VMX: readonly MsrName[] = [
  m(0x480, "IA32_VMX_BASIC"),
  m(0x481, "IA32_VMX_PINBASED_CTLS"),
  m(0x482, "IA32_VMX_PROCBASED_CTLS"),
  m(0x483, "IA32_VMX_EXIT_CTLS"),
  m(0x484, "IA32_VMX_ENTRY_CTLS"),
  m(0x485, "IA32_VMX_MISC"),
  m(0x486, "IA32_VMX_CR0_FIXED0"),
  m(0x487, "IA32_VMX_CR0_FIXED1"),
  m(0x488, "IA32_VMX_CR4_FIXED0"),
  m(0x489, "IA32_VMX_CR4_FIXED1"),
  m(0x48a, "IA32_VMX_VMCS_ENUM"),
  m(0x48b, "IA32_VMX_PROCBASED_CTLS2"),
  m(0x48c, "IA32_VMX_EPT_VPID_CAP"),
  m(0x48d, "IA32_VMX_TRUE_PINBASED_CTLS"),
  m(0x48e, "IA32_VMX_TRUE_PROCBASED_CTLS"),
  m(0x48f, "IA32_VMX_TRUE_EXIT_CTLS"),
  m(0x490, "IA32_VMX_TRUE_ENTRY_CTLS"),
  m(0x491, "IA32_VMX_VMFUNC"),
  m(0x492, "IA32_VMX_PROCBASED_CTLS3"),
  m(0x493, "IA32_VMX_EXIT_CTLS2"),
];

// x2APIC registers 0x800..0x83f (Intel SDM vol. 3 table 11-6); KVM's in-kernel APIC backs them.
const X2APIC: readonly MsrName[] = [
  m(0x802, "IA32_X2APIC_APICID"),
  m(0x803, "IA32_X2APIC_VERSION"),
  m(0x808, "IA32_X2APIC_TPR"),
  m(0x80a, "IA32_X2APIC_PPR"),
  m(0x80b, "IA32_X2APIC_EOI"),
  m(0x80d, "IA32_X2APIC_LDR"),
  m(0x80f, "IA32_X2APIC_SIVR"),
  ...family(0x810, 8, 1, (i) => `IA32_X2APIC_ISR${i}`),
  ...family(0x818, 8, 1, (i) => `IA32_X2APIC_TMR${i}`),
  ...family(0x820, 8, 1, (i) => `IA32_X2APIC_IRR${i}`),
  m(0x828, "IA32_X2APIC_ESR"),
  m(0x82f, "IA32_X2APIC_LVT_CMCI"),
  m(0x830, "IA32_X2APIC_ICR"),
  m(0x832, "IA32_X2APIC_LVT_TIMER"),
  m(0x833, "IA32_X2APIC_LVT_THERMAL"),
  m(0x834, "IA32_X2APIC_LVT_PMI"),
  m(0x835, "IA32_X2APIC_LVT_LINT0"),
  m(0x836, "IA32_X2APIC_LVT_LINT1"),
  m(0x837, "IA32_X2APIC_LVT_ERROR"),
  m(0x838, "IA32_X2APIC_INIT_COUNT"),
  m(0x839, "IA32_X2APIC_CUR_COUNT"),
  m(0x83e, "IA32_X2APIC_DIV_CONF"),
  m(0x83f, "IA32_X2APIC_SELF_IPI"),
];

// x86-64 / AMD MSRs in the 0xc000xxxx ranges (msr-index.h).
const AMD64: readonly MsrName[] = [
  m(0xc0000080, "EFER", "IA32_EFER"),
  m(0xc0000081, "STAR", "IA32_STAR"),
  m(0xc0000082, "LSTAR", "IA32_LSTAR"),
  m(0xc0000083, "CSTAR", "IA32_CSTAR"),
  m(0xc0000084, "SYSCALL_MASK", "IA32_FMASK"),
  m(0xc0000100, "FS_BASE", "IA32_FS_BASE"),
  m(0xc0000101, "GS_BASE", "IA32_GS_BASE"),
  m(0xc0000102, "KERNEL_GS_BASE", "IA32_KERNEL_GS_BASE"),
  m(0xc0000103, "TSC_AUX", "IA32_TSC_AUX"),
  m(0xc0000104, "AMD64_TSC_RATIO"),
  m(0xc0000300, "AMD64_PERF_CNTR_GLOBAL_STATUS"),
  m(0xc0000301, "AMD64_PERF_CNTR_GLOBAL_CTL"),
  m(0xc0000302, "AMD64_PERF_CNTR_GLOBAL_STATUS_CLR"),
  m(0xc0000303, "AMD64_PERF_CNTR_GLOBAL_STATUS_SET"),
  ...family(0xc0010000, 4, 1, (i) => `K7_EVNTSEL${i}`),
  ...family(0xc0010004, 4, 1, (i) => `K7_PERFCTR${i}`),
  m(0xc0010010, "AMD64_SYSCFG"),
  m(0xc0010015, "K7_HWCR", "HWCR"),
  m(0xc0010114, "VM_CR"),
  m(0xc0010117, "VM_HSAVE_PA"),
  m(0xc001011f, "AMD64_VIRT_SPEC_CTRL"),
  m(0xc0010140, "AMD64_OSVW_ID_LENGTH"),
  m(0xc0010141, "AMD64_OSVW_STATUS"),
  ...family(0xc0010200, 6, 2, (i) => `F15H_PERF_CTL${i}`),
  ...family(0xc0010201, 6, 2, (i) => `F15H_PERF_CTR${i}`),
  m(0xc0011029, "AMD64_DE_CFG"),
];

// KVM paravirtual MSRs (arch/x86/include/uapi/asm/kvm_para.h). 0x11/0x12 are the legacy pair.
const KVM_PV: readonly MsrName[] = [
  m(0x11, "KVM_WALL_CLOCK"),
  m(0x12, "KVM_SYSTEM_TIME"),
  m(0x4b564d00, "KVM_WALL_CLOCK_NEW"),
  m(0x4b564d01, "KVM_SYSTEM_TIME_NEW"),
  m(0x4b564d02, "KVM_ASYNC_PF_EN"),
  m(0x4b564d03, "KVM_STEAL_TIME"),
  m(0x4b564d04, "KVM_PV_EOI_EN"),
  m(0x4b564d05, "KVM_POLL_CONTROL"),
  m(0x4b564d06, "KVM_ASYNC_PF_INT"),
  m(0x4b564d07, "KVM_ASYNC_PF_ACK"),
  m(0x4b564d08, "KVM_MIGRATION_CONTROL"),
];

// Hyper-V synthetic MSRs emulated by arch/x86/kvm/hyperv.c (names from the TLFS headers).
const HYPERV: readonly MsrName[] = [
  m(0x40000000, "HV_X64_MSR_GUEST_OS_ID"),
  m(0x40000001, "HV_X64_MSR_HYPERCALL"),
  m(0x40000002, "HV_X64_MSR_VP_INDEX"),
  m(0x40000003, "HV_X64_MSR_RESET"),
  m(0x40000010, "HV_X64_MSR_VP_RUNTIME"),
  m(0x40000020, "HV_X64_MSR_TIME_REF_COUNT"),
  m(0x40000021, "HV_X64_MSR_REFERENCE_TSC"),
  m(0x40000022, "HV_X64_MSR_TSC_FREQUENCY"),
  m(0x40000023, "HV_X64_MSR_APIC_FREQUENCY"),
  m(0x40000070, "HV_X64_MSR_EOI"),
  m(0x40000071, "HV_X64_MSR_ICR"),
  m(0x40000072, "HV_X64_MSR_TPR"),
  m(0x40000073, "HV_X64_MSR_VP_ASSIST_PAGE", "HV_X64_MSR_APIC_ASSIST_PAGE"),
  m(0x40000080, "HV_X64_MSR_SCONTROL"),
  m(0x40000081, "HV_X64_MSR_SVERSION"),
  m(0x40000082, "HV_X64_MSR_SIEFP"),
  m(0x40000083, "HV_X64_MSR_SIMP"),
  m(0x40000084, "HV_X64_MSR_EOM"),
  ...family(0x40000090, 16, 1, (i) => `HV_X64_MSR_SINT${i}`),
  ...family(0x400000b0, 4, 2, (i) => `HV_X64_MSR_STIMER${i}_CONFIG`),
  ...family(0x400000b1, 4, 2, (i) => `HV_X64_MSR_STIMER${i}_COUNT`),
  m(0x400000f0, "HV_X64_MSR_GUEST_IDLE"),
  m(0x400000f1, "HV_X64_MSR_SYNDBG_CONTROL"),
  m(0x400000f2, "HV_X64_MSR_SYNDBG_STATUS"),
  m(0x400000f3, "HV_X64_MSR_SYNDBG_SEND_BUFFER"),
  m(0x400000f4, "HV_X64_MSR_SYNDBG_RECV_BUFFER"),
  m(0x400000f5, "HV_X64_MSR_SYNDBG_PENDING_BUFFER"),
  m(0x400000ff, "HV_X64_MSR_SYNDBG_OPTIONS"),
  ...family(0x40000100, 5, 1, (i) => `HV_X64_MSR_CRASH_P${i}`),
  m(0x40000105, "HV_X64_MSR_CRASH_CTL"),
  m(0x40000106, "HV_X64_MSR_REENLIGHTENMENT_CONTROL"),
  m(0x40000107, "HV_X64_MSR_TSC_EMULATION_CONTROL"),
  m(0x40000108, "HV_X64_MSR_TSC_EMULATION_STATUS"),
  m(0x40000118, "HV_X64_MSR_TSC_INVARIANT_CONTROL"),
];

/** Every named MSR, sorted by index. */
export const MSR_NAMES: readonly MsrName[] = [
  ...INTEL,
  ...INTEL_PMU,
  ...MCE,
  ...MTRR,
  ...VMX,
  ...X2APIC,
  ...AMD64,
  ...KVM_PV,
  ...HYPERV,
].sort((a, b) => a.index - b.index);
