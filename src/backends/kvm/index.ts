/**
 * The KVM backend: drive /dev/kvm from TypeScript. `KvmSystem.open()` → `createVm()` →
 * `createVcpu()`; every object has `close()` and `Symbol.dispose`. Only ./ffi.ts touches
 * native memory.
 */
export { KvmSystem, KVM_DEVICE_PATH } from "./system.js";
export type { KvmOpenOptions } from "./system.js";
export { KvmVm } from "./vm.js";
export type { GuestMemory, KvmVmOptions, MemoryRegionSpec } from "./vm.js";
export { KvmVcpu, encodeRegValue } from "./vcpu.js";
export { KICK_SIGNAL, RunThreadError } from "./run-worker.js";
export { SyncRegs } from "./sync-regs.js";
export { KvmApiVersionError, KvmClosedError } from "./errors.js";
export { decodeCpuid, encodeCpuid } from "./cpuid.js";
export type { CpuidEntry } from "./cpuid.js";
export {
  bootFlatGuest,
  bundledGuest,
  bundledGuestPath,
  FLAT_LOAD_ADDRESS,
  FLAT_MEMORY_SIZE,
} from "./flat-guest.js";
export type { BundledGuest, FlatGuest } from "./flat-guest.js";
export { runDemo, DEMO_CONSOLE_PORT, DEMO_INPUT_PORT } from "./demo.js";
export type { DemoOptions, DemoRegister, DemoResult } from "./demo.js";
export { kvmUnavailableReason } from "./probe.js";
export { ioctlPath } from "./ffi.js";
export type { IoctlPath } from "./ffi.js";
