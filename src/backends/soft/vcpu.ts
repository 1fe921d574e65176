/**
 * `SoftVcpu`: the soft backend's implementation of the `Vcpu` interface. It is the same object
 * in both execution modes; only its `KernelPort` differs — the `VcpuKernel` itself (inline) or
 * a mailbox to the Worker that owns the kernel (threaded). Argument checks that the kernel could
 * not see (value length ≠ size(id), stream length ≠ Σ sizes) are `RangeError`s raised here,
 * before any "syscall"; kernel refusals become `KvmError`s naming the ioctl, errno, register and
 * batch index.
 */
import { ERRNO } from "../../abi/kvm/errno.js";
import { KvmError } from "../../abi/kvm/errors.js";
import { regId, regSize, type RegId } from "../../abi/regid.js";
import { RegvisorError } from "../../errors.js";
import { VcpuBusyError, type GuestDebug, type Vcpu, type VcpuExit } from "../vcpu.js";
import type { Memslot, Watchpoint } from "./riscv/contract.js";
import { encodeRegValue } from "../reg-value.js";
import { decodeLE, encodeLE } from "../../abi/value.js";
import type { RunBudget } from "./kernel.js";
import { Errno } from "./kstate.js";
import { BatchErrno, batchSizes } from "./regs-many.js";
import type { RunArea } from "./runarea.js";
import type { VmShared } from "./shared.js";

/** What a `SoftVcpu` needs from its kernel, wherever that kernel runs. Throws `Errno`. */
export interface KernelPort {
  regList(): RegId[];
  getOne(id: RegId): bigint;
  setOne(id: RegId, value: bigint): void;
  getMany(ids: readonly RegId[], out: Uint8Array): void;
  setMany(ids: readonly RegId[], bytes: Uint8Array): void;
  /** 0: an exit is in the run page; EINTR: interrupted. */
  run(): number;
  /** `run()` on the kernel's own thread (threaded mode only); resolves like `run()`. */
  runAsync?(): Promise<number>;
  setMemslots(slots: readonly Memslot[]): void;
  setBudget(budget: RunBudget): void;
  /** KVM_SET_GUEST_DEBUG (control bits, hardware breakpoint pcs). */
  setGuestDebug(
    control: number,
    hwBreakpoints: readonly bigint[],
    watchpoints?: readonly Watchpoint[],
  ): void;
  /** KVM_GET_MP_STATE (`KVM_MP_STATE_*`). */
  getMpState(): number;
  /** KVM_SET_MP_STATE. */
  setMpState(state: number): void;
  close(): void;
}

/** A soft VM object (VM or vCPU) was used after `close()`. */
export class SoftClosedError extends RegvisorError {
  constructor(what: string, action: string) {
    super("SOFT_CLOSED", `Cannot ${action}: ${what} is closed`);
  }
}

/** Execution mode of a soft VM: vCPUs on the caller's thread, or each in its own Worker. */
export type SoftMode = "inline" | "threaded";

/** A vCPU of the soft backend (RISC-V RV64). */
export class SoftVcpu implements Vcpu {
  readonly arch = "riscv" as const;
  readonly index: number;
  readonly mode: SoftMode;
  /** The vCPU's `kvm_run` page: `immediateExit`, sync registers, the raw exit payloads. */
  readonly runArea: RunArea;
  private readonly port: KernelPort;
  private readonly shared: VmShared;
  private readonly onClose: () => void;
  private closed = false;
  private running = false;
  /**
   * Threaded mode only: `run()` in the vCPU's Worker while the caller's event loop stays free
   * (the caller awaits the mailbox with `Atomics.waitAsync`). Inline mode has none — the hart
   * runs on the caller's thread, so there is nothing to await; use threaded mode.
   */
  readonly runAsync?: () => Promise<VcpuExit>;

  /** Built by `SoftVm.createVcpu()`. */
  constructor(init: {
    port: KernelPort;
    index: number;
    mode: SoftMode;
    runArea: RunArea;
    shared: VmShared;
    onClose: () => void;
  }) {
    this.port = init.port;
    this.index = init.index;
    this.mode = init.mode;
    this.runArea = init.runArea;
    this.shared = init.shared;
    this.onClose = init.onClose;
    const port = this.port;
    if (port.runAsync !== undefined) {
      this.runAsync = () => this.runOnThread(() => port.runAsync?.() ?? Promise.resolve(0));
    }
  }

  /** True once `close()` ran. */
  get isClosed(): boolean {
    return this.closed;
  }

  regList(): RegId[] {
    this.check("list registers");
    return this.port.regList();
  }

  getOneReg(id: RegId): Uint8Array {
    this.check("get a register");
    // regId(): a JavaScript bigint outside 0..2^64-1 is refused, never masked into a real id.
    const size = regSize(regId(id));
    try {
      const out = new Uint8Array(size);
      encodeLE(this.port.getOne(id), out, 0, size);
      return out;
    } catch (error) {
      throw this.kvmError(error, "Cannot read", "KVM_GET_ONE_REG", id);
    }
  }

  setOneReg(id: RegId, value: Uint8Array | bigint): void {
    this.check("set a register");
    // regId(): a JavaScript bigint outside 0..2^64-1 is refused, never masked into a real id.
    const size = regSize(regId(id));
    const bytes = encodeRegValue(id, value);
    try {
      this.port.setOne(id, decodeLE(bytes, 0, size));
    } catch (error) {
      throw this.kvmError(error, "Cannot set", "KVM_SET_ONE_REG", id);
    }
  }

  getManyRegs(ids: readonly RegId[]): Uint8Array {
    this.check("get registers");
    const { total } = batchSizes(checkIds(ids));
    const out = new Uint8Array(total);
    try {
      this.port.getMany(ids, out);
      return out;
    } catch (error) {
      throw this.batchError(error, ids, "Cannot read", "KVM_GET_ONE_REG");
    }
  }

  setManyRegs(ids: readonly RegId[], bytes: Uint8Array): void {
    this.check("set registers");
    const { total } = batchSizes(checkIds(ids));
    if (!(bytes instanceof Uint8Array))
      throw new TypeError("setManyRegs: bytes must be a Uint8Array");
    if (bytes.length !== total) {
      throw new RangeError(
        `setManyRegs: stream has ${bytes.length} bytes, the ${ids.length} registers need ${total}`,
      );
    }
    try {
      this.port.setMany(ids, bytes);
    } catch (error) {
      throw this.batchError(error, ids, "Cannot set", "KVM_SET_ONE_REG");
    }
  }

  run(): VcpuExit {
    this.check("run the vCPU");
    let result: number;
    try {
      result = this.port.run();
    } catch (error) {
      throw this.runError(error);
    }
    return result === ERRNO.EINTR ? { kind: "intr" } : this.runArea.decodeExit();
  }

  private async runOnThread(start: () => Promise<number>): Promise<VcpuExit> {
    this.check("run the vCPU");
    this.running = true;
    let result: number;
    try {
      result = await start();
    } catch (error) {
      throw this.runError(error);
    } finally {
      this.running = false;
    }
    return result === ERRNO.EINTR ? { kind: "intr" } : this.runArea.decodeExit();
  }

  private runError(error: unknown): unknown {
    const hint =
      error instanceof Errno && error.errno === ERRNO.EINVAL
        ? "kvm_valid_regs/kvm_dirty_regs may only hold KVM_SYNC_RISCV bits (0x3)"
        : undefined;
    return this.kvmError(error, `Cannot run vCPU ${this.index}`, "KVM_RUN", undefined, hint);
  }

  /**
   * Makes the run in progress return `{ kind: "intr" }` within about one translated block (the
   * hart watches its wake word; a WFI-blocked vCPU wakes), or the next run return at once.
   * Kicks coalesce: several before the run looks count as one. Safe from any thread.
   */
  kick(): void {
    if (this.closed) return;
    this.shared.kick(this.index);
  }

  /**
   * KVM_INTERRUPT on riscv: `true` = KVM_INTERRUPT_SET, `false` = KVM_INTERRUPT_UNSET of the
   * external interrupt line (SEIP). Asynchronous like the kernel's: safe from any thread and
   * while `run()` is executing in a Worker.
   */
  setExternalInterrupt(level: boolean): void {
    if (typeof level !== "boolean")
      throw new TypeError("setExternalInterrupt: level must be a boolean");
    if (this.closed) throw new SoftClosedError(`soft vCPU ${this.index}`, "raise an interrupt");
    this.shared.setSeip(this.index, level);
  }

  /**
   * KVM_SET_GUEST_DEBUG: ENABLE intercepts `ebreak`/`c.ebreak` (a `debug` exit, cause
   * "swbreak", pc on it), as RISC-V KVM does; SINGLESTEP ("step") and USE_HW_BP with
   * `hwBreakpoints` ("hwbreak", by guest-virtual pc, paging on or off) and `watchpoints`
   * ("watch"/"rwatch"/"awatch" after the access, by guest-virtual address) are regvisor extensions
   * (src/backends/soft/riscv/debug.ts has the rules). Not guest state: no register, no snapshot.
   * @throws {KvmError} EINVAL for `control` bits outside ENABLE, SINGLESTEP, USE_SW_BP,
   *   USE_HW_BP, or more than 64 breakpoints.
   */
  setGuestDebug(debug: GuestDebug): void {
    this.check("set guest debug");
    const control: unknown = debug.control;
    if (typeof control !== "number" || !Number.isInteger(control) || control < 0) {
      throw new TypeError("setGuestDebug: control must be a non-negative integer");
    }
    const hw = debug.hwBreakpoints ?? [];
    for (const address of hw) {
      const value: unknown = address;
      if (typeof value !== "bigint") throw new TypeError("setGuestDebug: addresses are bigints");
    }
    const watch = (debug.watchpoints ?? []).map((w): Watchpoint => {
      const { kind, address, length }: { kind: unknown; address: unknown; length: unknown } = w;
      if (kind !== "watch" && kind !== "rwatch" && kind !== "awatch") {
        throw new TypeError('setGuestDebug: a watchpoint kind is "watch", "rwatch" or "awatch"');
      }
      if (typeof address !== "bigint" || typeof length !== "number") {
        throw new TypeError("setGuestDebug: a watchpoint has a bigint address and a number length");
      }
      if (!Number.isInteger(length) || length < 1 || length > 4096) {
        throw new RangeError(`setGuestDebug: a watchpoint length is 1..4096 bytes, got ${length}`);
      }
      return { kind, address: BigInt.asUintN(64, address), length };
    });
    try {
      this.port.setGuestDebug(
        control,
        hw.map((a) => BigInt.asUintN(64, a)),
        watch,
      );
    } catch (error) {
      throw this.kvmError(
        error,
        `Cannot set guest debug of vCPU ${this.index}`,
        "KVM_SET_GUEST_DEBUG",
      );
    }
  }

  /**
   * KVM_GET_MP_STATE: `KVM_MP_STATE.RUNNABLE` or `STOPPED` (SBI HSM started/stopped). A hart
   * start another vCPU posted and this one has not taken yet is applied first, so it reads
   * RUNNABLE and its registers are the started hart's (a0 = hart id, a1 = opaque, pc = start).
   * @throws {KvmError} EBUSY while a start is being posted (another vCPU is running).
   */
  getMpState(): number {
    this.check("get the MP state");
    try {
      return this.port.getMpState();
    } catch (error) {
      throw this.kvmError(
        error,
        `Cannot read the MP state of vCPU ${this.index}`,
        "KVM_GET_MP_STATE",
      );
    }
  }

  /**
   * KVM_SET_MP_STATE: `RUNNABLE` powers the hart on with its registers as they are, `STOPPED`
   * powers it off (arch/riscv/kvm/vcpu.c `kvm_arch_vcpu_ioctl_set_mpstate`).
   * @throws {TypeError} for a non-integer; {KvmError} EINVAL for other `KVM_MP_STATE_*` values.
   */
  setMpState(state: number): void {
    this.check("set the MP state");
    if (!Number.isInteger(state) || state < 0 || state > 0xffff_ffff) {
      throw new TypeError("setMpState: the state must be a u32 KVM_MP_STATE_* value");
    }
    try {
      this.port.setMpState(state);
    } catch (error) {
      throw this.kvmError(
        error,
        `Cannot set the MP state of vCPU ${this.index} to ${state}`,
        "KVM_SET_MP_STATE",
      );
    }
  }

  /** Reason text of the last `internal_error` exit (a soft-backend extension). */
  faultReason(): string {
    return this.runArea.faultReason();
  }

  /** Guest instructions retired so far (as of the last `run()` return; a soft-backend extension). */
  instructionsRetired(): bigint {
    return this.runArea.instret;
  }

  /** Changes how long one `run()` may keep the guest (instructions and/or milliseconds). */
  setRunBudget(budget: RunBudget): void {
    this.check("set the run budget");
    this.port.setBudget(budget);
  }

  /** Pushes a new memslot set to the kernel (called by the VM). */
  updateMemslots(slots: readonly Memslot[]): void {
    if (this.running) throw new VcpuBusyError(this.index, "change the memory slots");
    if (!this.closed) this.port.setMemslots(slots);
  }

  /** True while `runAsync()` is pending. */
  get isRunning(): boolean {
    return this.running;
  }

  close(): void {
    if (this.closed) return;
    if (this.running) {
      // Like closing a vCPU fd whose thread is in KVM_RUN: stop it first, then release.
      this.shared.kick(this.index);
    }
    this.closed = true;
    this.port.close();
    this.onClose();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private check(action: string): void {
    if (this.closed) throw new SoftClosedError(`soft vCPU ${this.index}`, action);
    if (this.running) throw new VcpuBusyError(this.index, action);
  }

  private kvmError(
    error: unknown,
    action: string,
    ioctl: string,
    regId?: RegId,
    hint?: string,
  ): unknown {
    if (!(error instanceof Errno)) return error;
    return new KvmError({
      action,
      ioctl,
      errno: error.errno,
      ...(regId === undefined ? {} : { regId }),
      ...(hint === undefined ? {} : { hint }),
    });
  }

  private batchError(
    error: unknown,
    ids: readonly RegId[],
    action: string,
    ioctl: string,
  ): unknown {
    if (!(error instanceof BatchErrno)) return this.kvmError(error, action, ioctl);
    const regId = ids[error.index];
    return new KvmError({
      action,
      ioctl,
      errno: error.errno,
      index: error.index,
      ...(regId === undefined ? {} : { regId }),
    });
  }
}

function checkIds(ids: readonly RegId[]): readonly RegId[] {
  const list: unknown = ids;
  if (!Array.isArray(list)) throw new TypeError("A register batch must be an array of ids");
  for (const id of ids) {
    if (typeof id !== "bigint") throw new TypeError("A register id must be a bigint");
    regId(id); // RangeError outside 0..2^64-1, before the kernel sees (and masks) it
  }
  return ids;
}
