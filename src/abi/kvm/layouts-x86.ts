/**
 * x86-64 KVM struct layouts (arch/x86/include/uapi/asm/kvm.h, Linux 6.18;
 * docs/kvm-register-abi.md §5). Offsets come from C layout rules via `struct()` and are pinned by
 * test/abi/kvm/layouts.test.ts.
 */
import { struct } from "./layout.js";

/** `struct kvm_regs` (144 bytes): the eighteen general registers, rip and rflags. */
export const KVM_REGS = struct("kvm_regs", [
  ["rax", "u64"],
  ["rbx", "u64"],
  ["rcx", "u64"],
  ["rdx", "u64"],
  ["rsi", "u64"],
  ["rdi", "u64"],
  ["rsp", "u64"],
  ["rbp", "u64"],
  ["r8", "u64"],
  ["r9", "u64"],
  ["r10", "u64"],
  ["r11", "u64"],
  ["r12", "u64"],
  ["r13", "u64"],
  ["r14", "u64"],
  ["r15", "u64"],
  ["rip", "u64"],
  ["rflags", "u64"],
]);

/** `struct kvm_segment` (24 bytes): a cached segment descriptor. */
export const KVM_SEGMENT = struct("kvm_segment", [
  ["base", "u64"],
  ["limit", "u32"],
  ["selector", "u16"],
  ["type", "u8"],
  ["present", "u8"],
  ["dpl", "u8"],
  ["db", "u8"],
  ["s", "u8"],
  ["l", "u8"],
  ["g", "u8"],
  ["avl", "u8"],
  ["unusable", "u8"],
  ["padding", "u8"],
]);

/** `struct kvm_dtable` (16 bytes): GDTR / IDTR. */
export const KVM_DTABLE = struct("kvm_dtable", [
  ["base", "u64"],
  ["limit", "u16"],
  ["padding", "u16", 3],
]);

const SREGS_COMMON = [
  ["cs", KVM_SEGMENT],
  ["ds", KVM_SEGMENT],
  ["es", KVM_SEGMENT],
  ["fs", KVM_SEGMENT],
  ["gs", KVM_SEGMENT],
  ["ss", KVM_SEGMENT],
  ["tr", KVM_SEGMENT],
  ["ldt", KVM_SEGMENT],
  ["gdt", KVM_DTABLE],
  ["idt", KVM_DTABLE],
  ["cr0", "u64"],
  ["cr2", "u64"],
  ["cr3", "u64"],
  ["cr4", "u64"],
  ["cr8", "u64"],
  ["efer", "u64"],
  ["apic_base", "u64"],
] as const;

/** `struct kvm_sregs` (312 bytes); interrupt_bitmap has one bit per vector (KVM_NR_INTERRUPTS 256). */
export const KVM_SREGS = struct("kvm_sregs", [...SREGS_COMMON, ["interrupt_bitmap", "u64", 4]]);

/** `struct kvm_sregs2` (320 bytes): kvm_sregs without the bitmap, plus flags and PDPTRs. */
export const KVM_SREGS2 = struct("kvm_sregs2", [
  ...SREGS_COMMON,
  ["flags", "u64"],
  ["pdptrs", "u64", 4],
]);

const EVENTS_EXCEPTION = struct("kvm_vcpu_events.exception", [
  ["injected", "u8"],
  ["nr", "u8"],
  ["has_error_code", "u8"],
  ["pending", "u8"],
  ["error_code", "u32"],
]);
const EVENTS_INTERRUPT = struct("kvm_vcpu_events.interrupt", [
  ["injected", "u8"],
  ["nr", "u8"],
  ["soft", "u8"],
  ["shadow", "u8"],
]);
const EVENTS_NMI = struct("kvm_vcpu_events.nmi", [
  ["injected", "u8"],
  ["pending", "u8"],
  ["masked", "u8"],
  ["pad", "u8"],
]);
const EVENTS_SMI = struct("kvm_vcpu_events.smi", [
  ["smm", "u8"],
  ["pending", "u8"],
  ["smm_inside_nmi", "u8"],
  ["latched_init", "u8"],
]);
const EVENTS_TRIPLE_FAULT = struct("kvm_vcpu_events.triple_fault", [["pending", "u8"]]);

/** `struct kvm_vcpu_events` (64 bytes): pending/injected exception, interrupt, NMI, SMI state. */
export const KVM_VCPU_EVENTS = struct("kvm_vcpu_events", [
  ["exception", EVENTS_EXCEPTION],
  ["interrupt", EVENTS_INTERRUPT],
  ["nmi", EVENTS_NMI],
  ["sipi_vector", "u32"],
  ["flags", "u32"],
  ["smi", EVENTS_SMI],
  ["triple_fault", EVENTS_TRIPLE_FAULT],
  ["reserved", "bytes", 26],
  ["exception_has_payload", "u8"],
  ["exception_payload", "u64"],
]);

/** x86 `struct kvm_sync_regs` (520 bytes) inside `kvm_run.s`. */
export const KVM_SYNC_REGS_X86 = struct("kvm_sync_regs", [
  ["regs", KVM_REGS],
  ["sregs", KVM_SREGS],
  ["events", KVM_VCPU_EVENTS],
]);

/** `struct kvm_msr_entry` (16 bytes). */
export const KVM_MSR_ENTRY = struct("kvm_msr_entry", [
  ["index", "u32"],
  ["reserved", "u32"],
  ["data", "u64"],
]);

/** `struct kvm_msrs` (8-byte header + `nmsrs` entries). */
export const KVM_MSRS = struct("kvm_msrs", [
  ["nmsrs", "u32"],
  ["pad", "u32"],
  ["entries", KVM_MSR_ENTRY, 0],
]);

/** `struct kvm_msr_list` (4-byte header + `nmsrs` u32 indices). */
export const KVM_MSR_LIST = struct("kvm_msr_list", [
  ["nmsrs", "u32"],
  ["indices", "u32", 0],
]);

/** `struct kvm_cpuid_entry2` (40 bytes). */
export const KVM_CPUID_ENTRY2 = struct("kvm_cpuid_entry2", [
  ["function", "u32"],
  ["index", "u32"],
  ["flags", "u32"],
  ["eax", "u32"],
  ["ebx", "u32"],
  ["ecx", "u32"],
  ["edx", "u32"],
  ["padding", "u32", 3],
]);

/** `struct kvm_cpuid2` (8-byte header + `nent` entries). */
export const KVM_CPUID2 = struct("kvm_cpuid2", [
  ["nent", "u32"],
  ["padding", "u32"],
  ["entries", KVM_CPUID_ENTRY2, 0],
]);

/** `struct kvm_fpu` (416 bytes): legacy x87/SSE state. */
export const KVM_FPU = struct("kvm_fpu", [
  ["fpr", "bytes", 128],
  ["fcw", "u16"],
  ["fsw", "u16"],
  ["ftwx", "u8"],
  ["pad1", "u8"],
  ["last_opcode", "u16"],
  ["last_ip", "u64"],
  ["last_dp", "u64"],
  ["xmm", "bytes", 256],
  ["mxcsr", "u32"],
  ["pad2", "u32"],
]);

/** `struct kvm_xsave` (4096 bytes; KVM_GET_XSAVE2 may use a larger buffer). */
export const KVM_XSAVE = struct("kvm_xsave", [
  ["region", "u32", 1024],
  ["extra", "u32", 0],
]);

/** `struct kvm_xcr` (16 bytes). */
export const KVM_XCR = struct("kvm_xcr", [
  ["xcr", "u32"],
  ["reserved", "u32"],
  ["value", "u64"],
]);

/** `struct kvm_xcrs` (392 bytes, up to KVM_MAX_XCRS = 16 entries). */
export const KVM_XCRS = struct("kvm_xcrs", [
  ["nr_xcrs", "u32"],
  ["flags", "u32"],
  ["xcrs", KVM_XCR, 16],
  ["padding", "u64", 16],
]);

/** `struct kvm_debugregs` (128 bytes). */
export const KVM_DEBUGREGS = struct("kvm_debugregs", [
  ["db", "u64", 4],
  ["dr6", "u64"],
  ["dr7", "u64"],
  ["flags", "u64"],
  ["reserved", "u64", 9],
]);

/** `struct kvm_lapic_state` (1024 bytes: the APIC register page, KVM_APIC_REG_SIZE). */
export const KVM_LAPIC_STATE = struct("kvm_lapic_state", [["regs", "bytes", 1024]]);

/** x86 `struct kvm_guest_debug` (72 bytes): control, pad, debugreg[8]. */
export const KVM_GUEST_DEBUG_X86 = struct("kvm_guest_debug", [
  ["control", "u32"],
  ["pad", "u32"],
  ["debugreg", "u64", 8],
]);

/** `struct kvm_msr_filter_range` (24 bytes; bitmap is a user pointer). */
export const KVM_MSR_FILTER_RANGE = struct("kvm_msr_filter_range", [
  ["flags", "u32"],
  ["nmsrs", "u32"],
  ["base", "u32"],
  ["bitmap", "u64"],
]);

/** `struct kvm_msr_filter` (392 bytes, KVM_MSR_FILTER_MAX_RANGES = 16). */
export const KVM_MSR_FILTER = struct("kvm_msr_filter", [
  ["flags", "u32"],
  ["ranges", KVM_MSR_FILTER_RANGE, 16],
]);

/** `struct kvm_irq_level` (8 bytes; `irq` and `status` share offset 0). */
export const KVM_IRQ_LEVEL = struct("kvm_irq_level", [
  ["irq", "u32"],
  { name: "status", type: "u32", at: 0 },
  ["level", "u32"],
]);

/** `struct kvm_pit_config` (64 bytes). */
export const KVM_PIT_CONFIG = struct("kvm_pit_config", [
  ["flags", "u32"],
  ["pad", "u32", 15],
]);

/**
 * `struct kvm_irqchip` (520 bytes): KVM_GET/SET_IRQCHIP. `chip` is the union of
 * `kvm_pic_state` (chip_id 0 master, 1 slave) and `kvm_ioapic_state` (chip_id 2), padded to
 * 512 bytes (arch/x86/include/uapi/asm/kvm.h).
 */
export const KVM_IRQCHIP = struct("kvm_irqchip", [
  ["chip_id", "u32"],
  ["pad", "u32"],
  ["chip", "bytes", 512],
]);

/**
 * `struct kvm_clock_data` (48 bytes): KVM_GET/SET_CLOCK, the VM's kvmclock in ns; `realtime`
 * (CLOCK_REALTIME ns) and `host_tsc` are valid when `flags` has KVM_CLOCK_REALTIME /
 * KVM_CLOCK_HOST_TSC (include/uapi/linux/kvm.h).
 */
export const KVM_CLOCK_DATA = struct("kvm_clock_data", [
  ["clock", "u64"],
  ["flags", "u32"],
  ["pad0", "u32"],
  ["realtime", "u64"],
  ["host_tsc", "u64"],
  ["pad", "u32", 4],
]);

/** `struct kvm_interrupt` (4 bytes). */
export const KVM_INTERRUPT = struct("kvm_interrupt", [["irq", "u32"]]);

/** x86 `struct kvm_debug_exit_arch` (32 bytes): the KVM_EXIT_DEBUG payload. */
export const KVM_DEBUG_EXIT_ARCH_X86 = struct("kvm_debug_exit_arch", [
  ["exception", "u32"],
  ["pad", "u32"],
  ["pc", "u64"],
  ["dr6", "u64"],
  ["dr7", "u64"],
]);

/**
 * The 512-byte legacy region at the start of a `kvm_xsave` (the FXSAVE image; Intel SDM vol. 1
 * §10.5.1 table 10-2 in its 64-bit form, arch/x86/include/asm/fpu/types.h `struct
 * fxregs_state`). Members are named as `kvm_fpu` names the same state, because KVM fills
 * kvm_fpu from exactly these bytes (kvm_arch_vcpu_ioctl_get_fpu(), arch/x86/kvm/x86.c).
 */
export const XSAVE_LEGACY_AREA = struct("xsave_legacy_area", [
  ["fcw", "u16"],
  ["fsw", "u16"],
  ["ftwx", "u8"],
  ["pad1", "u8"],
  ["last_opcode", "u16"],
  ["last_ip", "u64"],
  ["last_dp", "u64"],
  ["mxcsr", "u32"],
  ["mxcsr_mask", "u32"],
  ["fpr", "bytes", 128],
  ["xmm", "bytes", 256],
  ["reserved", "bytes", 96],
]);

/** The 64-byte XSAVE header at offset 512 of a `kvm_xsave` (SDM vol. 1 §13.4.2). */
export const XSAVE_HEADER = struct("xsave_header", [
  ["xstate_bv", "u64"],
  ["xcomp_bv", "u64"],
  ["reserved", "u64", 6],
]);

/**
 * Offset of the AVX state component (YMM0_H..YMM15_H, 16 × 16 bytes) in the standard,
 * non-compacted XSAVE format that KVM_GET_XSAVE returns: CPUID.(EAX=0DH,ECX=2).EBX = 576 on
 * every x86-64 CPU (SDM vol. 1 §13.4.3, table 13-1 "XSAVE State Components").
 */
export const XSAVE_AVX_OFFSET = 576;

/**
 * Byte offsets of the local APIC registers in the 1 KiB `kvm_lapic_state.regs` page, which is
 * the APIC's MMIO page (SDM vol. 3 §11.4.1 table 11-1; arch/x86/include/asm/apicdef.h). Each
 * register is 32 bits at the start of a 16-byte slot; ISR, TMR and IRR are eight registers each.
 */
export const LAPIC_REGISTER_OFFSETS = {
  id: 0x20,
  version: 0x30,
  tpr: 0x80,
  apr: 0x90,
  ppr: 0xa0,
  eoi: 0xb0,
  rrd: 0xc0,
  ldr: 0xd0,
  dfr: 0xe0,
  svr: 0xf0,
  isr: 0x100,
  tmr: 0x180,
  irr: 0x200,
  esr: 0x280,
  lvt_cmci: 0x2f0,
  icr_low: 0x300,
  icr_high: 0x310,
  lvt_timer: 0x320,
  lvt_thermal: 0x330,
  lvt_perf: 0x340,
  lvt_lint0: 0x350,
  lvt_lint1: 0x360,
  lvt_error: 0x370,
  timer_initial_count: 0x380,
  timer_current_count: 0x390,
  timer_divide: 0x3e0,
} as const;
