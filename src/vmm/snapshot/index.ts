/**
 * Snapshot and restore over the `Vcpu` interface (DESIGN.md §4): the checksummed format
 * (format.ts), per-arch restore ordering as data (ordering.ts), restore with rollback
 * (restore.ts), register-level diff (diff.ts) and the inspect summary (inspect.ts).
 */
export * from "./format.js";
export { crc32c } from "./crc32c.js";
export * from "./errors.js";
export * from "./ordering.js";
export { resolveRestoreOptions, compareIds, type RestoreOptions, type VcpuPlan } from "./plan.js";
export * from "./restore.js";
export * from "./diff.js";
export * from "./inspect.js";
export { valueHex, regRef } from "./describe.js";
export * from "./machine.js";
export * from "./devices.js";
export * from "./vm-state.js";
export * from "./machines/index.js";
export { applyArchFixups } from "./arch-fixups.js";
export { KNOWN_MEMSLOT_FLAGS, memslotFlags, memslotOptions } from "./memslot-flags.js";
