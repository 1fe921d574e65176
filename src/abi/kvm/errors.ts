/**
 * `KvmError`: a kernel (or soft-backend "kernel") refusal of an ioctl, carrying everything a
 * VMM author needs to act on it: the ioctl name, the errno name and number, and — for
 * register ioctls — the register id and its catalog name.
 */
import { RegvisorError, type ErrorJson } from "../../errors.js";
import { describeReg } from "../catalog.js";
import { formatRegId, type RegId } from "../regid.js";
import { ERRNO, errnoName, type ErrnoName } from "./errno.js";

/** Details for a `KvmError`. */
export interface KvmErrorInfo {
  /**
   * The action that failed, e.g. `"Cannot set"`; the register (if any) follows it as
   * `register 0x… (arch name)`. Without an action the message starts `"<ioctl> failed"`.
   */
  readonly action?: string;
  /** Ioctl name, e.g. `"KVM_SET_ONE_REG"`. */
  readonly ioctl: string;
  /** errno number (positive). */
  readonly errno: number;
  /** Register concerned, if any. */
  readonly regId?: RegId;
  /** Index into a MANY_REGS batch, if the failure concerns one entry of it. */
  readonly index?: number;
  /** A hint that fixes the problem, appended to the message. */
  readonly hint?: string;
}

/** The kernel (or the soft backend acting as it) refused an ioctl. */
export class KvmError extends RegvisorError {
  readonly ioctl: string;
  readonly errno: number;
  readonly errnoName: string;
  readonly regId: RegId | undefined;
  readonly regName: string | undefined;
  readonly index: number | undefined;

  constructor(info: KvmErrorInfo, options?: ErrorOptions) {
    const name = errnoName(info.errno);
    const reg =
      info.regId === undefined
        ? ""
        : ` register ${formatRegId(info.regId)} (${describeReg(info.regId)})`;
    const at = info.index === undefined ? "" : ` at batch index ${info.index}`;
    const head = info.action === undefined ? `${info.ioctl} failed` : `${info.action}${reg}${at}`;
    const tail =
      info.action === undefined
        ? `${reg === "" ? "" : ` for${reg}`}${at}: ${name}`
        : `: ${info.ioctl} failed with ${name}`;
    super(
      `KVM_${name}`,
      `${head}${tail}${info.hint === undefined ? "" : ` (${info.hint})`}`,
      options,
    );
    this.ioctl = info.ioctl;
    this.errno = info.errno;
    this.errnoName = name;
    this.regId = info.regId;
    this.regName = info.regId === undefined ? undefined : describeReg(info.regId);
    this.index = info.index;
  }

  /** True when the errno is `name`. */
  is(name: ErrnoName): boolean {
    return this.errno === ERRNO[name];
  }

  override toJSON(): ErrorJson {
    return {
      ...super.toJSON(),
      ioctl: this.ioctl,
      errno: this.errno,
      errnoName: this.errnoName,
      ...(this.regId === undefined
        ? {}
        : { regId: formatRegId(this.regId), regName: this.regName }),
      ...(this.index === undefined ? {} : { index: this.index }),
    };
  }
}
