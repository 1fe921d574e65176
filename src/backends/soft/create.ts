/**
 * `createSoftVm()`: a soft VM whose vCPUs run the built-in RV64 hart (./riscv/hart.ts), inline
 * or each in its own Worker.
 */
import { Hart } from "./riscv/hart.js";
import { SoftVm, type SoftVmOptions } from "./vm.js";

/** URL of the built-in hart module, which threaded workers import. */
export const BUILTIN_HART_MODULE = new URL("./riscv/hart.js", import.meta.url).href;

/**
 * Creates a soft VM: `mode: "inline"` runs vCPUs on the caller's thread, `"threaded"` gives each
 * vCPU its own Worker behind a synchronous SharedArrayBuffer mailbox.
 */
export function createSoftVm(options: SoftVmOptions = {}): SoftVm {
  return new SoftVm(
    { hartFactory: (hartId) => new Hart({ hartId }), ...options },
    BUILTIN_HART_MODULE,
  );
}
