/**
 * s390x differences in kvm_run (include/uapi/linux/kvm.h, arch/s390/include/uapi/asm/kvm.h,
 * Linux 6.18; docs/kvm-register-abi.md §4.6, §12.2): `psw_mask`/`psw_addr` precede the exit
 * union, which shifts the union to 48 and the sync area to 320; the s390 `kvm_sync_regs` is 1984
 * bytes.
 */
import { struct } from "./layout.js";

/** s390 `struct kvm_sync_regs` (1984 bytes); `fprs` overlays the start of `vrs`. */
export const KVM_SYNC_REGS_S390 = struct("kvm_sync_regs(s390)", [
  ["prefix", "u64"],
  ["gprs", "u64", 16],
  ["acrs", "u32", 16],
  ["crs", "u64", 16],
  ["todpr", "u64"],
  ["cputm", "u64"],
  ["ckc", "u64"],
  ["pp", "u64"],
  ["gbea", "u64"],
  ["pft", "u64"],
  ["pfs", "u64"],
  ["pfc", "u64"],
  ["vrs", "u64", 64],
  { name: "fprs", type: "u64", count: 16, at: 392 },
  ["reserved", "bytes", 512],
  ["fpc", "u32"],
  // One byte whose bit 0 is `bpbc` (a C bit-field).
  ["bpbc", "u8"],
  ["padding1", "bytes", 51],
  ["riccb", "bytes", 64],
  ["diag318", "u64"],
  ["padding2", "bytes", 184],
  ["sdnx", "bytes", 256],
  { name: "gscb", type: "u64", count: 4, at: 1744 },
  { name: "etoken", type: "u64", at: 1776 },
  { name: "etoken_extension", type: "u64", at: 1784 },
]);

/** s390 `struct kvm_run` (2368 bytes): the LP64 header plus psw_mask/psw_addr before the union. */
export const KVM_RUN_S390 = struct("kvm_run(s390)", [
  ["request_interrupt_window", "u8"],
  ["immediate_exit", "u8"],
  ["padding1", "bytes", 6],
  ["exit_reason", "u32"],
  ["ready_for_interrupt_injection", "u8"],
  ["if_flag", "u8"],
  ["flags", "u16"],
  ["cr8", "u64"],
  ["apic_base", "u64"],
  ["psw_mask", "u64"],
  ["psw_addr", "u64"],
  ["exit", "bytes", 256],
  ["kvm_valid_regs", "u64"],
  ["kvm_dirty_regs", "u64"],
  ["s", "bytes", 2048],
]);
