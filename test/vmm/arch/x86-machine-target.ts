/**
 * A `DebugTarget` over a running x86 `Machine` on KVM, for the real-GDB test: the pieces of the
 * x86 arch part (`X86Breakpoints`, `translateVirtual`) over the machine's pause/resume. It
 * stands in for the machine's own debug target (src/vmm/machine/debug.ts, the soft-side
 * branch) until that is merged; one vCPU (thread 1).
 *
 * Debug exits reach it through the arch part's `handle()`, which it wraps: a breakpoint or step
 * pauses the machine and ends the pending `resume()`. A resume from a pc that holds a DR
 * execution breakpoint first steps with that slot off (it would fire again at once: measured on
 * kvm_pvm, docs/kvm-guest-debug.md).
 */
import assert from "node:assert/strict";
import type { RegId } from "../../../src/abi/regid.js";
import { X86_PSEUDO, structFromPseudoValue } from "../../../src/abi/arch/x86/pseudo.js";
import { decodeKvmRegs } from "../../../src/abi/kvm/x86-structs.js";
import type { GuestMemory, Vcpu, VcpuExit } from "../../../src/backends/vcpu.js";
import {
  KVM_PVM_DEBUG_FEATURES,
  X86Breakpoints,
  type X86StopCause,
} from "../../../src/vmm/arch/x86/gdb.js";
import { translateVirtual } from "../../../src/vmm/arch/x86/pagewalk.js";
import type {
  BreakpointType,
  DebugTarget,
  ResumeRequest,
  StopEvent,
} from "../../../src/vmm/gdbstub/target.js";
import type { Machine } from "../../../src/vmm/machine/machine.js";
import type { ExitAction } from "../../../src/vmm/machine/types.js";

const PAGE = 0x1000n;
const SIGTRAP = 5;
const SIGINT = 2;

/** The machine's vCPU 0 as one GDB thread, stopped at its entry before any instruction runs. */
export class X86MachineTarget implements DebugTarget {
  readonly arch = "x86" as const;
  readonly breakpoints = new X86Breakpoints(KVM_PVM_DEBUG_FEATURES);
  /** Resolves once the guest is parked at its entry (the `--gdb-wait` state). */
  readonly initialStop: Promise<void>;
  readonly #machine: Machine;
  readonly #vcpu: Vcpu;
  readonly #memory: readonly GuestMemory[];
  #initial: (() => void) | undefined;
  #stop: ((event: StopEvent) => void) | undefined;
  #stepOver = false;
  #ended: StopEvent | undefined;

  constructor(machine: Machine) {
    this.#machine = machine;
    const vcpu = machine.vcpus[0];
    assert.ok(vcpu?.setGuestDebug !== undefined, "the vCPU has guest debug");
    this.#vcpu = vcpu;
    this.#memory = machine.parts.vm.memory;
    const parts = machine.parts;
    const handle = parts.handle.bind(parts);
    // Test double: the arch part's exit handler, wrapped so debug exits come here first.
    Object.assign(parts, {
      handle: (exit: VcpuExit, v: Vcpu): ExitAction =>
        exit.kind === "debug" ? this.#onDebug(exit, v) : handle(exit, v),
    });
    this.initialStop = new Promise((resolve) => (this.#initial = resolve));
    // "No guest instruction before the debugger continues": a DR0 breakpoint at the entry (the
    // boot state's rip).
    const entry = this.#pc();
    this.#setDebug({ control: 0x1 | 0x20000, debugreg: [entry, 0n, 0n, 0n, 0n, 0n, 0n, 0x401n] });
  }

  /** The guest ended on its own with `status` (the machine's run resolved). */
  ended(status: number): void {
    this.#ended = { kind: "exited", status };
    this.#stop?.(this.#ended);
  }

  threads(): readonly number[] {
    return [1];
  }

  regList(): RegId[] {
    return this.#vcpu.regList();
  }

  getManyRegs(_thread: number, ids: readonly RegId[]): Uint8Array {
    return this.#vcpu.getManyRegs(ids);
  }

  setManyRegs(_thread: number, ids: readonly RegId[], bytes: Uint8Array): void {
    this.#vcpu.setManyRegs(ids, bytes);
  }

  readMemory(_thread: number, address: bigint, length: number): Uint8Array | undefined {
    const out = new Uint8Array(length);
    return this.#pages(address, length, (view, at) => {
      out.set(view, at);
    })
      ? out
      : undefined;
  }

  writeMemory(_thread: number, address: bigint, bytes: Uint8Array): boolean {
    // Check every page first: nothing is written unless all of it is mapped.
    if (!this.#pages(address, bytes.length, () => undefined)) return false;
    return this.#pages(address, bytes.length, (view, at) => {
      view.set(bytes.subarray(at, at + view.length));
    });
  }

  insertBreakpoint(type: BreakpointType, address: bigint, kind: number): boolean {
    return this.breakpoints.insert(type, address, kind) !== false;
  }

  removeBreakpoint(type: BreakpointType, address: bigint, kind: number): boolean {
    return this.breakpoints.remove(type, address, kind);
  }

  async resume(request: ResumeRequest): Promise<StopEvent> {
    if (this.#ended !== undefined) return this.#ended;
    const step = request.step.length > 0;
    const pc = this.#pc();
    const onSlot = this.breakpoints.guestDebug(false).debugreg?.slice(0, 4).includes(pc) ?? false;
    this.#stepOver = !step && onSlot;
    this.#setDebug(this.breakpoints.guestDebug(step || this.#stepOver, pc));
    const stopped = new Promise<StopEvent>((resolve) => (this.#stop = resolve));
    await this.#machine.resume();
    return stopped;
  }

  interrupt(): void {
    void this.#machine.pause().then(() => {
      this.#stop?.({ kind: "stopped", thread: 1, signal: SIGINT });
    });
  }

  detach(): void {
    this.breakpoints.clear();
    this.#setDebug({ control: 0 });
    void this.#machine.resume();
  }

  kill(): void {
    void this.#machine.quit();
  }

  #onDebug(exit: Extract<VcpuExit, { kind: "debug" }>, vcpu: Vcpu): ExitAction {
    if (this.#stepOver) {
      // Off the breakpoint: re-arm every slot and run on.
      this.#stepOver = false;
      vcpu.setGuestDebug?.(this.breakpoints.guestDebug(false));
      return "continue";
    }
    const initial = this.#initial;
    this.#initial = undefined;
    const cause: X86StopCause =
      initial === undefined ? this.breakpoints.stopCause(exit) : undefined;
    void this.#machine.pause().then(() => {
      if (initial !== undefined) {
        this.#setDebug({ control: 0 });
        initial();
        return;
      }
      this.#stop?.({ kind: "stopped", thread: 1, signal: SIGTRAP, ...(cause ? { cause } : {}) });
    });
    return "continue";
  }

  #setDebug(debug: Parameters<NonNullable<Vcpu["setGuestDebug"]>>[0]): void {
    this.#vcpu.setGuestDebug?.(debug);
  }

  #pc(): bigint {
    const { REGS } = X86_PSEUDO;
    return decodeKvmRegs(structFromPseudoValue(REGS, this.#vcpu.getOneReg(REGS.id))).rip;
  }

  #read64 = (pa: bigint): bigint | undefined => {
    const view = this.#phys(pa, 8);
    return view === undefined
      ? undefined
      : new DataView(view.buffer, view.byteOffset, 8).getBigUint64(0, true);
  };

  #phys(pa: bigint, length: number): Uint8Array | undefined {
    for (const m of this.#memory) {
      const offset = pa - m.guestPhysAddr;
      if (offset >= 0n && offset + BigInt(length) <= BigInt(m.size)) {
        return m.view(Number(offset), length);
      }
    }
    return undefined;
  }

  /** Calls `visit` with each page-sized piece of [address, address + length) in guest RAM. */
  #pages(address: bigint, length: number, visit: (view: Uint8Array, at: number) => void): boolean {
    let at = 0;
    while (at < length) {
      const va = address + BigInt(at);
      const chunk = Math.min(length - at, Number(PAGE - (va % PAGE)));
      const pa = translateVirtual(this.#vcpu, va, this.#read64);
      const view = pa === undefined ? undefined : this.#phys(pa, chunk);
      if (view === undefined) return false;
      visit(view, at);
      at += chunk;
    }
    return true;
  }
}
