/**
 * RISC-V (RV64) KVM backing-struct layouts (arch/riscv/include/uapi/asm/kvm.h and ptrace.h,
 * Linux 6.18; docs/kvm-register-abi.md §8.2). `unsigned long` is 8 bytes (RV64); ONE_REG
 * register numbers are these field offsets divided by the register size.
 */
import { struct } from "./layout.js";

const U64_NAMES = <const N extends readonly string[]>(names: N) =>
  names.map((n) => [n, "u64"] as const) as { [I in keyof N]: readonly [N[I], "u64"] };

/** ptrace `struct user_regs_struct` (256 bytes): pc then x1..x31 by ABI name. */
export const RISCV_USER_REGS = struct(
  "user_regs_struct",
  U64_NAMES([
    "pc",
    "ra",
    "sp",
    "gp",
    "tp",
    "t0",
    "t1",
    "t2",
    "s0",
    "s1",
    "a0",
    "a1",
    "a2",
    "a3",
    "a4",
    "a5",
    "a6",
    "a7",
    "s2",
    "s3",
    "s4",
    "s5",
    "s6",
    "s7",
    "s8",
    "s9",
    "s10",
    "s11",
    "t3",
    "t4",
    "t5",
    "t6",
  ] as const),
);

/** `struct kvm_riscv_config` (64 bytes). */
export const KVM_RISCV_CONFIG = struct(
  "kvm_riscv_config",
  U64_NAMES([
    "isa",
    "zicbom_block_size",
    "mvendorid",
    "marchid",
    "mimpid",
    "zicboz_block_size",
    "satp_mode",
    "zicbop_block_size",
  ] as const),
);

/** `struct kvm_riscv_core` (264 bytes): user_regs_struct then `mode` (KVM_RISCV_MODE_S/U). */
export const KVM_RISCV_CORE = struct("kvm_riscv_core", [
  ["regs", RISCV_USER_REGS],
  ["mode", "u64"],
]);

/** `struct kvm_riscv_csr` (88 bytes): the general S-mode CSRs. */
export const KVM_RISCV_CSR = struct(
  "kvm_riscv_csr",
  U64_NAMES([
    "sstatus",
    "sie",
    "stvec",
    "sscratch",
    "sepc",
    "scause",
    "stval",
    "sip",
    "satp",
    "scounteren",
    "senvcfg",
  ] as const),
);

/** `struct kvm_riscv_aia_csr` (56 bytes). */
export const KVM_RISCV_AIA_CSR = struct(
  "kvm_riscv_aia_csr",
  U64_NAMES(["siselect", "iprio1", "iprio2", "sieh", "siph", "iprio1h", "iprio2h"] as const),
);

/** `struct kvm_riscv_smstateen_csr` (8 bytes). */
export const KVM_RISCV_SMSTATEEN_CSR = struct("kvm_riscv_smstateen_csr", [["sstateen0", "u64"]]);

/** `struct kvm_riscv_timer` (32 bytes, u64 fields even on RV32). */
export const KVM_RISCV_TIMER = struct(
  "kvm_riscv_timer",
  U64_NAMES(["frequency", "time", "compare", "state"] as const),
);

/** `struct __riscv_f_ext_state` (132 bytes): f[32] u32, fcsr u32. */
export const RISCV_F_EXT_STATE = struct("__riscv_f_ext_state", [
  ["f", "u32", 32],
  ["fcsr", "u32"],
]);

/** `struct __riscv_d_ext_state` (264 bytes): f[32] u64, fcsr u32, 4 bytes tail padding. */
export const RISCV_D_EXT_STATE = struct("__riscv_d_ext_state", [
  ["f", "u64", 32],
  ["fcsr", "u32"],
]);

/** `struct __riscv_v_ext_state` (48 bytes); `datap` is a kernel pointer, never a register. */
export const RISCV_V_EXT_STATE = struct(
  "__riscv_v_ext_state",
  U64_NAMES(["vstart", "vl", "vtype", "vcsr", "vlenb", "datap"] as const),
);

/** `struct kvm_riscv_sbi_sta` (16 bytes). */
export const KVM_RISCV_SBI_STA = struct(
  "kvm_riscv_sbi_sta",
  U64_NAMES(["shmem_lo", "shmem_hi"] as const),
);

/** `struct kvm_riscv_sbi_fwft_feature` (24 bytes). */
export const KVM_RISCV_SBI_FWFT_FEATURE = struct(
  "kvm_riscv_sbi_fwft_feature",
  U64_NAMES(["enable", "flags", "value"] as const),
);

/** `struct kvm_riscv_sbi_fwft` (48 bytes). */
export const KVM_RISCV_SBI_FWFT = struct("kvm_riscv_sbi_fwft", [
  ["misaligned_deleg", KVM_RISCV_SBI_FWFT_FEATURE],
  ["pointer_masking", KVM_RISCV_SBI_FWFT_FEATURE],
]);
