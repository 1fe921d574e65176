/**
 * Snapshot and restore over the `Vcpu` interface (docs/DESIGN.md §4): the checksummed format
 * (format.ts), per-arch restore ordering as data (ordering.ts), restore with rollback
 * (restore.ts), register-level diff (diff.ts) and the inspect summary (inspect.ts).
 *
 * The library only, and free of native code: whole-machine capture and restore live with the
 * machine (src/vmm/machine/state.ts), whose backends the caller injects, so importing
 * `regvisor/snapshot` never loads koffi.
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
export { applyArchFixups } from "./arch-fixups.js";
export { KNOWN_MEMSLOT_FLAGS, memslotFlags, memslotOptions } from "./memslot-flags.js";
