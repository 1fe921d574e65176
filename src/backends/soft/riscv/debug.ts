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
 *
 * Data watchpoints (regvisor extension, GDB's `Z2`–`Z4`) by guest-virtual address: after each
 * instruction that retired (no trap: the access really happened), its memory access is decoded
 * from its bits — loads, stores, FP loads/stores, LR/SC/AMOs, and their compressed forms — with
 * the base register as it was before the instruction ran, and compared with the watched ranges.
 * A hit ends `run()` with pc past the instruction (trap-after, as x86 debug registers report data
 * breakpoints and as GDB expects of a continuable watchpoint), cause "watch" (a store),
 * "rwatch" (a load) or "awatch" (either, for an access watchpoint; an AMO is both).
 */
import type { HartDebug, HartStop, Watchpoint } from "./contract.js";
import type { Core } from "./core.js";
import { TWO32 } from "./i64.js";
import { step } from "./interp.js";
import { expandRvc } from "./rvc.js";
import { TLB_SIZE } from "./tlb.js";

/** A watchpoint as the debug loop compares it (unsigned 64-bit bounds). */
interface EngineWatch {
  readonly kind: Watchpoint["kind"];
  readonly start: bigint;
  readonly end: bigint;
  readonly address: bigint;
}

/** The hart's debug state in the form `runDebug` compares against. */
export interface EngineDebug {
  readonly step: boolean;
  /** Breakpoint pcs in the Core's pc form (a signed 64-bit value as a double). */
  readonly hw: ReadonlySet<number>;
  readonly watch: readonly EngineWatch[];
}

/** The engine's form of `HartDebug`, or null when nothing forces the debug loop. */
export function engineDebug(debug: HartDebug | undefined): EngineDebug | null {
  const watchpoints = debug?.watchpoints ?? [];
  if (
    debug === undefined ||
    (!debug.step && debug.hwBreakpoints.length === 0 && watchpoints.length === 0)
  ) {
    return null;
  }
  const hw = new Set(debug.hwBreakpoints.map((a) => Number(BigInt.asIntN(64, a))));
  const watch = watchpoints.map((w) => {
    const start = BigInt.asUintN(64, w.address);
    return { kind: w.kind, start, end: start + BigInt(w.length), address: w.address };
  });
  return { step: debug.step, hw, watch };
}

const EMPTY_REGS = new Int32Array(0);

/** The raw bits of the instruction at `pc` from the fetch TLB (just filled by its fetch). */
function fetchedBits(c: Core, pc: number): number | undefined {
  const half = (at: number): number | undefined => {
    const lo = at | 0;
    const hi = Math.floor(at / TWO32) | 0;
    const i = (lo >>> 12) & (TLB_SIZE - 1);
    if (c.tx.tagLo[i] !== (lo & -4096) || c.tx.tagHi[i] !== hi) return undefined;
    return c.tx.dv[i]?.getUint16((c.tx.off[i] ?? 0) + (lo & 4095), true);
  };
  const low = half(pc);
  if (low === undefined || (low & 3) !== 3) return low;
  const high = half(pc + 2);
  return high === undefined ? undefined : (low | (high << 16)) >>> 0;
}

/** The memory access of instruction `raw` given its registers before it ran, if it has one. */
function memoryAccess(
  raw: number,
  x: Int32Array,
): { address: bigint; size: number; read: boolean; write: boolean } | undefined {
  let insn = raw;
  if ((raw & 3) !== 3) {
    insn = expandRvc(raw & 0xffff);
  }
  const opcode = insn & 0x7f;
  const f3 = (insn >>> 12) & 7;
  const rs1 = (insn >>> 15) & 31;
  const base = (BigInt(x[2 * rs1 + 1] ?? 0) << 32n) | BigInt((x[2 * rs1] ?? 0) >>> 0);
  const at = (offset: number): bigint => BigInt.asUintN(64, base + BigInt(offset));
  switch (opcode) {
    case 0x03: // LOAD (RV64I)
      return f3 === 7
        ? undefined
        : { address: at(insn >> 20), size: 1 << (f3 & 3), read: true, write: false };
    case 0x07: // LOAD-FP (F/D): flw, fld
      return f3 === 2 || f3 === 3
        ? { address: at(insn >> 20), size: 1 << f3, read: true, write: false }
        : undefined;
    case 0x23: // STORE
    case 0x27: {
      // STORE-FP: fsw, fsd
      if (opcode === 0x27 && f3 !== 2 && f3 !== 3) return undefined;
      if (opcode === 0x23 && f3 > 3) return undefined;
      const imm = ((insn >> 20) & ~31) | ((insn >>> 7) & 31);
      return { address: at(imm), size: 1 << f3, read: false, write: true };
    }
    case 0x2f: {
      // AMO (A extension): lr reads, sc writes, every other AMO reads and writes.
      if (f3 !== 2 && f3 !== 3) return undefined;
      const funct5 = insn >>> 27;
      return { address: at(0), size: 1 << f3, read: funct5 !== 3, write: funct5 !== 2 };
    }
    default:
      return undefined;
  }
}

/** The watchpoint an instruction that retired hit, if any (module header). */
function watchHit(
  c: Core,
  debug: EngineDebug,
  pc: number,
  before: Int32Array,
): { kind: Watchpoint["kind"]; address: bigint } | undefined {
  const raw = fetchedBits(c, pc);
  if (raw === undefined) return undefined;
  const access = memoryAccess(raw, before);
  if (access === undefined) return undefined;
  const end = access.address + BigInt(access.size);
  for (const w of debug.watch) {
    if (access.address >= w.end || end <= w.start) continue;
    const hit =
      w.kind === "awatch"
        ? access.read || access.write
        : w.kind === "watch"
          ? access.write
          : access.read;
    if (hit) return { kind: w.kind, address: w.address };
  }
  return undefined;
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
  const before = debug.watch.length > 0 ? new Int32Array(64) : EMPTY_REGS;
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
    if (debug.watch.length > 0) {
      const pc = c.pc;
      const retired = c.icount;
      before.set(c.x);
      step(c);
      if (c.stopped()) break;
      const hit = c.icount !== retired ? watchHit(c, debug, pc, before) : undefined;
      if (hit !== undefined) {
        c.stop = { kind: "debug", cause: hit.kind, address: hit.address };
        break;
      }
    } else {
      step(c);
      if (c.stopped()) break;
    }
    if (debug.step) {
      c.stop = { kind: "debug", cause: "step" };
      break;
    }
  }
  return c.takeStop();
}
