/**
 * Guest debug in the hart: every hook of `KVM_SET_GUEST_DEBUG` lives here, so the engine's fast
 * paths (blocks, compiled regions) carry none of it.
 *
 * - Software breakpoints (RISC-V KVM: arch/riscv/kvm/vcpu.c `kvm_arch_vcpu_ioctl_set_guest_debug`
 *   clears `hedeleg.BREAKPOINT` when `KVM_GUESTDBG_ENABLE` is set, and vcpu_exit.c turns the
 *   trap into `KVM_EXIT_DEBUG`): `Core.swBreak` makes the interpreter stop on `ebreak`/`c.ebreak`
 *   with pc on it. `ebreak` always ends a block and runs alone in the interpreter (block.ts), so
 *   the translator needs no hook for it.
 * - Single-step and hardware breakpoints (regvisor extensions): while either is on, `run()` goes
 *   through `runDebug` below — the reference interpreter, one instruction at a time, checking the
 *   pc against the breakpoint set before each one. No block or compiled region runs, so no tier
 *   can skip past a breakpoint; the cost is the interpreter's speed while they are set.
 *
 * Single-step rule (chosen, documented in the README): a step ends after one instruction
 * attempt. An interrupt pending at the step's start is taken first and the step ends at the
 * handler's first instruction, not executed; an instruction that raises an exception ends the
 * step at the handler likewise. Hardware breakpoints are not checked for the stepped instruction
 * (stepping off a breakpoint works without removing it). Breakpoint addresses are compared with
 * the virtual pc, so they work before the guest turns paging on and after.
 */
import type { HartDebug, HartStop } from "./contract.js";
import type { Core } from "./core.js";
import { step } from "./interp.js";

/** The hart's debug state in the form `runDebug` compares against. */
export interface EngineDebug {
  readonly step: boolean;
  /** Breakpoint pcs in the Core's pc form (a signed 64-bit value as a double). */
  readonly hw: ReadonlySet<number>;
}

/** The engine's form of `HartDebug`, or null when nothing forces the debug loop. */
export function engineDebug(debug: HartDebug | undefined): EngineDebug | null {
  if (debug === undefined || (!debug.step && debug.hwBreakpoints.length === 0)) return null;
  const hw = new Set(debug.hwBreakpoints.map((a) => Number(BigInt.asIntN(64, a))));
  return { step: debug.step, hw };
}

/**
 * `Engine.run` while single-stepping or with hardware breakpoints set: at most `budget`
 * instruction attempts, one by one (module header for the rules).
 */
export function runDebug(
  c: Core,
  debug: EngineDebug,
  budget: number,
  watched: Int32Array | null,
  at: number,
  expect: number | undefined,
): HartStop {
  c.stop = null;
  for (let left = budget; left > 0; left--) {
    if (watched !== null && watched[at] !== expect) break;
    if (c.irqReady) {
      c.takeInterrupt();
      if (debug.step) {
        c.stop = { kind: "debug", cause: "step" };
        break;
      }
    }
    if (!debug.step && debug.hw.has(c.pc)) {
      c.stop = { kind: "debug", cause: "hwbreak" };
      break;
    }
    step(c);
    if (c.stopped()) break;
    if (debug.step) {
      c.stop = { kind: "debug", cause: "step" };
      break;
    }
  }
  return c.takeStop();
}
