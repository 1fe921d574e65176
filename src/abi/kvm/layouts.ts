/**
 * Arch-independent KVM struct layouts (include/uapi/linux/kvm.h, Linux 6.18;
 * docs/kvm-register-abi.md §2, §4) and the registry of every layout by C struct name.
 *
 * kvm_run: the header of §4.1 with the exit union at offset 32 and the sync area `s` at 304
 * (LP64 x86-64, arm64, riscv64; s390 differs, see ./layouts-s390.ts). Exit payloads are their
 * own layouts, relative to the union; `KVM_RUN_EXIT` gives their absolute offsets.
 */
import type { Layout } from "./layout.js";
import { absoluteOffsets, struct, union } from "./layout.js";
import * as riscv from "./layouts-riscv.js";
import * as s390 from "./layouts-s390.js";
import * as x86 from "./layouts-x86.js";

/** `struct kvm_one_reg` (16 bytes): register id and user address of its value. */
export const KVM_ONE_REG = struct("kvm_one_reg", [
  ["id", "u64"],
  ["addr", "u64"],
]);

/** `struct kvm_reg_list` (8-byte header + `n` u64 ids). */
export const KVM_REG_LIST = struct("kvm_reg_list", [
  ["n", "u64"],
  ["reg", "u64", 0],
]);

/** `struct kvm_userspace_memory_region` (32 bytes). */
export const KVM_USERSPACE_MEMORY_REGION = struct("kvm_userspace_memory_region", [
  ["slot", "u32"],
  ["flags", "u32"],
  ["guest_phys_addr", "u64"],
  ["memory_size", "u64"],
  ["userspace_addr", "u64"],
]);

/** `struct kvm_userspace_memory_region2` (160 bytes). */
export const KVM_USERSPACE_MEMORY_REGION2 = struct("kvm_userspace_memory_region2", [
  ["slot", "u32"],
  ["flags", "u32"],
  ["guest_phys_addr", "u64"],
  ["memory_size", "u64"],
  ["userspace_addr", "u64"],
  ["guest_memfd_offset", "u64"],
  ["guest_memfd", "u32"],
  ["pad1", "u32"],
  ["pad2", "u64", 14],
]);

/** `struct kvm_enable_cap` (104 bytes). */
export const KVM_ENABLE_CAP = struct("kvm_enable_cap", [
  ["cap", "u32"],
  ["flags", "u32"],
  ["args", "u64", 4],
  ["pad", "bytes", 64],
]);

/** `struct kvm_dirty_log` (16 bytes; dirty_bitmap is a user pointer). */
export const KVM_DIRTY_LOG = struct("kvm_dirty_log", [
  ["slot", "u32"],
  ["padding1", "u32"],
  ["dirty_bitmap", "u64"],
]);

/** `struct kvm_mp_state` (4 bytes). */
export const KVM_MP_STATE_LAYOUT = struct("kvm_mp_state", [["mp_state", "u32"]]);

/** arm64 `struct kvm_vcpu_init` (32 bytes). */
export const KVM_VCPU_INIT = struct("kvm_vcpu_init", [
  ["target", "u32"],
  ["features", "u32", 7],
]);

// Exit payloads, offsets relative to the start of the kvm_run exit union.

/** KVM_EXIT_UNKNOWN payload `hw`. */
export const EXIT_HW = struct("kvm_run.hw", [["hardware_exit_reason", "u64"]]);
/** KVM_EXIT_FAIL_ENTRY payload. */
export const EXIT_FAIL_ENTRY = struct("kvm_run.fail_entry", [
  ["hardware_entry_failure_reason", "u64"],
  ["cpu", "u32"],
]);
/** KVM_EXIT_EXCEPTION payload `ex`. */
export const EXIT_EX = struct("kvm_run.ex", [
  ["exception", "u32"],
  ["error_code", "u32"],
]);
/** KVM_EXIT_IO payload; data lives at `data_offset` bytes from the start of kvm_run. */
export const EXIT_IO = struct("kvm_run.io", [
  ["direction", "u8"],
  ["size", "u8"],
  ["port", "u16"],
  ["count", "u32"],
  ["data_offset", "u64"],
]);
/** KVM_EXIT_MMIO payload. */
export const EXIT_MMIO = struct("kvm_run.mmio", [
  ["phys_addr", "u64"],
  ["data", "bytes", 8],
  ["len", "u32"],
  ["is_write", "u8"],
]);
/** KVM_EXIT_HYPERCALL payload (`flags` overlays the older `longmode` u32). */
export const EXIT_HYPERCALL = struct("kvm_run.hypercall", [
  ["nr", "u64"],
  ["args", "u64", 6],
  ["ret", "u64"],
  ["flags", "u64"],
]);
/** KVM_EXIT_INTERNAL_ERROR payload. */
export const EXIT_INTERNAL = struct("kvm_run.internal", [
  ["suberror", "u32"],
  ["ndata", "u32"],
  ["data", "u64", 16],
]);
/** KVM_EXIT_SYSTEM_EVENT payload (`flags` is the old name of data[0]). */
export const EXIT_SYSTEM_EVENT = struct("kvm_run.system_event", [
  ["type", "u32"],
  ["ndata", "u32"],
  ["data", "u64", 16],
  { name: "flags", type: "u64", at: 8 },
]);
/** KVM_EXIT_X86_RDMSR / KVM_EXIT_X86_WRMSR payload (`error` is written by userspace). */
export const EXIT_MSR = struct("kvm_run.msr", [
  ["error", "u8"],
  ["pad", "bytes", 7],
  ["reason", "u32"],
  ["index", "u32"],
  ["data", "u64"],
]);
/** KVM_EXIT_RISCV_SBI payload (RV64: unsigned long = 8 bytes). */
export const EXIT_RISCV_SBI = struct("kvm_run.riscv_sbi", [
  ["extension_id", "u64"],
  ["function_id", "u64"],
  ["args", "u64", 6],
  ["ret", "u64", 2],
]);
/** KVM_EXIT_RISCV_CSR payload (RV64). */
export const EXIT_RISCV_CSR = struct("kvm_run.riscv_csr", [
  ["csr_num", "u64"],
  ["new_value", "u64"],
  ["write_mask", "u64"],
  ["ret_value", "u64"],
]);
/** KVM_EXIT_MEMORY_FAULT payload. */
export const EXIT_MEMORY_FAULT = struct("kvm_run.memory_fault", [
  ["flags", "u64"],
  ["gpa", "u64"],
  ["size", "u64"],
]);

/** The kvm_run exit union (256 bytes; its `padding` member fixes the size). */
export const KVM_RUN_EXIT_UNION = union("kvm_run.exit", [
  ["hw", EXIT_HW],
  ["fail_entry", EXIT_FAIL_ENTRY],
  ["ex", EXIT_EX],
  ["io", EXIT_IO],
  ["debug", x86.KVM_DEBUG_EXIT_ARCH_X86],
  ["mmio", EXIT_MMIO],
  ["hypercall", EXIT_HYPERCALL],
  ["internal", EXIT_INTERNAL],
  ["system_event", EXIT_SYSTEM_EVENT],
  ["msr", EXIT_MSR],
  ["riscv_sbi", EXIT_RISCV_SBI],
  ["riscv_csr", EXIT_RISCV_CSR],
  ["memory_fault", EXIT_MEMORY_FAULT],
  ["padding", "bytes", 256],
]);

/** `struct kvm_run` on x86-64, arm64 and riscv64 (2352 bytes; map the mmap size, not this). */
export const KVM_RUN = struct("kvm_run", [
  ["request_interrupt_window", "u8"],
  ["immediate_exit", "u8"],
  ["padding1", "bytes", 6],
  ["exit_reason", "u32"],
  ["ready_for_interrupt_injection", "u8"],
  ["if_flag", "u8"],
  ["flags", "u16"],
  ["cr8", "u64"],
  ["apic_base", "u64"],
  ["exit", KVM_RUN_EXIT_UNION],
  ["kvm_valid_regs", "u64"],
  ["kvm_dirty_regs", "u64"],
  ["s", "bytes", 2048],
]);

/** Absolute offsets in kvm_run of each exit payload's fields, e.g. `KVM_RUN_EXIT.io.port` = 34. */
export const KVM_RUN_EXIT = Object.freeze({
  hw: absoluteOffsets(EXIT_HW, KVM_RUN.fields.exit.offset),
  fail_entry: absoluteOffsets(EXIT_FAIL_ENTRY, KVM_RUN.fields.exit.offset),
  ex: absoluteOffsets(EXIT_EX, KVM_RUN.fields.exit.offset),
  io: absoluteOffsets(EXIT_IO, KVM_RUN.fields.exit.offset),
  debug: absoluteOffsets(x86.KVM_DEBUG_EXIT_ARCH_X86, KVM_RUN.fields.exit.offset),
  mmio: absoluteOffsets(EXIT_MMIO, KVM_RUN.fields.exit.offset),
  hypercall: absoluteOffsets(EXIT_HYPERCALL, KVM_RUN.fields.exit.offset),
  internal: absoluteOffsets(EXIT_INTERNAL, KVM_RUN.fields.exit.offset),
  system_event: absoluteOffsets(EXIT_SYSTEM_EVENT, KVM_RUN.fields.exit.offset),
  msr: absoluteOffsets(EXIT_MSR, KVM_RUN.fields.exit.offset),
  riscv_sbi: absoluteOffsets(EXIT_RISCV_SBI, KVM_RUN.fields.exit.offset),
  riscv_csr: absoluteOffsets(EXIT_RISCV_CSR, KVM_RUN.fields.exit.offset),
  memory_fault: absoluteOffsets(EXIT_MEMORY_FAULT, KVM_RUN.fields.exit.offset),
});

/** Where the sync-register area lives, per arch that has one (§4.2). */
export interface SyncArea {
  readonly validRegs: number;
  readonly dirtyRegs: number;
  /** Offset of `kvm_run.s`. */
  readonly s: number;
  /** `sizeof(struct kvm_sync_regs)` on that arch (0: empty struct). */
  readonly syncRegsSize: number;
}

const LP64_SYNC = {
  validRegs: KVM_RUN.fields.kvm_valid_regs.offset,
  dirtyRegs: KVM_RUN.fields.kvm_dirty_regs.offset,
  s: KVM_RUN.fields.s.offset,
};

/** Sync-area offsets in kvm_run for x86, arm64, riscv and s390. */
export const SYNC_AREA: Readonly<Record<"x86" | "arm64" | "riscv" | "s390", SyncArea>> = {
  x86: { ...LP64_SYNC, syncRegsSize: x86.KVM_SYNC_REGS_X86.size },
  // arm64 kvm_sync_regs holds only `__u64 device_irq_level`.
  arm64: { ...LP64_SYNC, syncRegsSize: 8 },
  riscv: { ...LP64_SYNC, syncRegsSize: 0 },
  s390: {
    validRegs: s390.KVM_RUN_S390.fields.kvm_valid_regs.offset,
    dirtyRegs: s390.KVM_RUN_S390.fields.kvm_dirty_regs.offset,
    s: s390.KVM_RUN_S390.fields.s.offset,
    syncRegsSize: s390.KVM_SYNC_REGS_S390.size,
  },
};

/**
 * Every layout by C struct name, as the ioctl table's `struct` field names them. Arch-specific
 * structs that share a C name (kvm_sync_regs, kvm_run) are listed by their x86-64 form.
 */
export const LAYOUTS: Readonly<Record<string, Layout>> = Object.freeze({
  kvm_one_reg: KVM_ONE_REG,
  kvm_reg_list: KVM_REG_LIST,
  kvm_run: KVM_RUN,
  kvm_userspace_memory_region: KVM_USERSPACE_MEMORY_REGION,
  kvm_userspace_memory_region2: KVM_USERSPACE_MEMORY_REGION2,
  kvm_enable_cap: KVM_ENABLE_CAP,
  kvm_dirty_log: KVM_DIRTY_LOG,
  kvm_mp_state: KVM_MP_STATE_LAYOUT,
  kvm_vcpu_init: KVM_VCPU_INIT,
  kvm_regs: x86.KVM_REGS,
  kvm_segment: x86.KVM_SEGMENT,
  kvm_dtable: x86.KVM_DTABLE,
  kvm_sregs: x86.KVM_SREGS,
  kvm_sregs2: x86.KVM_SREGS2,
  kvm_vcpu_events: x86.KVM_VCPU_EVENTS,
  kvm_sync_regs: x86.KVM_SYNC_REGS_X86,
  kvm_msr_entry: x86.KVM_MSR_ENTRY,
  kvm_msrs: x86.KVM_MSRS,
  kvm_msr_list: x86.KVM_MSR_LIST,
  kvm_cpuid_entry2: x86.KVM_CPUID_ENTRY2,
  kvm_cpuid2: x86.KVM_CPUID2,
  kvm_fpu: x86.KVM_FPU,
  kvm_xsave: x86.KVM_XSAVE,
  kvm_xcr: x86.KVM_XCR,
  kvm_xcrs: x86.KVM_XCRS,
  kvm_debugregs: x86.KVM_DEBUGREGS,
  kvm_lapic_state: x86.KVM_LAPIC_STATE,
  kvm_guest_debug: x86.KVM_GUEST_DEBUG_X86,
  kvm_msr_filter: x86.KVM_MSR_FILTER,
  kvm_irq_level: x86.KVM_IRQ_LEVEL,
  kvm_pit_config: x86.KVM_PIT_CONFIG,
  kvm_irqchip: x86.KVM_IRQCHIP,
  kvm_clock_data: x86.KVM_CLOCK_DATA,
  kvm_interrupt: x86.KVM_INTERRUPT,
  kvm_riscv_config: riscv.KVM_RISCV_CONFIG,
  kvm_riscv_core: riscv.KVM_RISCV_CORE,
  kvm_riscv_csr: riscv.KVM_RISCV_CSR,
  kvm_riscv_aia_csr: riscv.KVM_RISCV_AIA_CSR,
  kvm_riscv_smstateen_csr: riscv.KVM_RISCV_SMSTATEEN_CSR,
  kvm_riscv_timer: riscv.KVM_RISCV_TIMER,
  __riscv_f_ext_state: riscv.RISCV_F_EXT_STATE,
  __riscv_d_ext_state: riscv.RISCV_D_EXT_STATE,
  __riscv_v_ext_state: riscv.RISCV_V_EXT_STATE,
  kvm_riscv_sbi_sta: riscv.KVM_RISCV_SBI_STA,
  kvm_riscv_sbi_fwft: riscv.KVM_RISCV_SBI_FWFT,
});

export * from "./layouts-x86.js";
export * from "./layouts-riscv.js";
export * from "./layouts-s390.js";
