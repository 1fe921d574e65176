/**
 * `VcpuKernel`: the soft backend's stand-in for Linux's per-vCPU KVM code — it owns one hart
 * and answers the vCPU "ioctls" (ONE_REG, REG_LIST, MANY_REGS, KVM_RUN). It runs on whichever
 * thread owns the vCPU: the caller's (inline mode) or a Worker (threaded mode). It speaks errno
 * (`Errno`); the facades (vcpu.ts, threaded.ts) turn that into `KvmError`s.
 *
 * KVM_RUN follows arch/riscv/kvm/vcpu.c `kvm_arch_vcpu_ioctl_run`: latch "ran at least once"
 * (even when `immediate_exit` is set), apply dirty sync groups (regvisor extension, x86 order),
 * complete the pending MMIO load/store or SBI return (each exactly once), return EINTR if
 * `immediate_exit`, otherwise run the hart until something needs the VMM.
 *
 * Blocking: WFI with nothing pending, an HSM-stopped vCPU (secondary harts before hart_start,
 * after hart_stop or SRST) and HSM retentive suspend wait with `Atomics.wait` on the vCPU's wake
 * word, woken by IPIs, KVM_INTERRUPT, hart_start, or the timer deadline — never spinning. KVM
 * would block until a signal; the soft kernel instead returns `intr` (KVM_EXIT_INTR) when the
 * run's time slice ends, so the VMM always gets control back. The same slice, and an optional
 * instruction budget, bound a guest that never exits.
 *
 * Requests from other threads (kick, KVM_INTERRUPT, IPIs, HSM start, fences, dirty-log write-TLB
 * flushes, code invalidations) bump the vCPU's wake word in ./shared.ts; the hart watches it
 * while running guest code, so they are polled within a few thousand instructions; a kick ends
 * the run with KVM_EXIT_INTR like a signal would.
 */
import {
  KVM_EXIT,
  KVM_GUESTDBG,
  KVM_INTERNAL_ERROR,
  KVM_MP_STATE,
} from "../../abi/kvm/constants.js";
import { ERRNO } from "../../abi/kvm/errno.js";
import type { RegId } from "../../abi/regid.js";
import type { DebugCause, HartApi, Memslot, Watchpoint } from "./riscv/contract.js";
import { GENERAL_CSRS, IRQ } from "./riscv/contract.js";
import {
  HOST_IMPL_IDS,
  HOST_ISA_EXTS,
  ISA_EXT_MAX,
  TIMEBASE_HZ,
  isaExtId,
  sbiDefaults,
} from "./host.js";
import type { ImplIds, KernelState } from "./kstate.js";
import { Errno } from "./kstate.js";
import { regList } from "./reglist.js";
import { getReg, setReg, splitId, type IdParts } from "./regs.js";
import { getMany, setMany } from "./regs-many.js";
import { KVM_SYNC_RISCV, type RunArea } from "./runarea.js";
import { handleEcall, takeRemoteFences } from "./sbi.js";
import { MP, type VmShared } from "./shared.js";
import { VcpuTimer } from "./timer.js";
import type { KernelPort } from "./vcpu.js";

/** How long one `run()` may keep the guest before returning `intr`. */
export interface RunBudget {
  /** Guest instructions per `run()` (default: unlimited). */
  readonly instructions?: number;
  /** Wall-clock milliseconds per `run()`, including time blocked in WFI (default 100). */
  readonly timeSliceMs?: number;
}

/** Default time slice of one `run()`. */
export const DEFAULT_TIME_SLICE_MS = 100;
/** Instructions per `hart.run()` call between checks of interrupts, timer and the slice. */
const CHUNK = 1 << 16;
const CORE = KVM_SYNC_RISCV.CORE;
const SSTC_ID = isaExtId("sstc");
const CSR = KVM_SYNC_RISCV.CSR;

/** The `KVM_GUESTDBG_*` bits the soft backend implements (the rest are EINVAL). */
const GUESTDBG_SUPPORTED =
  KVM_GUESTDBG.ENABLE | KVM_GUESTDBG.SINGLESTEP | KVM_GUESTDBG.USE_SW_BP | KVM_GUESTDBG.USE_HW_BP;
/** Most `hwBreakpoints` one vCPU takes (a bound for the mailbox; GDB sets a handful). */
export const MAX_HW_BREAKPOINTS = 64;

/** What a kernel needs to come up. */
export interface KernelInit {
  readonly hart: HartApi;
  readonly hartId: number;
  readonly shared: VmShared;
  readonly page: RunArea;
  readonly memslots: readonly Memslot[];
  readonly budget?: RunBudget;
}

/** One vCPU's kernel side. */
export class VcpuKernel implements KernelState, KernelPort {
  readonly hart: HartApi;
  readonly hartId: number;
  readonly shared: VmShared;
  readonly page: RunArea;
  readonly timer = new VcpuTimer();
  readonly ids: ImplIds = { ...HOST_IMPL_IDS };
  readonly isa = new Uint8Array(ISA_EXT_MAX);
  readonly sbi = sbiDefaults();
  ranOnce = false;
  memslots: readonly Memslot[];
  private budget: Required<RunBudget>;
  private mmioPending = false;
  private sbiPending = false;
  private wfiRequested = false;
  private resetRequest: { pc: bigint; opaque: bigint } | undefined;
  /** `KVM_SET_GUEST_DEBUG` control bits in force (0: off). */
  private debugControl = 0;
  /** A single step was cut short by an MMIO or SBI exit: it ends when that exit completes. */
  private stepOwed = false;
  private seip = false;
  private readonly resetCsrs: bigint[];

  constructor(init: KernelInit) {
    this.hart = init.hart;
    this.hartId = init.hartId;
    this.shared = init.shared;
    this.page = init.page;
    this.memslots = init.memslots;
    this.budget = resolveBudget(init.budget);
    for (const name of HOST_ISA_EXTS) this.isa[isaExtId(name)] = 1;
    // A hart without Sstc support leaves the extension off (listed, reading 0).
    if (this.hart.setSstc === undefined) this.isa[SSTC_ID] = 0;
    this.hart.setTimeSource(() => this.shared.guestTime(), TIMEBASE_HZ);
    const wake = this.shared.wakeWord(this.hartId);
    this.hart.watch?.(wake.array, wake.index);
    this.hart.setMemslots(init.memslots);
    this.isaChanged();
    this.resetCsrs = GENERAL_CSRS.map((name) => this.hart.getCsr(name));
  }

  /** KVM_GET_REG_LIST. */
  regList(): RegId[] {
    return regList(this);
  }

  /** KVM_GET_ONE_REG. @throws {Errno} */
  getOne(id: RegId): bigint {
    this.flushLines();
    return getReg(this, id);
  }

  /** KVM_SET_ONE_REG. @throws {Errno} */
  setOne(id: RegId, value: bigint): void {
    setReg(this, id, value);
  }

  /** MANY_REGS get into `out` (packed). @throws {BatchErrno} */
  getMany(ids: readonly RegId[], out: Uint8Array): void {
    this.flushLines();
    getMany(this, ids.map(splitId), out);
  }

  /** MANY_REGS set, all-or-nothing. @throws {BatchErrno} */
  setMany(ids: readonly RegId[], bytes: Uint8Array): void {
    setMany(this, ids.map(splitId), bytes);
  }

  /** `getMany` for ids already split (the worker reads them from the mailbox bytes). */
  getManyParts(ids: readonly IdParts[], out: Uint8Array): void {
    this.flushLines();
    getMany(this, ids, out);
  }

  /** `setMany` for ids already split. */
  setManyParts(ids: readonly IdParts[], bytes: Uint8Array): void {
    setMany(this, ids, bytes);
  }

  /** KVM_SET_USER_MEMORY_REGION reached this vCPU: the new slot set. */
  setMemslots(slots: readonly Memslot[]): void {
    this.memslots = slots;
    this.hart.setMemslots(slots);
  }

  /**
   * KVM_SET_GUEST_DEBUG. Like RISC-V KVM (arch/riscv/kvm/vcpu.c
   * `kvm_arch_vcpu_ioctl_set_guest_debug`), ENABLE alone already intercepts `ebreak`; SINGLESTEP
   * and USE_HW_BP with `hwBreakpoints` (guest-virtual pcs) are regvisor extensions. Without
   * ENABLE, guest debug is off.
   * @throws {Errno} EINVAL for bits outside the supported set or too many breakpoints.
   */
  setGuestDebug(
    control: number,
    hwBreakpoints: readonly bigint[],
    watchpoints: readonly Watchpoint[] = [],
  ): void {
    if (
      (control & ~GUESTDBG_SUPPORTED) !== 0 ||
      hwBreakpoints.length > MAX_HW_BREAKPOINTS ||
      watchpoints.length > MAX_HW_BREAKPOINTS
    ) {
      throw new Errno(ERRNO.EINVAL);
    }
    const on = (control & KVM_GUESTDBG.ENABLE) !== 0;
    if (on && this.hart.setDebug === undefined) throw new Errno(ERRNO.EINVAL);
    this.debugControl = on ? control : 0;
    if (!on) this.stepOwed = false;
    this.hart.setDebug?.(
      on
        ? {
            swBreak: true,
            step: (control & KVM_GUESTDBG.SINGLESTEP) !== 0,
            hwBreakpoints: (control & KVM_GUESTDBG.USE_HW_BP) !== 0 ? hwBreakpoints : [],
            watchpoints: (control & KVM_GUESTDBG.USE_HW_BP) !== 0 ? watchpoints : [],
          }
        : undefined,
    );
  }

  /**
   * KVM_GET_MP_STATE (arch/riscv/kvm/vcpu.c `kvm_arch_vcpu_ioctl_get_mpstate`): RUNNABLE or
   * STOPPED. An HSM hart_start another hart posted but this vCPU has not taken yet is applied
   * first (the reset its next entry would do), so the registers read next are the started
   * hart's: KVM likewise marks the target runnable at once and resets it on its next entry.
   * @throws {Errno} EBUSY when a start is being posted right now (a hart is running).
   */
  getMpState(): number {
    this.takePendingStart();
    const mp = this.shared.mpState(this.hartId);
    if (mp === MP.RUNNABLE) return KVM_MP_STATE.RUNNABLE;
    if (mp === MP.STOPPED) return KVM_MP_STATE.STOPPED;
    throw new Errno(ERRNO.EBUSY);
  }

  /**
   * KVM_SET_MP_STATE: RUNNABLE powers the vCPU on as it is (its registers unchanged), STOPPED
   * powers it off (`kvm_riscv_vcpu_power_off`); a pending start is applied first.
   * @throws {Errno} EINVAL for any other `KVM_MP_STATE_*`, EBUSY as `getMpState`.
   */
  setMpState(state: number): void {
    if (state !== KVM_MP_STATE.RUNNABLE && state !== KVM_MP_STATE.STOPPED) {
      throw new Errno(ERRNO.EINVAL);
    }
    this.takePendingStart();
    if (this.shared.mpState(this.hartId) === MP.START_PENDING) throw new Errno(ERRNO.EBUSY);
    this.shared.setMpState(this.hartId, state === KVM_MP_STATE.RUNNABLE ? MP.RUNNABLE : MP.STOPPED);
    this.wfiRequested = false;
  }

  /** Applies an HSM start posted for this vCPU (as `poll()` does on entry). */
  private takePendingStart(): void {
    const start = this.shared.takeStart(this.hartId);
    if (start !== undefined) this.resetTo(start.pc, start.opaque);
  }

  private get stepping(): boolean {
    return (this.debugControl & KVM_GUESTDBG.SINGLESTEP) !== 0;
  }

  /** Writes KVM_EXIT_DEBUG for the hart's current pc. */
  private debugExit(cause: DebugCause, watchAddress?: bigint): number {
    this.page.writeDebug(this.hart.getPc(), cause, watchAddress);
    return 0;
  }

  /** Changes the run budget (a soft-backend knob; no KVM equivalent). */
  setBudget(budget: RunBudget): void {
    this.budget = resolveBudget(budget);
  }

  /** Nothing to release: the hart and its memory belong to the caller. */
  close(): void {
    this.setMemslots([]);
  }

  isaChanged(): void {
    this.hart.setFpExtensions(this.isa[isaExtId("f")] === 1, this.isa[isaExtId("d")] === 1);
    // vcpu_timer.c picks the timer flavour from the vCPU's ISA (`sstc_enabled`).
    const sstc = this.isa[SSTC_ID] === 1;
    this.hart.setSstc?.(sstc);
    this.timer.useSstc(sstc ? this.hart : null);
  }

  sbiForwarded(): void {
    this.sbiPending = true;
  }

  requestWfi(): void {
    this.wfiRequested = true;
  }

  requestReset(pc: bigint, opaque: bigint): void {
    this.resetRequest = { pc, opaque };
  }

  /**
   * KVM_RUN. Returns 0 when an exit was written to the run page, EINTR for `intr`.
   * @throws {Errno} EINVAL for an unknown sync-register bit.
   */
  run(): number {
    this.ranOnce = true;
    // Before the first poll: a dirty-log reader that sees "not in run" relies on this vCPU
    // honouring its write-TLB flush request before running guest code (shared.ts).
    this.shared.setInRun(this.hartId, true);
    try {
      if (this.page.syncMaskInvalid()) throw new Errno(ERRNO.EINVAL);
      this.applyDirty(this.page.dirtyGroups());
      this.completePending();
      if (this.page.immediateExit !== 0) return ERRNO.EINTR;
      return this.enter();
    } finally {
      this.shared.setInRun(this.hartId, false);
      this.storeSync();
      this.page.setInstret(this.hart.instret);
    }
  }

  private applyDirty(dirty: number): void {
    if (dirty === 0) return;
    const { page, hart } = this;
    if ((dirty & CORE) !== 0) {
      hart.setPc(page.syncCore(0));
      for (let i = 1; i <= 31; i++) hart.setX(i, page.syncCore(i));
      hart.setMode(page.syncCore(32) === 1n ? 1 : 0);
      page.dirtyRegs &= ~BigInt(CORE);
    }
    if ((dirty & CSR) !== 0) {
      GENERAL_CSRS.forEach((name, i) => {
        const value = page.syncCsr(i);
        hart.setCsr(name, name === "sip" ? value & 0x222n : value);
      });
      page.dirtyRegs &= ~BigInt(CSR);
    }
  }

  private storeSync(): void {
    const { page, hart } = this;
    const valid = page.validGroups();
    if (valid === 0) return;
    if ((valid & CORE) !== 0) {
      page.setSyncCore(0, hart.getPc());
      for (let i = 1; i <= 31; i++) page.setSyncCore(i, hart.getX(i));
      page.setSyncCore(32, BigInt(hart.getMode()));
    }
    if ((valid & CSR) !== 0) {
      GENERAL_CSRS.forEach((name, i) => {
        const value = hart.getCsr(name);
        page.setSyncCsr(i, name === "sip" ? value & 0x222n : value);
      });
    }
  }

  /** `kvm_riscv_vcpu_mmio_return` / `kvm_riscv_vcpu_sbi_return`, each at most once per exit. */
  private completePending(): void {
    const reason = this.page.exitReason;
    if (reason === KVM_EXIT.MMIO && this.mmioPending) {
      this.mmioPending = false;
      if (this.page.mmioIsWrite()) this.hart.completeMmioStore();
      else this.hart.completeMmioLoad(this.page.mmioLoadValue());
    } else if (reason === KVM_EXIT.RISCV_SBI && this.sbiPending) {
      this.sbiPending = false;
      this.hart.setX(10, this.page.sbiRet(0));
      this.hart.setX(11, this.page.sbiRet(1));
      this.hart.setPc(BigInt.asUintN(64, this.hart.getPc() + 4n));
    }
  }

  private enter(): number {
    const deadline = performance.now() + this.budget.timeSliceMs;
    let remaining = this.budget.instructions;
    const counting = remaining !== Infinity;
    // The clock was just read: the first slice check would cost a read and never fire.
    let checkClock = false;
    if (this.resetRequest !== undefined) {
      this.resetTo(this.resetRequest.pc, this.resetRequest.opaque);
      this.resetRequest = undefined;
    }
    if (this.stepOwed) {
      // The stepped instruction's MMIO/SBI exit completed on this entry: the step is done.
      this.stepOwed = false;
      if (this.stepping) return this.debugExit("step");
    }
    for (;;) {
      // Read before polling: a request posted after this read makes the hart stop at once.
      const seq = this.shared.wakeSeq(this.hartId);
      if (this.poll()) return this.intr();
      const stopped = this.shared.mpState(this.hartId) !== MP.RUNNABLE;
      if (this.wfiRequested && !stopped && this.hart.interruptPending()) this.wfiRequested = false;
      if (stopped || this.wfiRequested) {
        if (!this.block(deadline)) return this.intr();
        continue;
      }
      if (remaining <= 0 || (checkClock && performance.now() >= deadline)) return this.intr();
      checkClock = true;
      // `instret` is a bigint made per read: only an instruction budget needs the count.
      const before = counting ? this.hart.instret : 0n;
      const stop = this.hart.run(Math.min(CHUNK, remaining), seq);
      if (counting) remaining -= Number(this.hart.instret - before);
      switch (stop.kind) {
        case "ecall":
          if (handleEcall(this) === "exit") {
            this.stepOwed = this.stepping;
            return 0;
          }
          if (this.stepping) return this.debugExit("step");
          break;
        case "mmio":
          this.page.writeMmio(stop.gpa, stop.size, stop.isWrite, stop.value);
          this.mmioPending = true;
          this.stepOwed = this.stepping;
          return 0;
        case "wfi":
          // A stepped WFI completes at once (a spurious wake-up, which WFI allows).
          if (this.stepping) return this.debugExit("step");
          this.wfiRequested = true;
          break;
        case "debug":
          return this.debugExit(stop.cause, stop.address);
        case "budget":
          break;
        case "fault":
          this.page.writeInternalError(KVM_INTERNAL_ERROR.EMULATION, [stop.pc], stop.reason);
          return 0;
      }
    }
  }

  /**
   * Moves the interrupt lines other threads set (SBI IPI, KVM_INTERRUPT) into the hart's sip,
   * as `kvm_riscv_vcpu_flush_interrupts` does on entry and before a CSR read (vcpu_onereg.c),
   * so a register read sees the level set by the last KVM_INTERRUPT.
   */
  private flushLines(): void {
    const { shared, hart, hartId } = this;
    if (shared.takeIpi(hartId)) hart.setPending(IRQ.SSIP, true);
    const seip = shared.seip(hartId);
    if (seip !== this.seip) {
      this.seip = seip;
      hart.setPending(IRQ.SEIP, seip);
    }
  }

  /**
   * Picks up what other threads asked of this vCPU, and fires the timer when due; true when
   * the vCPU was kicked (the run returns `intr`).
   */
  private poll(): boolean {
    const { shared, hart, hartId } = this;
    this.flushLines();
    if (shared.takeWriteTlbFlush(hartId)) {
      if (hart.flushWriteTlb === undefined) hart.flushCaches();
      else hart.flushWriteTlb();
    }
    this.dropInvalidatedCode();
    takeRemoteFences(this);
    const start = shared.takeStart(hartId);
    if (start !== undefined) this.resetTo(start.pc, start.opaque);
    this.timer.poll(hart, shared);
    return shared.takeKick(hartId);
  }

  /** Drops the translated code of the pages the VMM wrote (`Vm.markDirty`). */
  private dropInvalidatedCode(): void {
    const pages = this.shared.takeCodeInvalidations(this.hartId);
    if (pages === "all" || (pages.length > 0 && this.hart.invalidateCode === undefined)) {
      this.hart.flushCaches();
      return;
    }
    for (const page of pages) this.hart.invalidateCode?.(page * 4096);
  }

  /** Waits for a wake-up or the timer, at most until `deadline`; false once it has passed. */
  private block(deadline: number): boolean {
    const seq = this.shared.wakeSeq(this.hartId);
    const now = performance.now();
    if (now >= deadline) return false;
    const timerMs = this.timer.msUntilDue(this.shared.guestTime());
    if (timerMs === 0) return true;
    this.shared.wait(this.hartId, seq, Math.min(deadline - now, timerMs));
    return true;
  }

  /**
   * Leaves KVM_RUN with KVM_EXIT_INTR. Like a signal during `kvm_vcpu_halt`, this ends a WFI:
   * the next run resumes after it (a spurious wake-up, which WFI allows).
   */
  private intr(): number {
    this.wfiRequested = false;
    this.page.writeIntr();
    return ERRNO.EINTR;
  }

  /** `kvm_riscv_reset_vcpu` with a start address: HSM hart_start and SUSP resume. */
  private resetTo(pc: bigint, opaque: bigint): void {
    const { hart } = this;
    for (let i = 1; i <= 31; i++) hart.setX(i, 0n);
    for (let i = 0; i < 32; i++) hart.setF(i, 0n);
    hart.setFcsr(0);
    GENERAL_CSRS.forEach((name, i) => {
      hart.setCsr(name, this.resetCsrs[i] ?? 0n);
    });
    hart.setPending(IRQ.SSIP | IRQ.STIP, false);
    this.timer.reset();
    this.isaChanged();
    hart.setX(10, BigInt(this.hartId));
    hart.setX(11, opaque);
    hart.setMode(1);
    hart.setPc(pc);
    this.wfiRequested = false;
  }
}

function resolveBudget(budget: RunBudget | undefined): Required<RunBudget> {
  const instructions = budget?.instructions ?? Infinity;
  const timeSliceMs = budget?.timeSliceMs ?? DEFAULT_TIME_SLICE_MS;
  if (!(instructions > 0) || !(timeSliceMs > 0)) {
    throw new RangeError("A run budget needs positive instruction and time limits");
  }
  return { instructions, timeSliceMs };
}
