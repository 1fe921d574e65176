/**
 * The per-vCPU S-mode timer as KVM runs it (arch/riscv/kvm/vcpu_timer.c). Guest time itself is
 * VM-wide (see shared.ts).
 *
 * - Without Sstc (the hrtimer flavour): `next_cycles` (TIMER `compare`) and `next_set` (TIMER
 *   `state`). When the guest time reaches `compare` while armed, the timer disarms and raises
 *   STIP; arming clears STIP (`kvm_riscv_vcpu_update_hrtimer`).
 * - With Sstc (`sstc_enabled`): `next_cycles` lives in the hart's `stimecmp` (KVM syncs it from
 *   `vstimecmp` on every exit, `kvm_riscv_vcpu_timer_sync`, so TIMER `compare` reads and writes
 *   it); SBI set_timer writes it (`kvm_riscv_vcpu_update_vstimecmp`, which leaves `next_set`
 *   alone) and STIP is the comparator's level, which the hart keeps.
 */
import type { HartApi } from "./riscv/contract.js";
import { IRQ } from "./riscv/contract.js";
import { TIMEBASE_HZ } from "./host.js";

const U64_MAX = (1n << 64n) - 1n;
const TICKS_PER_MS = TIMEBASE_HZ / 1000;

/** Timer state of one vCPU. */
export class VcpuTimer {
  /** `next_cycles` without Sstc; `kvm_riscv_vcpu_timer_reset` starts it at -1 (never). */
  private nextCycles = U64_MAX;
  /** The hart whose `stimecmp` holds `next_cycles` while Sstc is on. */
  private sstcHart: HartApi | null = null;
  /** `next_set`: armed. */
  armed = false;

  /** Switches flavour (the vCPU's ISA gained or lost Sstc), carrying `compare` over. */
  useSstc(hart: HartApi | null): void {
    const compare = this.compare;
    this.sstcHart = hart;
    this.compare = compare;
  }

  /** TIMER `compare` (`next_cycles`). */
  get compare(): bigint {
    return this.sstcHart?.getStimecmp?.() ?? this.nextCycles;
  }

  set compare(value: bigint) {
    if (this.sstcHart?.setStimecmp !== undefined) this.sstcHart.setStimecmp(value);
    else this.nextCycles = value;
  }

  /** `kvm_riscv_vcpu_timer_next_event`: program `cycles` (hrtimer: clear STIP and arm). */
  nextEvent(hart: HartApi, cycles: bigint): void {
    if (this.sstcHart !== null) {
      this.compare = BigInt.asUintN(64, cycles);
      return;
    }
    hart.setPending(IRQ.STIP, false);
    this.compare = BigInt.asUintN(64, cycles);
    this.armed = true;
  }

  /** `kvm_riscv_vcpu_timer_cancel`: false (→ EINVAL) when the timer was not armed. */
  cancel(): boolean {
    if (!this.armed) return false;
    this.armed = false;
    return true;
  }

  /** Back to the reset state (`kvm_riscv_vcpu_timer_reset`). */
  reset(): void {
    this.compare = U64_MAX;
    this.armed = false;
  }

  /**
   * Fires the timer if it is armed and due: disarm and raise STIP (Sstc: the level now, the hart
   * reads its own clock). `clock` is read only when needed: every kernel entry polls, and a read
   * costs ~0.1 µs and a bigint (`process.hrtime.bigint`).
   */
  poll(hart: HartApi, clock: { guestTime(): bigint }): void {
    if (this.sstcHart !== null) {
      hart.pollTimer?.();
      return;
    }
    if (this.armed && clock.guestTime() >= this.compare) {
      this.armed = false;
      hart.setPending(IRQ.STIP, true);
    }
  }

  /** Milliseconds until the armed deadline (Infinity when disarmed, 0 when due). */
  msUntilDue(now: bigint): number {
    if (this.sstcHart !== null) {
      // A due comparator has raised STIP already (poll runs first): nothing left to wait for.
      if (now >= this.compare) return Infinity;
    } else if (!this.armed) {
      return Infinity;
    }
    if (now >= this.compare) return 0;
    const ticks = this.compare - now;
    return ticks > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(ticks) / TICKS_PER_MS;
  }
}
