/**
 * Whether /dev/kvm is usable here, as a reason string (or undefined when it is). Tests use it
 * to skip visibly; the CLI uses it to choose a backend.
 */
import { KvmSystem, type KvmOpenOptions } from "./system.js";

/** `undefined` when /dev/kvm opens and speaks API 12; otherwise why not (the error message). */
export function kvmUnavailableReason(options: KvmOpenOptions = {}): string | undefined {
  if (process.platform !== "linux" || process.arch !== "x64") {
    return `the KVM backend drives x86-64 Linux hosts; this is ${process.platform}/${process.arch}`;
  }
  try {
    KvmSystem.open(options).close();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
