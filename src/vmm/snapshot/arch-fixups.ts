/**
 * Writes a restore needs after the ordered register phases, for ABI behaviour that a fixed
 * phase order cannot express. Kept per arch, as data plus one small function each.
 *
 * riscv — Linux 6.18 arch/riscv/kvm/vcpu_timer.c `kvm_riscv_vcpu_set_reg_timer`: writing
 * `timer.state` = ON calls `kvm_riscv_vcpu_timer_next_event(vcpu, reg_val)` with the written
 * value (1) as the deadline, so arming replaces `timer.compare` by 1. When the stream's timer
 * was armed, restore (phases: compare, then state) leaves compare = 1; the stream's compare is
 * written again here. On the soft backend that yields exactly the saved timer (armed, saved
 * deadline). On real KVM the hrtimer programmed for deadline 1 may already have raised a
 * timer interrupt: one spurious timer interrupt, which guests tolerate (they re-read `time`).
 */
import { lookupReg } from "../../abi/catalog.js";
import type { ArchName, RegId } from "../../abi/regid.js";
import type { Vcpu } from "../../backends/vcpu.js";
import { refText, regRef } from "./describe.js";
import { RestoreError } from "./errors.js";
import type { VcpuState } from "./model.js";

/** One arch's fixup: returns what it did, as text for the report. */
type Fixup = (vcpu: Vcpu, state: VcpuState) => string[];

function valueOf(state: VcpuState, id: RegId): Uint8Array | undefined {
  return state.regs.find((r) => r.id === id)?.value;
}

function isOne(bytes: Uint8Array | undefined): boolean {
  return bytes?.[0] === 1 && bytes.subarray(1).every((b) => b === 0);
}

const riscvTimer: Fixup = (vcpu, state) => {
  const stateId = lookupReg("riscv", "timer.state").id;
  const compareId = lookupReg("riscv", "timer.compare").id;
  const compare = valueOf(state, compareId);
  if (!isOne(valueOf(state, stateId)) || compare === undefined) return [];
  vcpu.setOneReg(compareId, compare);
  return [`${refText(regRef(compareId))} written again after arming the timer`];
};

const FIXUPS: Readonly<Partial<Record<ArchName, Fixup>>> = { riscv: riscvTimer };

/**
 * Applies the arch's post-restore writes to every vCPU (matched by index).
 * @throws {RestoreError} RESTORE_ROLLBACK: the registers were restored but a fixup failed.
 */
export function applyArchFixups(
  arch: ArchName,
  vcpus: readonly Vcpu[],
  states: readonly VcpuState[],
): string[] {
  const fixup = FIXUPS[arch];
  if (fixup === undefined) return [];
  const notes: string[] = [];
  for (const state of states) {
    const vcpu = vcpus.find((v) => v.index === state.index);
    if (vcpu === undefined) continue;
    try {
      notes.push(...fixup(vcpu, state).map((n) => `vCPU ${state.index}: ${n}`));
    } catch (cause) {
      throw new RestoreError(
        "RESTORE_ROLLBACK",
        `Cannot finish restoring vCPU ${state.index}: a post-restore write failed (${cause instanceof Error ? cause.message : String(cause)}); the registers are restored but the timer is not`,
        { vcpu: state.index },
        { cause },
      );
    }
  }
  return notes;
}
