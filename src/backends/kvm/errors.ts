/**
 * Errors of the KVM backend that are not a kernel refusal (those are `KvmError`, from
 * src/abi/kvm/errors.ts): use of a closed object, an unusable KVM API version, and the
 * helper that turns a `-errno` syscall result into a `KvmError`.
 */
import { RegvisorError } from "../../errors.js";
import { KvmError, type KvmErrorInfo } from "../../abi/kvm/errors.js";
import type { RegId } from "../../abi/regid.js";

/** An object (system, VM, vCPU, memory region) was used after `close()`. */
export class KvmClosedError extends RegvisorError {
  constructor(what: string, action: string) {
    super("KVM_CLOSED", `Cannot ${action}: ${what} is closed`);
  }
}

/** `KVM_GET_API_VERSION` returned something other than 12 (include/uapi/linux/kvm.h). */
export class KvmApiVersionError extends RegvisorError {
  readonly version: number;
  constructor(version: number, expected: number) {
    super(
      "KVM_API_VERSION",
      `Cannot use /dev/kvm: KVM_GET_API_VERSION returned ${version}, expected ${expected}`,
    );
    this.version = version;
  }
}

/** Extra context for `kvmFail`. */
export interface FailContext {
  readonly action?: string;
  readonly regId?: RegId;
  readonly index?: number;
  readonly hint?: string;
}

/** Builds the `KvmError` for a syscall that returned `result` (= -errno). */
export function kvmFail(ioctl: string, result: number, ctx: FailContext = {}): KvmError {
  const info: KvmErrorInfo = { ioctl, errno: -result, ...ctx };
  return new KvmError(info);
}
