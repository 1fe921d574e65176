/**
 * VM-wide state every vCPU of a soft VM can touch from any thread: the guest time offset
 * (TIMER `time` is VM-wide, vcpu_timer.c `gt->time_delta`), and per vCPU its power state,
 * interrupt lines raised by others (SBI IPI, `KVM_INTERRUPT`), remote-fence and HSM start
 * requests, and a wake counter that a blocked vCPU (WFI, HSM-stopped) waits on.
 *
 * Layout of the SharedArrayBuffer (all little-endian, Atomics on every word):
 *
 * ```
 * 0    i32  vcpu count
 * 8    i64  time delta (guest ticks - host ticks)
 * 64 + 128·n, per vCPU n:
 *   +0  i32 mp state (0 runnable, 1 stopped, 2 start pending)
 *   +4  i32 wake sequence
 *   +8  i32 SEIP level (KVM_INTERRUPT set/unset)
 *   +12 i32 IPI pending (SSIP to raise)
 *   +16 i32 remote fences pending (FENCE bits: what to drop)
 *   +20 i32 start request ready
 *   +24 i64 start pc
 *   +32 i64 start opaque (a1)
 *   +40 i32 kick pending (Vcpu.kick: the run in progress, or the next one, returns intr)
 *   +44 i32 in KVM_RUN (1 while the vCPU's kernel is inside run())
 *   +48 i32 write-TLB flush requested (a count; dirty-log reads bump it)
 *   +52 i32 write-TLB flush acknowledged (the last request count the hart honoured)
 *   +56 i32 code-invalidation ring head (consumer: the vCPU)
 *   +60 i32 code-invalidation ring tail (producer: the VMM thread)
 *   +64 i32 remote fence requested (a count)
 *   +68 i32 remote fence acknowledged (the last request count the vCPU honoured)
 * 64 + 128·MAX_VCPUS + 256·n, per vCPU n: 64 × i32 guest-physical page numbers whose translated
 *   code the vCPU must drop (Vm.markDirty); more than 64 unconsumed means "drop all".
 * ```
 *
 * Every request that needs the vCPU's attention bumps its wake sequence: a hart running guest
 * code watches that word at block boundaries (HartApi.watch), so the request lands within one
 * block, and a vCPU blocked in WFI wakes.
 */

/** Most vCPUs one soft VM holds (KVM_CAP_MAX_VCPUS of the soft backend). */
export const MAX_VCPUS = 64;

const SLOT_BASE = 64;
const SLOT_BYTES = 128;
const RING_BASE = SLOT_BASE + SLOT_BYTES * MAX_VCPUS;
/** Code invalidations queued per vCPU before it falls back to dropping all translated code. */
export const INVALIDATE_RING = 64;
/** Page numbers in the ring are i32: guest-physical addresses below 2^43 fit. */
const MAX_RING_PAGE = 0x7fffffff;

/** Power state of a vCPU (KVM_MP_STATE_RUNNABLE / STOPPED, plus an HSM start in flight). */
export const MP = { RUNNABLE: 0, STOPPED: 1, START_PENDING: 2 } as const;

const W = {
  MP: 0,
  WAKE: 1,
  SEIP: 2,
  IPI: 3,
  FLUSH: 4,
  START: 5,
  KICK: 10,
  IN_RUN: 11,
  WTLB_REQ: 12,
  WTLB_ACK: 13,
  RING_HEAD: 14,
  RING_TAIL: 15,
  FENCE_REQ: 16,
  FENCE_ACK: 17,
} as const;

/**
 * What a remote fence asks a vCPU to drop (SBI RFENCE): CODE for remote fence.i (translated code
 * whose bytes changed), MAP for remote sfence.vma in any form (cached address translations).
 */
export const FENCE = { CODE: 1, MAP: 2 } as const;

/** A remote-fence request taken by its vCPU: what to drop, and the request count to acknowledge. */
export interface FenceRequest {
  readonly kinds: number;
  readonly req: number;
}

/** Ticks of the host timebase (10 MHz) since an arbitrary point: CLOCK_MONOTONIC / 100 ns. */
export function hostTicks(): bigint {
  return process.hrtime.bigint() / 100n;
}

/** A pending HSM `hart_start` (or SUSP resume) for one vCPU. */
export interface StartRequest {
  readonly pc: bigint;
  readonly opaque: bigint;
}

/** What `takeCodeInvalidations` returns when nothing was invalidated (every entry asks). */
const NO_PAGES: readonly number[] = [];

/** View of a soft VM's shared state; cheap to construct on either side of a worker boundary. */
export class VmShared {
  readonly buffer: SharedArrayBuffer;
  private readonly i32: Int32Array;
  private readonly i64: BigInt64Array;

  constructor(buffer?: SharedArrayBuffer) {
    const fresh = buffer === undefined;
    this.buffer = buffer ?? new SharedArrayBuffer(RING_BASE + 4 * INVALIDATE_RING * MAX_VCPUS);
    this.i32 = new Int32Array(this.buffer);
    this.i64 = new BigInt64Array(this.buffer);
    // vcpu_timer.c kvm_riscv_guest_timer_init: time_delta = -host cycles, so guest time
    // starts at 0 when the VM is created.
    if (fresh) Atomics.store(this.i64, 1, BigInt.asIntN(64, -hostTicks()));
  }

  /** Number of vCPUs created so far. */
  get vcpuCount(): number {
    return Atomics.load(this.i32, 0);
  }

  /**
   * Reserves the next vCPU slot: vCPU 0 starts runnable, every other one stopped
   * (kvm_arch_vcpu_postcreate powers off all but vCPU 0).
   * @throws {RangeError} when the VM already has `MAX_VCPUS` vCPUs.
   */
  addVcpu(): number {
    const index = Atomics.load(this.i32, 0);
    if (index >= MAX_VCPUS) throw new RangeError(`A soft VM holds at most ${MAX_VCPUS} vCPUs`);
    Atomics.store(this.i32, this.word(index, W.MP), index === 0 ? MP.RUNNABLE : MP.STOPPED);
    Atomics.store(this.i32, 0, index + 1);
    return index;
  }

  /** Guest time in timebase ticks (u64). */
  guestTime(): bigint {
    return BigInt.asUintN(64, hostTicks() + Atomics.load(this.i64, 1));
  }

  /** Sets the VM-wide delta so that the guest time reads `value` now (TIMER `time` SET). */
  setGuestTime(value: bigint): void {
    Atomics.store(this.i64, 1, BigInt.asIntN(64, value - hostTicks()));
  }

  /** Raw delta, for rollback of a failed batch. */
  get timeDelta(): bigint {
    return Atomics.load(this.i64, 1);
  }

  set timeDelta(delta: bigint) {
    Atomics.store(this.i64, 1, delta);
  }

  /** Power state of vCPU `n` (`MP.*`). */
  mpState(n: number): number {
    return Atomics.load(this.i32, this.word(n, W.MP));
  }

  /** Sets the power state of vCPU `n` and wakes it. */
  setMpState(n: number, state: number): void {
    Atomics.store(this.i32, this.word(n, W.MP), state);
    this.wake(n);
  }

  /** Asks vCPU `n` to raise SSIP (SBI IPI) the next time it looks. */
  raiseIpi(n: number): void {
    Atomics.store(this.i32, this.word(n, W.IPI), 1);
    this.wake(n);
  }

  /** True (once) when an IPI is waiting for vCPU `n`. */
  takeIpi(n: number): boolean {
    return Atomics.exchange(this.i32, this.word(n, W.IPI), 0) !== 0;
  }

  /** Sets the external interrupt line (SEIP) of vCPU `n` (KVM_INTERRUPT SET/UNSET). */
  setSeip(n: number, level: boolean): void {
    Atomics.store(this.i32, this.word(n, W.SEIP), level ? 1 : 0);
    this.wake(n);
  }

  /** Current SEIP line level of vCPU `n`. */
  seip(n: number): boolean {
    return Atomics.load(this.i32, this.word(n, W.SEIP)) !== 0;
  }

  /**
   * Asks vCPU `n` to drop what `kinds` (FENCE bits) names (SBI RFENCE on a remote hart) and
   * returns the request number to pass to `awaitFence`.
   */
  requestFence(n: number, kinds: number): number {
    Atomics.or(this.i32, this.word(n, W.FLUSH), kinds);
    // As the i32 word holds it (wraps at 2^31; awaitFence compares modulo 2^32).
    const req = (Atomics.add(this.i32, this.word(n, W.FENCE_REQ), 1) + 1) | 0;
    this.wake(n);
    return req;
  }

  /**
   * The remote fences waiting for vCPU `n` (undefined: none); the caller drops what they name,
   * then calls `ackFence` with the request number.
   */
  takeFence(n: number): FenceRequest | undefined {
    // The count first: a request counted here has set its kinds already (requestFence's order).
    const req = Atomics.load(this.i32, this.word(n, W.FENCE_REQ));
    if (Atomics.load(this.i32, this.word(n, W.FENCE_ACK)) === req) return undefined;
    return { kinds: Atomics.exchange(this.i32, this.word(n, W.FLUSH), 0), req };
  }

  /** vCPU `n` has honoured every remote fence up to request `req`: its requesters resume. */
  ackFence(n: number, req: number): void {
    const ack = this.word(n, W.FENCE_ACK);
    Atomics.store(this.i32, ack, req);
    Atomics.notify(this.i32, ack);
  }

  /**
   * Blocks until vCPU `n` honoured remote-fence request `req`, or is outside KVM_RUN (it then
   * honours it before it runs guest code again: its kernel polls right after entering), as
   * KVM's KVM_REQ_FENCE_I / KVM_REQ_HFENCE* carry KVM_REQUEST_WAIT (arch/riscv/kvm/tlb.c
   * `make_xfence_request`). `serve` runs while waiting: the waiting vCPU honours fences asked of
   * itself, so two vCPUs fencing each other at once cannot wait for each other forever.
   */
  awaitFence(n: number, req: number, serve: () => void): void {
    const ack = this.word(n, W.FENCE_ACK);
    for (;;) {
      const seen = Atomics.load(this.i32, ack);
      if (((seen - req) | 0) >= 0 || Atomics.load(this.i32, this.word(n, W.IN_RUN)) === 0) return;
      serve();
      Atomics.wait(this.i32, ack, seen, 1);
    }
  }

  /** HSM hart_start: claims a stopped vCPU `n` and posts its start state; false if not stopped. */
  requestStart(n: number, pc: bigint, opaque: bigint): boolean {
    const mp = this.word(n, W.MP);
    if (Atomics.compareExchange(this.i32, mp, MP.STOPPED, MP.START_PENDING) !== MP.STOPPED) {
      return false;
    }
    const base = (SLOT_BASE + SLOT_BYTES * n) / 8;
    Atomics.store(this.i64, base + 3, BigInt.asIntN(64, pc));
    Atomics.store(this.i64, base + 4, BigInt.asIntN(64, opaque));
    Atomics.store(this.i32, this.word(n, W.START), 1);
    this.wake(n);
    return true;
  }

  /** The start request for vCPU `n`, once; marks it runnable. */
  takeStart(n: number): StartRequest | undefined {
    if (Atomics.exchange(this.i32, this.word(n, W.START), 0) === 0) return undefined;
    const base = (SLOT_BASE + SLOT_BYTES * n) / 8;
    const pc = BigInt.asUintN(64, Atomics.load(this.i64, base + 3));
    const opaque = BigInt.asUintN(64, Atomics.load(this.i64, base + 4));
    Atomics.store(this.i32, this.word(n, W.MP), MP.RUNNABLE);
    return { pc, opaque };
  }

  /** Kick (Vcpu.kick): vCPU `n` leaves its run with `intr`, or its next run returns at once. */
  kick(n: number): void {
    Atomics.store(this.i32, this.word(n, W.KICK), 1);
    this.wake(n);
  }

  /** True (once) when vCPU `n` was kicked. */
  takeKick(n: number): boolean {
    return Atomics.exchange(this.i32, this.word(n, W.KICK), 0) !== 0;
  }

  /** vCPU `n`'s kernel enters (true) or leaves (false) KVM_RUN. */
  setInRun(n: number, inRun: boolean): void {
    Atomics.store(this.i32, this.word(n, W.IN_RUN), inRun ? 1 : 0);
    if (inRun) return;
    // Only a request not yet acknowledged can have a waiter (an Atomics.notify is a lock and a
    // list walk; this runs on every exit): a waiter bumps the request count before it reads
    // IN_RUN, so if it read 1 the count read below, after the store of 0, includes its request
    // (sequentially consistent Atomics); an acknowledgement notifies by itself.
    const i32 = this.i32;
    const wtlb = Atomics.load(i32, this.word(n, W.WTLB_REQ));
    if (wtlb !== Atomics.load(i32, this.word(n, W.WTLB_ACK))) {
      Atomics.notify(i32, this.word(n, W.WTLB_ACK));
    }
    const fence = Atomics.load(i32, this.word(n, W.FENCE_REQ));
    if (fence !== Atomics.load(i32, this.word(n, W.FENCE_ACK))) {
      Atomics.notify(i32, this.word(n, W.FENCE_ACK));
    }
  }

  /**
   * Asks vCPU `n` to drop its write-TLB entries (so that its next store to each page marks the
   * page dirty again) and returns the request number to pass to `awaitWriteTlbFlush`.
   */
  requestWriteTlbFlush(n: number): number {
    const req = Atomics.add(this.i32, this.word(n, W.WTLB_REQ), 1) + 1;
    this.wake(n);
    return req;
  }

  /** True when vCPU `n` has a write-TLB flush to do; records it as done (the caller does it). */
  takeWriteTlbFlush(n: number): boolean {
    const req = Atomics.load(this.i32, this.word(n, W.WTLB_REQ));
    const ack = this.word(n, W.WTLB_ACK);
    if (Atomics.load(this.i32, ack) === req) return false;
    Atomics.store(this.i32, ack, req);
    Atomics.notify(this.i32, ack);
    return true;
  }

  /**
   * Blocks until vCPU `n` honoured write-TLB flush request `req`, or is outside KVM_RUN (it
   * then honours it before it runs guest code again: its kernel polls right after entering).
   * A running hart looks at every block boundary, so this waits about one block.
   */
  awaitWriteTlbFlush(n: number, req: number): void {
    const ack = this.word(n, W.WTLB_ACK);
    for (;;) {
      const seen = Atomics.load(this.i32, ack);
      if (seen - req >= 0 || Atomics.load(this.i32, this.word(n, W.IN_RUN)) === 0) return;
      Atomics.wait(this.i32, ack, seen, 10);
    }
  }

  /**
   * Queues "drop the translated code of guest-physical page `page`" for vCPU `n` (VMM thread);
   * a negative page means "all of it".
   */
  queueCodeInvalidation(n: number, page: number): void {
    const tail = Atomics.load(this.i32, this.word(n, W.RING_TAIL));
    const entry = page >= 0 && page <= MAX_RING_PAGE ? page : -1;
    Atomics.store(
      this.i32,
      RING_BASE / 4 + INVALIDATE_RING * n + (tail & (INVALIDATE_RING - 1)),
      entry,
    );
    Atomics.store(this.i32, this.word(n, W.RING_TAIL), (tail + 1) | 0);
  }

  /**
   * The pages queued for vCPU `n` since it last looked, or "all" when the ring overflowed or a
   * page did not fit in it (the vCPU then drops all of its translated code).
   */
  takeCodeInvalidations(n: number): readonly number[] | "all" {
    const headAt = this.word(n, W.RING_HEAD);
    const tailAt = this.word(n, W.RING_TAIL);
    const head = Atomics.load(this.i32, headAt);
    const tail = Atomics.load(this.i32, tailAt);
    if (tail === head) return NO_PAGES;
    const pages: number[] = [];
    let all = ((tail - head) | 0) > INVALIDATE_RING;
    for (let i = head; !all && i !== tail; i = (i + 1) | 0) {
      const page = Atomics.load(
        this.i32,
        RING_BASE / 4 + INVALIDATE_RING * n + (i & (INVALIDATE_RING - 1)),
      );
      if (page < 0) all = true;
      pages.push(page);
    }
    // The producer may have lapped the entries read meanwhile: then some were overwritten.
    if (((Atomics.load(this.i32, tailAt) - head) | 0) > INVALIDATE_RING) all = true;
    Atomics.store(this.i32, headAt, tail);
    return all ? "all" : pages;
  }

  /** The word a running hart of vCPU `n` watches (`array[index]` is its wake sequence). */
  wakeWord(n: number): { readonly array: Int32Array; readonly index: number } {
    return { array: this.i32, index: this.word(n, W.WAKE) };
  }

  /** Current wake sequence of vCPU `n`, to pass to `wait`. */
  wakeSeq(n: number): number {
    return Atomics.load(this.i32, this.word(n, W.WAKE));
  }

  /** Wakes vCPU `n` if it is blocked in `wait`. */
  wake(n: number): void {
    const at = this.word(n, W.WAKE);
    Atomics.add(this.i32, at, 1);
    Atomics.notify(this.i32, at);
  }

  /** Blocks until vCPU `n` is woken after `seq` was read, or `timeoutMs` passes. */
  wait(n: number, seq: number, timeoutMs: number): void {
    Atomics.wait(this.i32, this.word(n, W.WAKE), seq, Math.max(0, timeoutMs));
  }

  private word(n: number, w: number): number {
    return (SLOT_BASE + SLOT_BYTES * n) / 4 + w;
  }
}
