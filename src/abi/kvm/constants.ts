/**
 * KVM numeric constants other than ioctl numbers (include/uapi/linux/kvm.h,
 * arch/x86/include/uapi/asm/kvm.h, arch/s390/include/uapi/asm/kvm.h; Linux 6.18;
 * docs/kvm-register-abi.md §3.3, §4.3, §4.4, §12). Re-exported by ./ioctls.ts.
 */

/** `KVM_API_VERSION`: what KVM_GET_API_VERSION returns; anything else is unusable. */
export const KVM_API_VERSION = 12;

/** Capability numbers, the argument of KVM_CHECK_EXTENSION (kvm.h `KVM_CAP_*`). */
export const KVM_CAP = {
  KVM_CAP_IRQCHIP: 0,
  KVM_CAP_HLT: 1,
  KVM_CAP_USER_MEMORY: 3,
  KVM_CAP_SET_TSS_ADDR: 4,
  KVM_CAP_EXT_CPUID: 7,
  KVM_CAP_NR_VCPUS: 9,
  KVM_CAP_NR_MEMSLOTS: 10,
  KVM_CAP_MP_STATE: 14,
  KVM_CAP_COALESCED_MMIO: 15,
  KVM_CAP_USER_NMI: 22,
  KVM_CAP_SET_GUEST_DEBUG: 23,
  KVM_CAP_PIT2: 33,
  KVM_CAP_SET_IDENTITY_MAP_ADDR: 37,
  KVM_CAP_ADJUST_CLOCK: 39,
  KVM_CAP_VCPU_EVENTS: 41,
  KVM_CAP_DEBUGREGS: 50,
  KVM_CAP_ENABLE_CAP: 54,
  KVM_CAP_XSAVE: 55,
  KVM_CAP_XCRS: 56,
  KVM_CAP_TSC_CONTROL: 60,
  KVM_CAP_GET_TSC_KHZ: 61,
  KVM_CAP_MAX_VCPUS: 66,
  KVM_CAP_ONE_REG: 70,
  KVM_CAP_SYNC_REGS: 74,
  KVM_CAP_READONLY_MEM: 81,
  KVM_CAP_ENABLE_CAP_VM: 98,
  KVM_CAP_CHECK_EXTENSION_VM: 105,
  KVM_CAP_ARM_PMU_V3: 126,
  KVM_CAP_MAX_VCPU_ID: 128,
  KVM_CAP_IMMEDIATE_EXIT: 136,
  KVM_CAP_GET_MSR_FEATURES: 153,
  KVM_CAP_ARM_SVE: 170,
  KVM_CAP_ARM_PTRAUTH_ADDRESS: 171,
  KVM_CAP_ARM_PTRAUTH_GENERIC: 172,
  KVM_CAP_X86_USER_SPACE_MSR: 188,
  KVM_CAP_X86_MSR_FILTER: 189,
  KVM_CAP_SREGS2: 200,
  KVM_CAP_XSAVE2: 208,
  KVM_CAP_VM_TSC_CONTROL: 214,
  KVM_CAP_USER_MEMORY2: 231,
  KVM_CAP_ARM_WRITABLE_IMP_ID_REGS: 239,
  KVM_CAP_ARM_EL2: 240,
  KVM_CAP_ARM_EL2_E2H0: 241,
  KVM_CAP_RISCV_MP_STATE_RESET: 242,
} as const;

/** A capability name, e.g. `"KVM_CAP_ONE_REG"`. */
export type KvmCapName = keyof typeof KVM_CAP;

/** `kvm_run.exit_reason` values (kvm.h `KVM_EXIT_*`). */
export const KVM_EXIT = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  SET_TPR: 11,
  TPR_ACCESS: 12,
  S390_SIEIC: 13,
  S390_RESET: 14,
  DCR: 15,
  NMI: 16,
  INTERNAL_ERROR: 17,
  OSI: 18,
  PAPR_HCALL: 19,
  S390_UCONTROL: 20,
  WATCHDOG: 21,
  S390_TSCH: 22,
  EPR: 23,
  SYSTEM_EVENT: 24,
  S390_STSI: 25,
  IOAPIC_EOI: 26,
  HYPERV: 27,
  ARM_NISV: 28,
  X86_RDMSR: 29,
  X86_WRMSR: 30,
  DIRTY_RING_FULL: 31,
  AP_RESET_HOLD: 32,
  X86_BUS_LOCK: 33,
  XEN: 34,
  RISCV_SBI: 35,
  RISCV_CSR: 36,
  NOTIFY: 37,
  LOONGARCH_IOCSR: 38,
  MEMORY_FAULT: 39,
  TDX: 40,
} as const;

/** Short exit-reason name without the `KVM_EXIT_` prefix, e.g. `"HLT"`. */
export type KvmExitName = keyof typeof KVM_EXIT;

const EXIT_NAMES = new Map<number, KvmExitName>(
  (Object.keys(KVM_EXIT) as KvmExitName[]).map((name) => [KVM_EXIT[name], name]),
);

/** The kernel name of an exit reason (`"KVM_EXIT_HLT"`), or `"KVM_EXIT_<n>"` if unknown. */
export function kvmExitName(reason: number): string {
  const name = EXIT_NAMES.get(reason);
  return name === undefined ? `KVM_EXIT_${reason}` : `KVM_EXIT_${name}`;
}

/** `kvm_run.io.direction` values (`KVM_EXIT_IO_IN` / `_OUT`). */
export const KVM_EXIT_IO = { IN: 0, OUT: 1 } as const;

/** `kvm_run.system_event.type` values (`KVM_SYSTEM_EVENT_*`). */
export const KVM_SYSTEM_EVENT = {
  SHUTDOWN: 1,
  RESET: 2,
  CRASH: 3,
  WAKEUP: 4,
  SUSPEND: 5,
  SEV_TERM: 6,
  TDX_FATAL: 7,
} as const;

/** `kvm_run.internal.suberror` values (`KVM_INTERNAL_ERROR_*`). */
export const KVM_INTERNAL_ERROR = {
  EMULATION: 1,
  SIMUL_EX: 2,
  DELIVERY_EV: 3,
  UNEXPECTED_EXIT_REASON: 4,
} as const;

/** `kvm_run.flags` bits on x86 (`KVM_RUN_X86_*`); cleared at every KVM_RUN entry. */
export const KVM_RUN_X86 = { SMM: 0x1, BUS_LOCK: 0x2, GUEST_MODE: 0x4 } as const;

/** x86 sync-register groups for `kvm_valid_regs` / `kvm_dirty_regs` (`KVM_SYNC_X86_*`). */
export const KVM_SYNC_X86 = { REGS: 0x1, SREGS: 0x2, EVENTS: 0x4, VALID_FIELDS: 0x7 } as const;

/** s390 sync-register groups (`KVM_SYNC_*` in arch/s390/include/uapi/asm/kvm.h). */
export const KVM_SYNC_S390 = {
  PREFIX: 0x1,
  GPRS: 0x2,
  ACRS: 0x4,
  CRS: 0x8,
  ARCH0: 0x10,
  PFAULT: 0x20,
  VRS: 0x40,
  RICCB: 0x80,
  FPRS: 0x100,
  GSCB: 0x200,
  BPBC: 0x400,
  ETOKEN: 0x800,
  DIAG318: 0x1000,
  VALID_FIELDS: 0x1fff,
} as const;

/**
 * `kvm_interrupt.irq` values of riscv's KVM_INTERRUPT (arch/riscv/include/uapi/asm/kvm.h:
 * `KVM_INTERRUPT_SET -1U`, `KVM_INTERRUPT_UNSET -2U`): raise / lower the external interrupt.
 */
export const KVM_INTERRUPT_RISCV = { SET: 0xffff_ffff, UNSET: 0xffff_fffe } as const;

/** `kvm_userspace_memory_region.flags` bits (`KVM_MEM_*`). */
export const KVM_MEM = { LOG_DIRTY_PAGES: 0x1, READONLY: 0x2, GUEST_MEMFD: 0x4 } as const;

/**
 * `kvm_clock_data.flags` bits (`KVM_CLOCK_*`, include/uapi/linux/kvm.h; 1 is never used: old
 * kernels answered KVM_CAP_ADJUST_CLOCK with 1 before there were flags).
 */
export const KVM_CLOCK = { TSC_STABLE: 0x2, REALTIME: 0x4, HOST_TSC: 0x8 } as const;

/** `kvm_irqchip.chip_id` values, x86 (`KVM_IRQCHIP_*`, arch/x86/include/uapi/asm/kvm.h). */
export const KVM_IRQCHIP_ID = {
  PIC_MASTER: 0,
  PIC_SLAVE: 1,
  IOAPIC: 2,
} as const;

/** `kvm_mp_state.mp_state` values (`KVM_MP_STATE_*`). */
export const KVM_MP_STATE = {
  RUNNABLE: 0,
  UNINITIALIZED: 1,
  INIT_RECEIVED: 2,
  HALTED: 3,
  SIPI_RECEIVED: 4,
  STOPPED: 5,
  CHECK_STOP: 6,
  OPERATING: 7,
  LOAD: 8,
  AP_RESET_HOLD: 9,
  SUSPENDED: 10,
} as const;

/** `kvm_guest_debug.control` bits: generic (`KVM_GUESTDBG_ENABLE`, …) and x86 ones. */
export const KVM_GUESTDBG = {
  ENABLE: 0x1,
  SINGLESTEP: 0x2,
  USE_SW_BP: 0x10000,
  USE_HW_BP: 0x20000,
  INJECT_DB: 0x40000,
  INJECT_BP: 0x80000,
  BLOCKIRQ: 0x100000,
} as const;

/** `kvm_vcpu_events.flags` bits (`KVM_VCPUEVENT_VALID_*`). */
export const KVM_VCPUEVENT_VALID = {
  NMI_PENDING: 0x01,
  SIPI_VECTOR: 0x02,
  SHADOW: 0x04,
  SMM: 0x08,
  PAYLOAD: 0x10,
  TRIPLE_FAULT: 0x20,
} as const;

/** mmap page offsets inside the vCPU mapping (x86: PIO data page 1, coalesced-MMIO ring 2). */
export const KVM_PAGE_OFFSET = { PIO_X86: 1, COALESCED_MMIO_X86: 2, DIRTY_RING: 64 } as const;

/** `SYNC_REGS_SIZE_BYTES`: size of the `kvm_run.s` union on every arch in 6.18. */
export const SYNC_REGS_SIZE_BYTES = 2048;
