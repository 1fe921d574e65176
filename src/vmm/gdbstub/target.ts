/**
 * What the gdbstub needs from a machine: threads (one per vCPU), registers through the generic
 * interface, guest-virtual memory, breakpoints and a way to run until the next stop. The machine
 * implements it over its vCPUs (kick, guest debug, the page-table walk of its arch); the protocol
 * session (./session.ts) knows nothing else, so it is tested against a double.
 */
import type { ArchName, RegId } from "../../abi/regid.js";
import type { GuestDebug, Vcpu } from "../../backends/vcpu.js";
import type { GdbPlanner } from "./regmap.js";

/** Why the guest stopped, as the stub reports it. */
export type StopEvent =
  | {
      readonly kind: "stopped";
      /** Thread id (vCPU index + 1) that stopped. */
      readonly thread: number;
      /** POSIX signal number: 5 SIGTRAP (breakpoint, step), 2 SIGINT (Ctrl-C). */
      readonly signal: number;
      /** What caused a SIGTRAP, when known (reported with `swbreak`/`hwbreak`/`watch`). */
      readonly cause?:
        | { readonly kind: "swbreak" }
        | { readonly kind: "hwbreak" }
        | {
            readonly kind: "watch" | "rwatch" | "awatch";
            readonly address: bigint;
          };
    }
  /** The guest ended on its own (`W` with its status). */
  | { readonly kind: "exited"; readonly status: number }
  /** The guest was ended by a fault or a kill (`X` with a signal). */
  | { readonly kind: "terminated"; readonly signal: number };

/** What each thread does on resume (`vCont`). */
export interface ResumeRequest {
  /** Threads to single-step; every other resumed thread continues. */
  readonly step: readonly number[];
  /**
   * Threads to resume (those stepped included); the others stay stopped (`vCont;c:2` with
   * scheduler locking). Absent: every thread.
   */
  readonly run?: readonly number[];
}

/** Breakpoint kinds of `Z`/`z`: 0 software, 1 hardware, 2 write, 3 read, 4 access watchpoint. */
export type BreakpointType = 0 | 1 | 2 | 3 | 4;

/** A `Z2`–`Z4` watchpoint: guest-virtual bytes `[address, address + length)`. */
export interface DataWatchpoint {
  readonly kind: "watch" | "rwatch" | "awatch";
  readonly address: bigint;
  readonly length: number;
}

/** A machine as a debugger sees it. Thread ids are vCPU index + 1 (0 and -1 mean any/all). */
export interface DebugTarget {
  readonly arch: ArchName;
  /** Thread ids of every vCPU, ascending. */
  threads(): readonly number[];
  regList(thread: number): RegId[];
  getManyRegs(thread: number, ids: readonly RegId[]): Uint8Array;
  /** All-or-nothing (the MANY_REGS contract). */
  setManyRegs(thread: number, ids: readonly RegId[], bytes: Uint8Array): void;
  /** Reads guest-virtual memory as `thread` sees it; `undefined` if any byte is unmapped. */
  readMemory(thread: number, address: bigint, length: number): Uint8Array | undefined;
  /** Writes guest-virtual memory; false (nothing written) if any byte is unmapped. */
  writeMemory(thread: number, address: bigint, bytes: Uint8Array): boolean;
  /**
   * Inserts a breakpoint or watchpoint at a guest-virtual address: true when set, false when
   * this kind is not supported (empty reply), or throws a `RangeError` when it cannot be set
   * there (`E` reply: unmapped address, no free hardware slot).
   */
  insertBreakpoint(type: BreakpointType, address: bigint, kind: number): boolean;
  removeBreakpoint(type: BreakpointType, address: bigint, kind: number): boolean;
  /** Runs every vCPU (stepping those asked) until the next stop of any of them. */
  resume(request: ResumeRequest): Promise<StopEvent>;
  /**
   * A debugger connected: stop the guest (all-stop) before its first packet is served. Optional:
   * a target that is always stopped (a test double) has nothing to do.
   */
  attach?(): Promise<void>;
  /** Ctrl-C: makes a pending `resume` end soon with SIGINT. */
  interrupt(): void;
  /** The debugger leaves: breakpoints are removed and the guest runs on (or stays paused). */
  detach(): void;
  /** `k`: ends the guest. */
  kill(): void;
}

/**
 * What a machine's debug target (src/vmm/machine/debug.ts) needs to know of an architecture,
 * exported by src/vmm/arch/<arch>/gdb.ts.
 */
export interface DebugArch {
  readonly arch: ArchName;
  readonly planner: GdbPlanner;
  /**
   * The software breakpoint instruction for a `Z0` of this `kind` (GDB's breakpoint size), or
   * undefined when the backend does not intercept it (then `Z0` uses a hardware breakpoint).
   */
  swBreakpoint(kind: number): Uint8Array | undefined;
  /** Most hardware breakpoints at once (0: none). */
  readonly hwBreakpoints: number;
  /** Most data watchpoints at once (0: the backend reports none, `Z2`–`Z4` get empty replies). */
  readonly watchpoints: number;
  /**
   * The `setGuestDebug` argument for these control bits, hardware breakpoint addresses and
   * watchpoints.
   */
  guestDebug(control: number, hw: readonly bigint[], watch: readonly DataWatchpoint[]): GuestDebug;
  /**
   * Guest-physical address of guest-virtual `va` as `vcpu` sees it (its page tables), or
   * undefined when unmapped; `read64` reads guest-physical memory.
   */
  translate(vcpu: Vcpu, va: bigint, read64: (pa: bigint) => bigint | undefined): bigint | undefined;
}
