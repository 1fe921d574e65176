/** A DebugTarget over two real soft vCPUs with identity-mapped RAM and scripted stops. */
import { lookupReg } from "../../../src/abi/catalog.js";
import type { ArchName, RegId } from "../../../src/abi/regid.js";
import type { Vcpu, Vm } from "../../../src/backends/vcpu.js";
import type {
  BreakpointType,
  DebugTarget,
  ResumeRequest,
  StopEvent,
} from "../../../src/vmm/gdbstub/target.js";

export const RAM_BASE = 0x8000_0000n;
export const reg = (name: string): RegId => lookupReg("riscv", name).id;

/** Two real soft vCPUs, identity-mapped RAM at 0x80000000, scripted stops. */
export class TestTarget implements DebugTarget {
  readonly arch: ArchName;
  readonly ramBase: bigint;
  readonly vcpus: Vcpu[];
  readonly ram: Uint8Array;
  readonly resumes: ResumeRequest[] = [];
  readonly breakpoints: string[] = [];
  interrupts = 0;
  detached = false;
  killed = false;
  #stop: ((s: StopEvent) => void) | undefined;

  constructor(
    readonly vm: Vm,
    options: { readonly ramBase?: bigint; readonly vcpus?: number } = {},
  ) {
    this.arch = vm.arch;
    this.ramBase = options.ramBase ?? RAM_BASE;
    this.ram = vm.addMemory({ guestPhysAddr: this.ramBase, size: 0x10000 }).bytes;
    this.vcpus = Array.from({ length: options.vcpus ?? 2 }, () => vm.createVcpu());
  }
  #vcpu(thread: number): Vcpu {
    const v = this.vcpus[thread - 1];
    if (v === undefined) throw new RangeError(`no thread ${thread}`);
    return v;
  }
  threads() {
    return this.vcpus.map((_, i) => i + 1);
  }
  regList(t: number) {
    return this.#vcpu(t).regList();
  }
  getManyRegs(t: number, ids: readonly RegId[]) {
    return this.#vcpu(t).getManyRegs(ids);
  }
  setManyRegs(t: number, ids: readonly RegId[], bytes: Uint8Array) {
    this.#vcpu(t).setManyRegs(ids, bytes);
  }
  #offset(address: bigint, length: number): number | undefined {
    const at = address - this.ramBase;
    return at < 0n || at + BigInt(length) > BigInt(this.ram.length) ? undefined : Number(at);
  }
  readMemory(_t: number, address: bigint, length: number) {
    const at = this.#offset(address, length);
    return at === undefined ? undefined : this.ram.slice(at, at + length);
  }
  writeMemory(_t: number, address: bigint, bytes: Uint8Array) {
    const at = this.#offset(address, bytes.length);
    if (at === undefined) return false;
    this.ram.set(bytes, at);
    return true;
  }
  insertBreakpoint(type: BreakpointType, address: bigint, kind: number) {
    if (type > 1) return false;
    if (this.#offset(address, 2) === undefined) throw new RangeError("unmapped");
    this.breakpoints.push(`+${type}@${address.toString(16)}/${kind}`);
    return true;
  }
  removeBreakpoint(type: BreakpointType, address: bigint, kind: number) {
    this.breakpoints.push(`-${type}@${address.toString(16)}/${kind}`);
    return true;
  }
  resume(request: ResumeRequest) {
    this.resumes.push(request);
    return new Promise<StopEvent>((resolve) => (this.#stop = resolve));
  }
  /** Ends the pending resume with `stop`. */
  stop(stop: StopEvent) {
    this.#stop?.(stop);
    this.#stop = undefined;
  }
  interrupt() {
    this.interrupts++;
    this.stop({ kind: "stopped", thread: 2, signal: 2 });
  }
  detach() {
    this.detached = true;
  }
  kill() {
    this.killed = true;
  }
}
