/**
 * The KVM ioctl table as data (include/uapi/linux/kvm.h, arch/x86/include/uapi/asm/kvm.h,
 * Linux 6.18; docs/kvm-register-abi.md §3).
 *
 * Each entry records the fd level it is issued on, the `_IOC` direction, nr and argument size,
 * the argument struct, the arches whose kernels accept exactly this number, and the capability
 * that announces it. `number` is always computed with `ioc()` — never typed in — and pinned by
 * the golden test test/abi/kvm/ioctls.test.ts. Sizes are the x86-64 `sizeof` of the struct;
 * struct-carrying ioctls whose struct differs per arch list only the arches where the size (and
 * so the number) is the one recorded here.
 *
 * Several nr values are shared by two ioctls that differ in dir/size (0xa2: KVM_SET_DEBUGREGS
 * and KVM_SET_TSC_KHZ; 0xa3: KVM_ENABLE_CAP and KVM_GET_TSC_KHZ); always compare full numbers.
 */
import type { ArchName } from "../regid.js";
import type { IocDir } from "./ioc.js";
import { KVMIO, ioc } from "./ioc.js";

/**
 * The fd an ioctl is issued on: `/dev/kvm` ("system"), a VM fd, a vCPU fd, or either of two
 * (KVM_ENABLE_CAP on VM and vCPU; KVM_CHECK_EXTENSION on /dev/kvm and, with
 * KVM_CAP_CHECK_EXTENSION_VM, on a VM; KVM_GET_MSRS on /dev/kvm for feature MSRs).
 */
export type IoctlLevel = "system" | "vm" | "vcpu" | "vm+vcpu" | "system+vm" | "system+vcpu";

/** An fd kind, the parts an `IoctlLevel` is made of. */
export type FdKind = "system" | "vm" | "vcpu";

/** One row of the ioctl table. */
export interface IoctlSpec {
  readonly name: string;
  readonly level: IoctlLevel;
  readonly dir: IocDir;
  readonly nr: number;
  /** Argument size encoded in the number (0 for `_IO`). */
  readonly size: number;
  /** Argument struct name (a key of LAYOUTS where regvisor has the layout), if any. */
  readonly struct: string | undefined;
  /** Arches whose kernels accept exactly `number` (asm-generic ioctl encoding only). */
  readonly arches: readonly ArchName[];
  /** `KVM_CAP_*` that announces the ioctl, or undefined when it is always present. */
  readonly capability: string | undefined;
  /** The full ioctl request number, `ioc(dir, KVMIO, nr, size)`. */
  readonly number: number;
}

type Row = Omit<IoctlSpec, "name" | "number">;

// Arch sets. ppc and mips use another _IOC layout, so no number here is valid there; the
// 32-bit arm host is gone from the kernel.
const GENERIC: readonly ArchName[] = ["x86", "arm64", "riscv", "s390", "loongarch"];
const REG_LIST_ARCHES: readonly ArchName[] = ["x86", "arm64", "riscv"];
const MP_STATE_ARCHES: readonly ArchName[] = ["x86", "arm64", "riscv", "s390", "loongarch"];
const X86: readonly ArchName[] = ["x86"];
const ARM64: readonly ArchName[] = ["arm64"];

function io(level: IoctlLevel, nr: number, arches: readonly ArchName[], cap?: string): Row {
  return { level, dir: "none", nr, size: 0, struct: undefined, arches, capability: cap };
}

function st(
  level: IoctlLevel,
  dir: IocDir,
  nr: number,
  struct: string,
  size: number,
  arches: readonly ArchName[],
  cap?: string,
): Row {
  return { level, dir, nr, size, struct, arches, capability: cap };
}

const ROWS = {
  // §3.1 system (/dev/kvm) ioctls
  KVM_GET_API_VERSION: io("system", 0x00, GENERIC),
  KVM_CREATE_VM: io("system", 0x01, GENERIC),
  KVM_GET_MSR_INDEX_LIST: st("system", "readWrite", 0x02, "kvm_msr_list", 4, X86),
  KVM_CHECK_EXTENSION: io("system+vm", 0x03, GENERIC),
  KVM_GET_VCPU_MMAP_SIZE: io("system", 0x04, GENERIC),
  KVM_GET_SUPPORTED_CPUID: st(
    "system",
    "readWrite",
    0x05,
    "kvm_cpuid2",
    8,
    X86,
    "KVM_CAP_EXT_CPUID",
  ),
  KVM_GET_MSR_FEATURE_INDEX_LIST: st(
    "system",
    "readWrite",
    0x0a,
    "kvm_msr_list",
    4,
    X86,
    "KVM_CAP_GET_MSR_FEATURES",
  ),
  // §3.1 VM ioctls
  KVM_CREATE_VCPU: io("vm", 0x41, GENERIC),
  KVM_GET_DIRTY_LOG: st("vm", "write", 0x42, "kvm_dirty_log", 16, GENERIC),
  KVM_SET_USER_MEMORY_REGION: st(
    "vm",
    "write",
    0x46,
    "kvm_userspace_memory_region",
    32,
    GENERIC,
    "KVM_CAP_USER_MEMORY",
  ),
  KVM_SET_TSS_ADDR: io("vm", 0x47, X86, "KVM_CAP_SET_TSS_ADDR"),
  KVM_SET_IDENTITY_MAP_ADDR: st(
    "vm",
    "write",
    0x48,
    "u64",
    8,
    X86,
    "KVM_CAP_SET_IDENTITY_MAP_ADDR",
  ),
  KVM_SET_USER_MEMORY_REGION2: st(
    "vm",
    "write",
    0x49,
    "kvm_userspace_memory_region2",
    160,
    GENERIC,
    "KVM_CAP_USER_MEMORY2",
  ),
  KVM_CREATE_IRQCHIP: io("vm", 0x60, ["x86", "arm64"], "KVM_CAP_IRQCHIP"),
  KVM_IRQ_LINE: st(
    "vm",
    "write",
    0x61,
    "kvm_irq_level",
    8,
    ["x86", "arm64", "riscv"],
    "KVM_CAP_IRQCHIP",
  ),
  // KVM_SET_IRQCHIP is _IOR although userspace writes it (include/uapi/linux/kvm.h).
  KVM_GET_IRQCHIP: st("vm", "readWrite", 0x62, "kvm_irqchip", 520, X86, "KVM_CAP_IRQCHIP"),
  KVM_SET_IRQCHIP: st("vm", "read", 0x63, "kvm_irqchip", 520, X86, "KVM_CAP_IRQCHIP"),
  KVM_CREATE_PIT2: st("vm", "write", 0x77, "kvm_pit_config", 64, X86, "KVM_CAP_PIT2"),
  // The kvmclock; KVM_CHECK_EXTENSION(KVM_CAP_ADJUST_CLOCK) returns the KVM_CLOCK_* flags it
  // knows (arch/x86/kvm/x86.c kvm_vm_ioctl_check_extension).
  KVM_SET_CLOCK: st("vm", "write", 0x7b, "kvm_clock_data", 48, X86, "KVM_CAP_ADJUST_CLOCK"),
  KVM_GET_CLOCK: st("vm", "read", 0x7c, "kvm_clock_data", 48, X86, "KVM_CAP_ADJUST_CLOCK"),
  // vCPU-level KVM_ENABLE_CAP needs KVM_CAP_ENABLE_CAP; the VM-level form KVM_CAP_ENABLE_CAP_VM.
  KVM_ENABLE_CAP: st(
    "vm+vcpu",
    "write",
    0xa3,
    "kvm_enable_cap",
    104,
    GENERIC,
    "KVM_CAP_ENABLE_CAP",
  ),
  KVM_X86_SET_MSR_FILTER: st(
    "vm",
    "write",
    0xc6,
    "kvm_msr_filter",
    392,
    X86,
    "KVM_CAP_X86_MSR_FILTER",
  ),
  // §3.2 vCPU ioctls
  KVM_RUN: io("vcpu", 0x80, GENERIC),
  KVM_GET_REGS: st("vcpu", "read", 0x81, "kvm_regs", 144, X86),
  KVM_SET_REGS: st("vcpu", "write", 0x82, "kvm_regs", 144, X86),
  KVM_GET_SREGS: st("vcpu", "read", 0x83, "kvm_sregs", 312, X86),
  KVM_SET_SREGS: st("vcpu", "write", 0x84, "kvm_sregs", 312, X86),
  // riscv too (arch/riscv/kvm/vcpu.c kvm_arch_vcpu_async_ioctl): irq = KVM_INTERRUPT_SET /
  // KVM_INTERRUPT_UNSET drives the external interrupt line (KVM_INTERRUPT_RISCV).
  KVM_INTERRUPT: st("vcpu", "write", 0x86, "kvm_interrupt", 4, ["x86", "riscv", "loongarch"]),
  // On /dev/kvm KVM_GET_MSRS reads feature MSRs (KVM_CAP_GET_MSR_FEATURES).
  KVM_GET_MSRS: st("system+vcpu", "readWrite", 0x88, "kvm_msrs", 8, X86),
  KVM_SET_MSRS: st("vcpu", "write", 0x89, "kvm_msrs", 8, X86),
  KVM_GET_FPU: st("vcpu", "read", 0x8c, "kvm_fpu", 416, X86),
  KVM_SET_FPU: st("vcpu", "write", 0x8d, "kvm_fpu", 416, X86),
  KVM_GET_LAPIC: st("vcpu", "read", 0x8e, "kvm_lapic_state", 1024, X86, "KVM_CAP_IRQCHIP"),
  KVM_SET_LAPIC: st("vcpu", "write", 0x8f, "kvm_lapic_state", 1024, X86, "KVM_CAP_IRQCHIP"),
  KVM_SET_CPUID2: st("vcpu", "write", 0x90, "kvm_cpuid2", 8, X86, "KVM_CAP_EXT_CPUID"),
  KVM_GET_CPUID2: st("vcpu", "readWrite", 0x91, "kvm_cpuid2", 8, X86, "KVM_CAP_EXT_CPUID"),
  KVM_GET_MP_STATE: st(
    "vcpu",
    "read",
    0x98,
    "kvm_mp_state",
    4,
    MP_STATE_ARCHES,
    "KVM_CAP_MP_STATE",
  ),
  KVM_SET_MP_STATE: st(
    "vcpu",
    "write",
    0x99,
    "kvm_mp_state",
    4,
    MP_STATE_ARCHES,
    "KVM_CAP_MP_STATE",
  ),
  KVM_NMI: io("vcpu", 0x9a, X86, "KVM_CAP_USER_NMI"),
  // x86 kvm_guest_debug is 72 bytes; arm64's (520) and s390's differ, so their numbers do too.
  KVM_SET_GUEST_DEBUG: st(
    "vcpu",
    "write",
    0x9b,
    "kvm_guest_debug",
    72,
    X86,
    "KVM_CAP_SET_GUEST_DEBUG",
  ),
  // arm64's kvm_vcpu_events is also 64 bytes (different fields), so the numbers coincide.
  KVM_GET_VCPU_EVENTS: st(
    "vcpu",
    "read",
    0x9f,
    "kvm_vcpu_events",
    64,
    ["x86", "arm64"],
    "KVM_CAP_VCPU_EVENTS",
  ),
  KVM_SET_VCPU_EVENTS: st(
    "vcpu",
    "write",
    0xa0,
    "kvm_vcpu_events",
    64,
    ["x86", "arm64"],
    "KVM_CAP_VCPU_EVENTS",
  ),
  KVM_GET_DEBUGREGS: st("vcpu", "read", 0xa1, "kvm_debugregs", 128, X86, "KVM_CAP_DEBUGREGS"),
  KVM_SET_DEBUGREGS: st("vcpu", "write", 0xa2, "kvm_debugregs", 128, X86, "KVM_CAP_DEBUGREGS"),
  // The VM-level form (defaults for new vCPUs) needs KVM_CAP_VM_TSC_CONTROL.
  KVM_SET_TSC_KHZ: io("vm+vcpu", 0xa2, X86, "KVM_CAP_TSC_CONTROL"),
  KVM_GET_TSC_KHZ: io("vm+vcpu", 0xa3, X86, "KVM_CAP_GET_TSC_KHZ"),
  KVM_GET_XSAVE: st("vcpu", "read", 0xa4, "kvm_xsave", 4096, X86, "KVM_CAP_XSAVE"),
  KVM_SET_XSAVE: st("vcpu", "write", 0xa5, "kvm_xsave", 4096, X86, "KVM_CAP_XSAVE"),
  KVM_GET_XCRS: st("vcpu", "read", 0xa6, "kvm_xcrs", 392, X86, "KVM_CAP_XCRS"),
  KVM_SET_XCRS: st("vcpu", "write", 0xa7, "kvm_xcrs", 392, X86, "KVM_CAP_XCRS"),
  // KVM_GET_ONE_REG is _IOW: the kernel only reads kvm_one_reg; the value goes through addr.
  KVM_GET_ONE_REG: st("vcpu", "write", 0xab, "kvm_one_reg", 16, GENERIC, "KVM_CAP_ONE_REG"),
  KVM_SET_ONE_REG: st("vcpu", "write", 0xac, "kvm_one_reg", 16, GENERIC, "KVM_CAP_ONE_REG"),
  // No capability of its own: implied by KVM_CAP_ONE_REG on the arches that implement it.
  KVM_GET_REG_LIST: st(
    "vcpu",
    "readWrite",
    0xb0,
    "kvm_reg_list",
    8,
    REG_LIST_ARCHES,
    "KVM_CAP_ONE_REG",
  ),
  KVM_GET_SREGS2: st("vcpu", "read", 0xcc, "kvm_sregs2", 320, X86, "KVM_CAP_SREGS2"),
  KVM_SET_SREGS2: st("vcpu", "write", 0xcd, "kvm_sregs2", 320, X86, "KVM_CAP_SREGS2"),
  // The encoded size is 4096; the real buffer is KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) bytes.
  KVM_GET_XSAVE2: st("vcpu", "read", 0xcf, "kvm_xsave", 4096, X86, "KVM_CAP_XSAVE2"),
  // arm64 only
  KVM_ARM_VCPU_INIT: st("vcpu", "write", 0xae, "kvm_vcpu_init", 32, ARM64),
  KVM_ARM_PREFERRED_TARGET: st("vm", "read", 0xaf, "kvm_vcpu_init", 32, ARM64),
  KVM_ARM_VCPU_FINALIZE: st("vcpu", "write", 0xc2, "int", 4, ARM64, "KVM_CAP_ARM_SVE"),
} as const satisfies Record<string, Row>;

/** Kernel name of an ioctl in the table, e.g. `"KVM_GET_ONE_REG"`. */
export type IoctlName = keyof typeof ROWS;

function build(rows: typeof ROWS): Readonly<Record<IoctlName, IoctlSpec>> {
  const out: Partial<Record<IoctlName, IoctlSpec>> = {};
  for (const name of Object.keys(rows) as IoctlName[]) {
    const row = rows[name];
    out[name] = Object.freeze({
      name,
      ...row,
      number: ioc(row.dir, KVMIO, row.nr, row.size),
    });
  }
  // Every key of ROWS was filled above.
  return Object.freeze(out as Record<IoctlName, IoctlSpec>);
}

/** Every KVM ioctl regvisor issues or documents, keyed by kernel name. */
export const IOCTLS = build(ROWS);

/** Every ioctl name, in table order. */
export const IOCTL_NAMES: readonly IoctlName[] = Object.keys(ROWS) as IoctlName[];

/** The request number of `name` (shorthand for `IOCTLS[name].number`). */
export function ioctlNumber(name: IoctlName): number {
  return IOCTLS[name].number;
}

/** True when the ioctl may be issued on an fd of `kind`. */
export function ioctlAllowedOn(spec: IoctlSpec, kind: FdKind): boolean {
  return spec.level.split("+").includes(kind);
}

/** Table rows whose full number equals `number` (one, or none). */
export function ioctlByNumber(number: number): IoctlSpec | undefined {
  return IOCTL_NAMES.map((n) => IOCTLS[n]).find((spec) => spec.number === number);
}

/** Kernel name of an ioctl number, or `"ioctl 0x…"` when the table has none. */
export function ioctlName(number: number): string {
  return ioctlByNumber(number)?.name ?? `ioctl 0x${number.toString(16)}`;
}

export {
  KVM_API_VERSION,
  KVM_CAP,
  KVM_CLOCK,
  KVM_EXIT,
  KVM_EXIT_IO,
  KVM_GUESTDBG,
  KVM_INTERNAL_ERROR,
  KVM_INTERRUPT_RISCV,
  KVM_MEM,
  KVM_MP_STATE,
  KVM_PAGE_OFFSET,
  KVM_RUN_X86,
  KVM_SYNC_S390,
  KVM_SYNC_X86,
  KVM_SYSTEM_EVENT,
  KVM_VCPUEVENT_VALID,
  SYNC_REGS_SIZE_BYTES,
  kvmExitName,
} from "./constants.js";
export type { KvmCapName, KvmExitName } from "./constants.js";
