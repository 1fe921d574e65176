/**
 * The per-vCPU S-mode timer, as KVM runs it on a host without Sstc (arch/riscv/kvm/vcpu_timer.c,
 * the hrtimer flavour): `next_cycles` (TIMER `compare`) and `next_set` (TIMER `state`). When the
 * guest time reaches `compare` while armed, the timer disarms and raises STIP; arming clears STIP
 * (`kvm_riscv_vcpu_update_hrtimer`). Guest time itself is VM-wide (see shared.ts).
 */
import type { HartApi } from "./riscv/contract.js";
import { IRQ } from "./riscv/contract.js";
import { TIMEBASE_HZ } from "./host.js";

const U64_MAX = (1n << 64n) - 1n;
const TICKS_PER_MS = TIMEBASE_HZ / 1000;

/** Timer state of one vCPU. */
export class VcpuTimer {
  /** `next_cycles`; `kvm_riscv_vcpu_timer_reset` starts it at -1 (never). */
  compare = U64_MAX;
  /** `next_set`: armed. */
  armed = false;

  /** `kvm_riscv_vcpu_timer_next_event`: clear STIP, program `cycles`, arm. */
  nextEvent(hart: HartApi, cycles: bigint): void {
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

  /** Fires the timer if it is armed and due: disarm and raise STIP. */
  poll(hart: HartApi, now: bigint): void {
    if (this.armed && now >= this.compare) {
      this.armed = false;
      hart.setPending(IRQ.STIP, true);
    }
  }

  /** Milliseconds until the armed deadline (Infinity when disarmed, 0 when due). */
  msUntilDue(now: bigint): number {
    if (!this.armed) return Infinity;
    if (now >= this.compare) return 0;
    const ticks = this.compare - now;
    return ticks > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(ticks) / TICKS_PER_MS;
  }
}
