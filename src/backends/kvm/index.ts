/**
 * The KVM backend: drive /dev/kvm from TypeScript. `KvmSystem.open()` → `createVm()` →
 * `createVcpu()`; every object has `close()` and `Symbol.dispose`. Only ./ffi.ts touches
 * native memory. The library only: the flat-guest loader of the bundled x86 guests
 * (./flat-guest.ts) is for tests and benchmarks, which import it by path.
 */
export { KvmSystem, KVM_DEVICE_PATH, kvmDevicePath } from "./system.js";
export type { KvmOpenOptions } from "./system.js";
export { KvmVm } from "./vm.js";
export type { GuestMemory, KvmVmOptions, MemoryRegionSpec } from "./vm.js";
export { KvmVcpu } from "./vcpu.js";
export { encodeRegValue } from "../reg-value.js";
export { KICK_SIGNAL, RunThreadError } from "./run-worker.js";
export { SyncRegs } from "./sync-regs.js";
export { KvmApiVersionError, KvmClosedError } from "./errors.js";
export { decodeCpuid, encodeCpuid } from "./cpuid.js";
export type { CpuidEntry } from "./cpuid.js";
export { kvmUnavailableReason } from "./probe.js";
export { ioctlPath } from "./ffi.js";
export type { IoctlPath } from "./ffi.js";
