/**
 * The gdbstub's view of a running `Machine` (the `DebugTarget` of src/vmm/gdbstub/target.ts):
 * threads are vCPUs (thread id = index + 1); registers move with `getManyRegs`/`setManyRegs` on
 * parked vCPUs; memory is guest-virtual, translated by the arch's page walk (`DebugArch`).
 *
 * All-stop: a debugger connecting pauses the machine (every vCPU parked between exits); a resume
 * sets guest debug on every vCPU (`KVM_GUESTDBG_ENABLE`, software breakpoints, the hardware
 * breakpoint list, single-step on the threads asked) and releases them; the first `debug` exit,
 * a Ctrl-C or the guest's own end pauses them all again and becomes the stop reply.
 *
 * `Z0` writes the arch's breakpoint instruction into guest RAM (the original bytes are kept and
 * shown in place of it by `m` reads, and restored by `z0`, detach and kill), falling back to a
 * hardware breakpoint by virtual address where the address is not mapped yet (a kernel symbol
 * before paging is on) or the backend does not intercept the instruction. Guest debug is not
 * guest state: nothing here is in a register list or a snapshot.
 */
import { KVM_GUESTDBG } from "../../abi/kvm/constants.js";
import type { ArchName, RegId } from "../../abi/regid.js";
import { RegvisorError } from "../../errors.js";
import type { GuestMemory, Vcpu, Vm } from "../../backends/vcpu.js";
import type {
  BreakpointType,
  DataWatchpoint,
  DebugArch,
  DebugTarget,
  ResumeRequest,
  StopEvent,
} from "../gdbstub/target.js";
import type { RunEnding } from "../runner-types.js";
import { riscvDebugArch } from "../arch/riscv/gdb.js";
import { x86DebugArch } from "../arch/x86/gdb.js";
import {
  GdbAddressError,
  parseGdbAddress,
  startGdbServer,
  type GdbAddress,
  type GdbServer,
} from "../gdbstub/server.js";
import { ControlError } from "../api/control.js";
import type { DebugExit, Machine } from "./machine.js";

const SIGINT = 2;
const SIGTRAP = 5;
const PAGE = 4096n;
/**
 * The run slice of an inline vCPU while it runs for the debugger: GDB's Ctrl-C is read by the
 * thread `run()` holds, so it waits for the slice's end (100 ms by default).
 */
const DEBUG_SLICE_MS = 2;
/** Most guest bytes one `m`/`M` touches (the session bounds it by the packet size first). */
const MAX_ACCESS = 1 << 16;

/** A software breakpoint written into guest RAM. */
interface SwBreakpoint {
  /** Guest-physical address of each byte, and the bytes the guest had there. */
  readonly pas: readonly bigint[];
  readonly original: Uint8Array;
}

/** Options of `MachineDebugTarget`. */
export interface MachineDebugOptions {
  readonly machine: Machine;
  readonly arch: DebugArch;
}

/** A `Machine` as a debugger sees it (module header). */
export class MachineDebugTarget implements DebugTarget {
  readonly arch: DebugArch["arch"];
  readonly #machine: Machine;
  readonly #debug: DebugArch;
  readonly #vm: Vm;
  readonly #sw = new Map<bigint, SwBreakpoint>();
  readonly #hw = new Set<bigint>();
  /** Data watchpoints by `type,address,length`. */
  readonly #watch = new Map<string, DataWatchpoint>();
  #pending: ((stop: StopEvent) => void) | undefined;
  #ended: RunEnding | undefined;
  #stopping = false;
  #lastThread = 1;

  constructor(options: MachineDebugOptions) {
    this.#machine = options.machine;
    this.#debug = options.arch;
    this.arch = options.arch.arch;
    this.#vm = options.machine.parts.vm;
    this.#machine.setDebugHook((exit, vcpu) => {
      this.#onDebugExit(exit, vcpu);
    });
    this.#machine.onEnding((ending) => {
      this.#ended = ending;
      this.#settle(endingStop(ending));
    });
  }

  get #vcpus(): readonly Vcpu[] {
    return this.#machine.vcpus;
  }

  threads(): readonly number[] {
    return this.#vcpus.map((_, i) => i + 1);
  }

  #vcpu(thread: number): Vcpu {
    const vcpu = this.#vcpus[thread - 1];
    if (vcpu === undefined) throw new RangeError(`no thread ${thread}`);
    return vcpu;
  }

  regList(thread: number): RegId[] {
    return this.#vcpu(thread).regList();
  }

  getManyRegs(thread: number, ids: readonly RegId[]): Uint8Array {
    return this.#vcpu(thread).getManyRegs(ids);
  }

  setManyRegs(thread: number, ids: readonly RegId[], bytes: Uint8Array): void {
    this.#vcpu(thread).setManyRegs(ids, bytes);
  }

  /** Stops the guest for a debugger that just connected. */
  async attach(): Promise<void> {
    if (this.#ended !== undefined) return;
    await this.#machine.pause().catch(() => undefined); // ended meanwhile: `?` reports it
  }

  readMemory(thread: number, address: bigint, length: number): Uint8Array | undefined {
    const pas = this.#physical(thread, address, length);
    if (pas === undefined) return undefined;
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      const byte = this.#readPhys(pas[i] ?? -1n);
      if (byte === undefined) return undefined;
      out[i] = byte;
    }
    // Show the guest's own bytes where a software breakpoint sits.
    for (const bp of this.#sw.values()) {
      bp.pas.forEach((pa, k) => {
        const at = pas.indexOf(pa);
        if (at >= 0) out[at] = bp.original[k] ?? 0;
      });
    }
    return out;
  }

  writeMemory(thread: number, address: bigint, bytes: Uint8Array): boolean {
    const pas = this.#physical(thread, address, bytes.length);
    if (pas?.every((pa) => this.#region(pa) !== undefined) !== true) return false;
    pas.forEach((pa, i) => {
      const bp = [...this.#sw.values()].find((b) => b.pas.includes(pa));
      // Under a software breakpoint the write goes to the kept bytes; the breakpoint stays.
      if (bp !== undefined) bp.original[bp.pas.indexOf(pa)] = bytes[i] ?? 0;
      else this.#writePhys(pa, bytes[i] ?? 0);
    });
    return true;
  }

  insertBreakpoint(type: BreakpointType, address: bigint, kind: number): boolean {
    if (type === 0) {
      if (this.#sw.has(address) || this.#hw.has(address)) return true;
      const insn = this.#debug.swBreakpoint(kind);
      const pas = insn === undefined ? undefined : this.#physical(0, address, insn.length);
      if (insn !== undefined && pas?.every((pa) => this.#region(pa) !== undefined) === true) {
        const original = Uint8Array.from(pas, (pa) => this.#readPhys(pa) ?? 0);
        pas.forEach((pa, i) => {
          this.#writePhys(pa, insn[i] ?? 0);
        });
        this.#sw.set(address, { pas, original });
        return true;
      }
      // Not mapped yet (a kernel symbol before paging) or not intercepted: by virtual pc.
    } else if (type !== 1) {
      return this.#insertWatch(type, address, kind);
    }
    if (this.#hw.has(address)) return true;
    if (this.#hw.size >= this.#debug.hwBreakpoints) {
      throw new RangeError(`no free hardware breakpoint for 0x${address.toString(16)}`);
    }
    this.#hw.add(address);
    return true;
  }

  /** `Z2`–`Z4`: a data watchpoint where the backend reports them (`DebugArch.watchpoints`). */
  #insertWatch(type: 2 | 3 | 4, address: bigint, length: number): boolean {
    if (this.#debug.watchpoints === 0) return false;
    if (length < 1 || length > 4096) {
      throw new RangeError(`Cannot watch ${length} bytes: a watchpoint covers 1 to 4096 bytes`);
    }
    const key = `${type},${address},${length}`;
    if (this.#watch.has(key)) return true;
    if (this.#watch.size >= this.#debug.watchpoints) {
      throw new RangeError(`no free watchpoint for 0x${address.toString(16)}`);
    }
    const kind = type === 2 ? "watch" : type === 3 ? "rwatch" : "awatch";
    this.#watch.set(key, { kind, address, length });
    return true;
  }

  removeBreakpoint(type: BreakpointType, address: bigint, kind = 0): boolean {
    if (type > 1) {
      if (this.#debug.watchpoints === 0) return false;
      this.#watch.delete(`${type},${address},${kind}`);
      return true;
    }
    const bp = type === 0 ? this.#sw.get(address) : undefined;
    if (bp !== undefined) {
      this.#restore(bp);
      this.#sw.delete(address);
    } else this.#hw.delete(address);
    return true;
  }

  resume(request: ResumeRequest): Promise<StopEvent> {
    if (this.#ended !== undefined) return Promise.resolve(endingStop(this.#ended));
    const step = new Set(request.step);
    const { ENABLE, USE_SW_BP, USE_HW_BP, SINGLESTEP } = KVM_GUESTDBG;
    this.#slices(DEBUG_SLICE_MS);
    const hw = [...this.#hw];
    const watch = [...this.#watch.values()];
    const hwBit = hw.length > 0 || watch.length > 0 ? USE_HW_BP : 0;
    this.#vcpus.forEach((vcpu, i) => {
      const control = ENABLE | USE_SW_BP | hwBit | (step.has(i + 1) ? SINGLESTEP : 0);
      vcpu.setGuestDebug?.(this.#debug.guestDebug(control, hw, watch));
    });
    const run = new Set(request.run ?? this.threads());
    this.#machine.hold(
      this.threads()
        .filter((t) => !run.has(t))
        .map((t) => t - 1),
    );
    const stopped = new Promise<StopEvent>((resolve) => (this.#pending = resolve));
    this.#stopping = false;
    this.#machine.resume().catch(() => undefined); // ended meanwhile: onEnding reports it
    return stopped;
  }

  /** Inline vCPUs: the run slice (module header of DEBUG_SLICE_MS); threaded ones need none. */
  #slices(ms: number | undefined): void {
    const { backend } = this.#machine;
    if (backend.mode !== "inline") return;
    for (const vcpu of this.#vcpus) backend.timeSlice?.(vcpu, ms);
  }

  interrupt(): void {
    this.#stop({ kind: "stopped", thread: this.#lastThread, signal: SIGINT });
  }

  detach(): void {
    this.#removeAll();
    if (this.#ended !== undefined) return;
    // Guest debug can only change on parked vCPUs: a guest running for the debugger stops first.
    this.#machine.pause().then(
      () => {
        this.#settle({ kind: "stopped", thread: this.#lastThread, signal: SIGINT });
        for (const vcpu of this.#vcpus) vcpu.setGuestDebug?.({ control: 0 });
        this.#slices(undefined);
        this.#machine.hold([]);
        this.#machine.resume().catch(() => undefined); // ended meanwhile: onEnding reports it
      },
      () => undefined, // the machine ended meanwhile
    );
  }

  kill(): void {
    this.#removeAll();
    void this.#machine.quit();
  }

  /** Every software breakpoint restored, every hardware one dropped. */
  #removeAll(): void {
    for (const bp of this.#sw.values()) this.#restore(bp);
    this.#sw.clear();
    this.#hw.clear();
    this.#watch.clear();
  }

  #restore(bp: SwBreakpoint): void {
    bp.pas.forEach((pa, i) => {
      this.#writePhys(pa, bp.original[i] ?? 0);
    });
  }

  #onDebugExit(exit: DebugExit, vcpu: Vcpu): void {
    const kind = exit.cause;
    const cause =
      kind === "swbreak" || kind === "hwbreak"
        ? { kind }
        : (kind === "watch" || kind === "rwatch" || kind === "awatch") &&
            exit.watchAddress !== undefined
          ? { kind, address: exit.watchAddress }
          : undefined;
    this.#stop({
      kind: "stopped",
      thread: vcpu.index + 1,
      signal: SIGTRAP,
      ...(cause === undefined ? {} : { cause }),
    });
  }

  /** Pauses every vCPU, then reports `stop` to the pending resume (the first stop wins). */
  #stop(stop: StopEvent & { kind: "stopped" }): void {
    if (this.#stopping || this.#ended !== undefined) return;
    this.#stopping = true;
    this.#lastThread = stop.thread;
    this.#machine.pause().then(
      () => {
        this.#settle(stop);
      },
      () => undefined, // the machine ended meanwhile: onEnding reports that
    );
  }

  #settle(stop: StopEvent): void {
    const resolve = this.#pending;
    this.#pending = undefined;
    resolve?.(stop);
  }

  /** Guest-physical address of each byte of `[address, address + length)`, by page. */
  #physical(thread: number, address: bigint, length: number): bigint[] | undefined {
    if (length > MAX_ACCESS) return undefined;
    const vcpu = this.#vcpus[Math.max(0, thread - 1)] ?? this.#vcpus[0];
    if (vcpu === undefined) return undefined;
    const out: bigint[] = [];
    let page: bigint | undefined;
    let base: bigint | undefined;
    for (let i = 0n; i < BigInt(length); i++) {
      const va = BigInt.asUintN(64, address + i);
      if (page !== va / PAGE) {
        page = va / PAGE;
        base = this.#debug.translate(vcpu, page * PAGE, (pa) => this.#read64(pa));
        if (base === undefined) return undefined;
      }
      out.push((base ?? 0n) + (va % PAGE));
    }
    return out;
  }

  #region(pa: bigint): { memory: GuestMemory; offset: number } | undefined {
    for (const memory of this.#vm.memory) {
      const offset = pa - memory.guestPhysAddr;
      if (offset >= 0n && offset < BigInt(memory.size)) return { memory, offset: Number(offset) };
    }
    return undefined;
  }

  #readPhys(pa: bigint): number | undefined {
    const at = this.#region(pa);
    return at === undefined ? undefined : at.memory.view(at.offset, 1)[0];
  }

  #writePhys(pa: bigint, byte: number): void {
    const at = this.#region(pa);
    if (at === undefined) return;
    at.memory.view(at.offset, 1)[0] = byte;
    // Drop translated code of that page (the soft backend's blocks; a no-op where absent).
    this.#vm.markDirty?.(pa, 1);
  }

  #read64(pa: bigint): bigint | undefined {
    const at = this.#region(pa);
    if (at === undefined || at.offset + 8 > at.memory.size) return undefined;
    const bytes = at.memory.view(at.offset, 8);
    return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  }
}

/** The stop reply for a machine that ended. */
function endingStop(ending: RunEnding): StopEvent {
  return { kind: "exited", status: ending.status };
}

/** Architectures the gdbstub can debug, by register namespace. */
const DEBUG_ARCHES: Partial<Record<ArchName, DebugArch>> = {
  riscv: riscvDebugArch,
  x86: x86DebugArch,
};

/** The machine cannot be debugged (no guest-debug capability, an unknown architecture). */
export class GdbUnsupportedError extends RegvisorError {
  constructor(message: string) {
    super("GDB_UNSUPPORTED", message);
  }
}

/** Options of `startMachineGdb`. */
export interface MachineGdbOptions {
  readonly machine: Machine;
  readonly address: GdbAddress;
  /** `--gdb-allow-remote`. */
  readonly allowRemote?: boolean;
  /** What a debugger leaving without `D` or `k` does (default "stay": the guest stays stopped). */
  readonly onDisconnect?: "stay" | "continue";
  readonly log?: (line: string) => void;
}

/**
 * Serves a gdbstub for `machine` (`run --gdb`, the control socket's `PUT /gdb`).
 * @throws GdbUnsupportedError when the machine's vCPUs lack guest debug or its arch has no
 *   debugger support; GdbAddressError when the address cannot be listened on.
 */
export async function startMachineGdb(options: MachineGdbOptions): Promise<GdbServer> {
  const { machine } = options;
  const arch = machine.parts.vm.arch;
  const debugArch = DEBUG_ARCHES[arch];
  if (debugArch === undefined) {
    throw new GdbUnsupportedError(
      `Cannot debug this ${arch} guest: the gdbstub does not support ${arch} guests yet`,
    );
  }
  if (machine.vcpus.some((v) => v.setGuestDebug === undefined)) {
    throw new GdbUnsupportedError(
      `Cannot debug this guest: the ${machine.backend.name} backend has no guest-debug capability (KVM_SET_GUEST_DEBUG)`,
    );
  }
  const target = new MachineDebugTarget({ machine, arch: debugArch });
  return startGdbServer({
    address: options.address,
    target,
    planner: debugArch.planner,
    ...(options.allowRemote === undefined ? {} : { allowRemote: options.allowRemote }),
    ...(options.onDisconnect === undefined ? {} : { onDisconnect: options.onDisconnect }),
    ...(options.log === undefined ? {} : { log: options.log }),
  });
}

/**
 * The one gdbstub a machine may have, started by `run --gdb` or later through the control socket
 * (`PUT /gdb {"address": "…"}`); closed with the machine.
 */
export class MachineGdb implements AsyncDisposable {
  #server: GdbServer | undefined;

  constructor(
    private readonly machine: Machine,
    private readonly log?: (line: string) => void,
  ) {}

  /** Where the stub listens, once started. */
  get endpoint(): string | undefined {
    return this.#server?.endpoint;
  }

  /**
   * Starts the stub (see `startMachineGdb`).
   * @throws GdbAddressError, GdbUnsupportedError; ControlError 409 when one already listens.
   */
  async start(
    address: GdbAddress,
    options: Pick<MachineGdbOptions, "allowRemote" | "onDisconnect"> = {},
  ): Promise<string> {
    if (this.#server !== undefined) {
      throw new ControlError(
        409,
        `Cannot start a gdbstub: one already listens on ${this.#server.endpoint}`,
      );
    }
    this.#server = await startMachineGdb({
      machine: this.machine,
      address,
      ...options,
      ...(this.log === undefined ? {} : { log: this.log }),
    });
    return this.#server.endpoint;
  }

  /**
   * The control socket's `PUT /gdb`: parses `text` as `--gdb` does (loopback or a Unix socket
   * only) and starts the stub; a debugger that connects stops the running guest.
   * @throws ControlError 400 for a bad or remote address, 409 when the machine cannot be debugged
   *   or a stub already listens.
   */
  async attach(text: string): Promise<{ endpoint: string }> {
    try {
      return { endpoint: await this.start(parseGdbAddress(text)) };
    } catch (error) {
      if (error instanceof GdbAddressError) throw new ControlError(400, error.message);
      if (error instanceof GdbUnsupportedError) throw new ControlError(409, error.message);
      throw error;
    }
  }

  /** Stops listening (the debugger, if any, is disconnected). */
  async close(): Promise<void> {
    await this.#server?.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
