/**
 * The soft backend: a software RISC-V (RV64) hypervisor that exposes the exact Linux KVM RISC-V
 * register namespace (docs/DESIGN.md §5). `createSoftVm()` is the entry point; everything a VMM
 * needs (memslots, vCPUs, run page, sync-register groups) is re-exported here. The bundled
 * demo guest runs as a machine spec (src/vmm/demo.ts).
 */
export { BUILTIN_HART_MODULE, createSoftVm } from "./create.js";
export { SoftVm, allocGuestMemory, SOFT_MAX_SLOT_BYTES, USER_MEM_SLOTS } from "./vm.js";
export type { HartFactory, SoftVmOptions, UserMemoryRegion } from "./vm.js";
export { SoftVcpu, SoftClosedError } from "./vcpu.js";
export type { SoftMode } from "./vcpu.js";
export { SoftWorkerError } from "./threaded.js";
export { DEFAULT_TIME_SLICE_MS } from "./kernel.js";
export type { RunBudget } from "./kernel.js";
export { KVM_SYNC_RISCV, RunArea, RUN_PAGE_BYTES } from "./runarea.js";
export { HOST_ISA_EXTS, TIMEBASE_HZ } from "./host.js";
