/**
 * `KvmVcpu`: one vCPU fd and its mmap'd kvm_run pages, implementing the backend-neutral
 * `Vcpu` interface (ONE_REG, REG_LIST, MANY_REGS, run) plus the x86 struct accessors and the
 * sync-register views.
 *
 * Hot paths (`run()`, `getOneRegInto()`) allocate nothing in the steady state: the kvm_one_reg
 * argument lives in a dedicated native page whose `addr` field is written once, the id is
 * rewritten only when it changes, and IO exits for a repeating port reuse one exit object.
 */
import { encodeRegValue } from "../reg-value.js";
import { ERRNO } from "../../abi/kvm/errno.js";
import { KvmError } from "../../abi/kvm/errors.js";
import { IOCTLS, KVM_CAP } from "../../abi/kvm/ioctls.js";
import { KVM_ONE_REG, KVM_RUN, KVM_DEBUGREGS, KVM_FPU, KVM_XCRS } from "../../abi/kvm/layouts.js";
import { decodeLayout, encodeLayout, type StructValue } from "../../abi/kvm/struct-codec.js";
import {
  decodeKvmRegs,
  decodeKvmSregs,
  decodeKvmVcpuEvents,
  encodeKvmRegs,
  encodeKvmSregs,
  encodeKvmVcpuEvents,
  type KvmRegs,
  type KvmSregs,
  type KvmVcpuEvents,
} from "../../abi/kvm/x86-structs.js";
import { isPseudoRegId, msrRegId } from "../../abi/arch/x86/index.js";
import { regId, regSize, type RegId } from "../../abi/regid.js";
import { VcpuBusyError, type GuestDebug, type Vcpu, type VcpuExit } from "../vcpu.js";
import { decodeCpuid, encodeCpuid, type CpuidEntry } from "./cpuid.js";
import { KvmClosedError, kvmFail } from "./errors.js";
import { ExitDecoder, INTR_EXIT } from "./exits.js";
import { encodeGuestDebug } from "./guest-debug.js";
import { closeFd, ioctlMem, ioctlValue, mapAnonymous, type NativeMemory } from "./ffi.js";
import { RunThread } from "./run-worker.js";
import { Scratch } from "./scratch.js";
import { SyncRegs } from "./sync-regs.js";
import type { KvmVm } from "./vm.js";
import { X86RegisterView } from "./x86-view.js";
import * as state from "./x86-state.js";
import { putU32 } from "./le-bytes.js";

// Layout of the dedicated ONE_REG page: kvm_one_reg at 0, the value buffer at VALUE.
const ONE_ID = KVM_ONE_REG.fields.id.offset;
const ONE_ADDR = KVM_ONE_REG.fields.addr.offset;
const VALUE = 64;
const ONE_PAGE = 4096;
const IMMEDIATE_EXIT = KVM_RUN.fields.immediate_exit.offset;

const RUN = IOCTLS.KVM_RUN.number;
const GET_ONE_REG = IOCTLS.KVM_GET_ONE_REG.number;
const SET_ONE_REG = IOCTLS.KVM_SET_ONE_REG.number;
const SET_GUEST_DEBUG = IOCTLS.KVM_SET_GUEST_DEBUG;

/** A KVM vCPU. */
export class KvmVcpu implements Vcpu {
  readonly arch = "x86" as const;
  readonly index: number;
  readonly vm: KvmVm;
  /** The kvm_run sync-register area (x86: REGS, SREGS, EVENTS). */
  readonly sync: SyncRegs;
  #fd: number;
  readonly #run: NativeMemory;
  readonly #exits: ExitDecoder;
  readonly #scratch = new Scratch();
  readonly #one: NativeMemory;
  #oneId = -1n;
  #oneSize = 0;
  #oneValue: Uint8Array;
  // The first 8 value bytes as little-endian words (VALUE is 4-byte aligned).
  readonly #oneWords: Uint32Array;
  readonly #view: X86RegisterView;
  readonly #onClose: () => void;
  readonly #io: state.VcpuIo;
  /** The KVM_RUN thread of `runAsync()`, made on first use. */
  #thread: RunThread | undefined;
  #running = false;
  #kicked = false;

  /** @internal Use `KvmVm.createVcpu()`. */
  constructor(vm: KvmVm, index: number, fd: number, run: NativeMemory, onClose: () => void) {
    this.vm = vm;
    this.index = index;
    this.#fd = fd;
    this.#run = run;
    this.#onClose = onClose;
    this.#exits = new ExitDecoder(run);
    const one = mapAnonymous(ONE_PAGE);
    if (typeof one === "number")
      throw kvmFail("mmap", one, { action: "Cannot map scratch memory" });
    this.#one = one;
    // FFI: kvm_one_reg.addr points at the value buffer in the same page, which lives as long
    // as this vCPU; it is written once here.
    one.view.setBigUint64(ONE_ADDR, one.addressOf(VALUE), true);
    this.#oneValue = one.bytes.subarray(VALUE, VALUE);
    this.#oneWords = new Uint32Array(one.bytes.buffer, VALUE, 2);
    this.#io = {
      fd: (action: string) => this.#fdFor(action),
      scratch: this.#scratch,
      msrId: (msr: number) => msrRegId(msr),
    };
    this.sync = new SyncRegs(run, vm.checkExtension(KVM_CAP.KVM_CAP_SYNC_REGS), () => {
      this.#fdFor("use the sync registers");
    });
    this.#view = new X86RegisterView(this.#io, vm);
  }

  /** True once `close()` ran. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  #fdFor(action: string): number {
    if (this.#fd < 0) throw new KvmClosedError(`vCPU ${this.index}`, action);
    // The kernel would block this thread on vcpu->mutex until the run ends: refuse instead.
    if (this.#running) throw new VcpuBusyError(this.index, action);
    return this.#fd;
  }

  /** `kvm_run.immediate_exit`: when set, KVM_RUN returns EINTR (→ `{ kind: "intr" }`) at once. */
  get immediateExit(): boolean {
    this.#fdFor("read immediate_exit");
    return this.#run.bytes[IMMEDIATE_EXIT] !== 0;
  }

  set immediateExit(on: boolean) {
    this.#fdFor("set immediate_exit");
    this.#run.bytes[IMMEDIATE_EXIT] = on ? 1 : 0;
  }

  /**
   * KVM_RUN, then the decoded exit. EINTR (immediate_exit, a signal) is `{ kind: "intr" }`.
   * @throws {KvmError} if KVM_RUN fails otherwise (e.g. EINVAL for bad sync-register bits).
   */
  run(): VcpuExit {
    const fd = this.#fd;
    if (fd < 0) throw new KvmClosedError(`vCPU ${this.index}`, "run it");
    if (this.#running) throw new VcpuBusyError(this.index, "run it");
    return this.#finish(ioctlValue(fd, RUN, 0));
  }

  /**
   * KVM_RUN on a thread of its own (a Worker per vCPU, started on first use), so the caller's
   * event loop stays free; the exit is decoded here from this thread's kvm_run mapping. Other
   * vCPU calls are refused (`VcpuBusyError`) until it settles, except `kick()`.
   * @throws {KvmError} as `run()`; {RunThreadError} if the vCPU thread died.
   */
  async runAsync(): Promise<VcpuExit> {
    const fd = this.#fdFor("run it");
    this.#thread ??= new RunThread(fd);
    this.#running = true;
    let r: number;
    try {
      r = await this.#thread.run();
    } catch (error) {
      if (this.#fd < 0) return INTR_EXIT; // closed while running: the thread was ended
      throw error;
    } finally {
      this.#running = false;
    }
    if (this.#fd < 0) return INTR_EXIT; // closed while running: the kick ended the run
    return this.#finish(r);
  }

  /**
   * Makes the run in progress return `{ kind: "intr" }` (`immediate_exit` + a signal to the
   * vCPU thread), or the next run return at once; kicks coalesce. Call it from the thread
   * that owns the vCPU (the signal goes to the `runAsync()` thread).
   */
  kick(): void {
    if (this.#fd < 0) return;
    this.#kicked = true;
    this.#run.bytes[IMMEDIATE_EXIT] = 1;
    this.#thread?.signal();
  }

  #finish(r: number): VcpuExit {
    if (r < 0) {
      if (r !== -ERRNO.EINTR)
        throw kvmFail("KVM_RUN", r, { action: `Cannot run vCPU ${this.index}` });
      if (this.#kicked) {
        // The kick is consumed by this intr; a plain immediate_exit set by the VMM stays set.
        this.#kicked = false;
        this.#run.bytes[IMMEDIATE_EXIT] = 0;
      }
      return INTR_EXIT;
    }
    return this.#exits.decode();
  }

  /**
   * KVM_SET_GUEST_DEBUG: `control` (KVM_GUESTDBG_*) and `debugreg` (DR0–DR3, DR6, DR7 in
   * slots 0–3, 6, 7). Events exit as `{ kind: "debug", pc, exception, dr6, dr7 }`. What this
   * host intercepts per mode is measured in docs/kvm-guest-debug.md (kvm_pvm delivers `int3`
   * to the guest even with USE_SW_BP).
   * @throws {TypeError} | {RangeError} for a malformed argument or control bits outside
   *   KVM_GUESTDBG_* (before any syscall: kvm_pvm would accept and ignore them).
   * @throws {KvmError} if the kernel refuses (EBUSY for an INJECT_* while an exception is
   *   pending).
   */
  setGuestDebug(debug: GuestDebug): void {
    const size = SET_GUEST_DEBUG.size;
    const bytes = new Uint8Array(size);
    encodeGuestDebug(debug, bytes);
    const fd = this.#fdFor("set guest debug");
    // FFI: the struct is built in this vCPU's scratch, which outlives the synchronous ioctl;
    // `size` is the ioctl's (72 bytes, the x86 struct kvm_guest_debug).
    const mem = this.#scratch.get(size);
    mem.bytes.set(bytes);
    const r = ioctlMem(fd, SET_GUEST_DEBUG.number, mem, 0);
    if (r < 0) {
      throw kvmFail("KVM_SET_GUEST_DEBUG", r, {
        action: `Cannot set guest debug of vCPU ${this.index}`,
      });
    }
  }

  /** The raw `exit_reason` of the last exit (for loops that avoid building exit objects). */
  exitReason(): number {
    this.#fdFor("read the exit reason");
    return this.#exits.reason();
  }

  #setOneId(id: RegId): void {
    if (id === this.#oneId) return;
    if (typeof id !== "bigint") throw new TypeError("A register id must be a bigint");
    regId(id); // RangeError outside 0..2^64-1: setBigUint64 would mask it into a real id
    this.#one.view.setBigUint64(ONE_ID, id, true);
    this.#oneId = id;
    this.#oneSize = regSize(id);
    const end = Math.min(VALUE + this.#oneSize, ONE_PAGE);
    this.#oneValue = this.#one.bytes.subarray(VALUE, end);
  }

  /**
   * Reads a register into `out` at `offset` without allocating (the ONE_REG fast path).
   * @throws {RangeError} if `out` has no room for the value.
   * @throws {KvmError} if the kernel refuses (x86: EINVAL for an unknown MSR).
   */
  getOneRegInto(id: RegId, out: Uint8Array, offset = 0): void {
    // Checked first: after close() the kvm_one_reg scratch is unmapped (its views detached).
    const fd = this.#fd;
    if (fd < 0) throw new KvmClosedError(`vCPU ${this.index}`, "read a register");
    if (id !== this.#oneId) {
      if (isPseudoRegId(id)) {
        out.set(this.#view.getPseudo(id), offset);
        return;
      }
      this.#setOneId(id);
    }
    const size = this.#oneSize;
    if (offset + size > out.length) {
      throw new RangeError(
        `No room for ${size} bytes at offset ${offset} of a ${out.length}-byte buffer`,
      );
    }
    if (size > ONE_PAGE - VALUE) throw this.#tooBig(id, "KVM_GET_ONE_REG");
    const r = ioctlMem(fd, GET_ONE_REG, this.#one, ONE_ID);
    if (r < 0) throw kvmFail("KVM_GET_ONE_REG", r, { action: "Cannot read", regId: id });
    if (size === 8) {
      // Every kernel x86 register is a U64: two word loads and eight byte stores beat both a
      // byte loop (~15 ns) and TypedArray.set() (~25 ns) here (~9 ns).
      const words = this.#oneWords;
      putU32(out, offset, words[0] ?? 0);
      putU32(out, offset + 4, words[1] ?? 0);
    } else if (size < 8) {
      const value = this.#oneValue;
      for (let i = 0; i < size; i++) out[offset + i] = value[i] ?? 0;
    } else {
      out.set(this.#oneValue, offset);
    }
  }

  /**
   * KVM_GET_ONE_REG (pseudo-register ids are served by their struct ioctl instead).
   * @throws {KvmError} if the kernel refuses.
   */
  getOneReg(id: RegId): Uint8Array {
    regId(id); // refused before the pseudo check, which looks at the low 64 bits only
    if (isPseudoRegId(id)) return this.#view.getPseudo(id);
    const out = new Uint8Array(regSize(id));
    this.getOneRegInto(id, out, 0);
    return out;
  }

  /**
   * KVM_SET_ONE_REG (pseudo-register ids go to their struct ioctl instead).
   * @throws {RangeError} if the value's size is not the id's (before any syscall).
   * @throws {KvmError} if the kernel refuses.
   */
  setOneReg(id: RegId, value: Uint8Array | bigint): void {
    const bytes = encodeRegValue(regId(id), value);
    if (isPseudoRegId(id)) {
      this.#view.setPseudo(id, bytes);
      return;
    }
    const fd = this.#fdFor("write a register");
    this.#setOneId(id);
    if (bytes.length > ONE_PAGE - VALUE) throw this.#tooBig(id, "KVM_SET_ONE_REG");
    this.#one.bytes.set(bytes, VALUE);
    const r = ioctlMem(fd, SET_ONE_REG, this.#one, ONE_ID);
    if (r < 0) throw kvmFail("KVM_SET_ONE_REG", r, { action: "Cannot set", regId: id });
  }

  // No kernel register is this large (x86 accepts U64 only); refuse as the kernel would.
  #tooBig(id: RegId, ioctl: string): KvmError {
    return new KvmError({ action: "Cannot access", ioctl, errno: ERRNO.EINVAL, regId: id });
  }

  /** Every id of the complete x86 view: REG_LIST ∪ accepted MSRs ∪ pseudo-registers. */
  regList(): RegId[] {
    return this.#view.regList();
  }

  /** KVM_GET_REG_LIST alone (the E2BIG protocol; x86 6.18 lists GUEST_SSP at most). */
  kernelRegList(): RegId[] {
    return this.#view.kernelRegList();
  }

  /** Packed values of `ids`, planned into the fewest kernel calls (see x86-view.ts). */
  getManyRegs(ids: readonly RegId[]): Uint8Array {
    return this.#view.getMany(ids);
  }

  /**
   * `getManyRegs()` into `out` (exactly Σ sizes; every byte written), for callers that reuse
   * one buffer across reads — restore's planning read, which is dropped after each restore.
   * @throws {RangeError} if `out` has the wrong length (before any syscall).
   * @throws {KvmError} naming the batch index and id of the first failure.
   */
  getManyRegsInto(ids: readonly RegId[], out: Uint8Array): void {
    this.#view.getManyInto(ids, out);
  }

  /** All-or-nothing packed write (see x86-view.ts). */
  setManyRegs(ids: readonly RegId[], bytes: Uint8Array): void {
    this.#view.setMany(ids, bytes);
  }

  /** KVM_GET_REGS as raw 144 bytes into `out` (lean path), or a new array. */
  getRegsBytes(out?: Uint8Array): Uint8Array {
    return state.getStruct(this.#io, "REGS", out);
  }

  /** KVM_SET_REGS from raw 144 bytes. */
  setRegsBytes(bytes: Uint8Array): void {
    state.setStruct(this.#io, "REGS", bytes);
  }

  /** KVM_GET_REGS, decoded. */
  getRegs(): KvmRegs {
    return decodeKvmRegs(this.getRegsBytes());
  }

  /** KVM_SET_REGS. */
  setRegs(regs: KvmRegs): void {
    this.setRegsBytes(encodeKvmRegs(regs));
  }

  /** KVM_GET_SREGS, decoded. */
  getSregs(): KvmSregs {
    return decodeKvmSregs(state.getStruct(this.#io, "SREGS"));
  }

  /** KVM_SET_SREGS. */
  setSregs(sregs: KvmSregs): void {
    state.setStruct(this.#io, "SREGS", encodeKvmSregs(sregs));
  }

  /** KVM_GET_VCPU_EVENTS, decoded. */
  getVcpuEvents(): KvmVcpuEvents {
    return decodeKvmVcpuEvents(state.getStruct(this.#io, "VCPU_EVENTS"));
  }

  /** KVM_SET_VCPU_EVENTS. */
  setVcpuEvents(events: KvmVcpuEvents): void {
    state.setStruct(this.#io, "VCPU_EVENTS", encodeKvmVcpuEvents(events));
  }

  /** KVM_GET_FPU, decoded by its layout (fpr and xmm as bytes). */
  getFpu(): StructValue {
    return decodeLayout(KVM_FPU, state.getStruct(this.#io, "FPU"));
  }

  /** KVM_SET_FPU. */
  setFpu(fpu: StructValue): void {
    state.setStruct(this.#io, "FPU", encodeLayout(KVM_FPU, fpu));
  }

  /** KVM_GET_XCRS, decoded by its layout. */
  getXcrs(): StructValue {
    return decodeLayout(KVM_XCRS, state.getStruct(this.#io, "XCRS"));
  }

  /** KVM_SET_XCRS. */
  setXcrs(xcrs: StructValue): void {
    state.setStruct(this.#io, "XCRS", encodeLayout(KVM_XCRS, xcrs));
  }

  /** KVM_GET_DEBUGREGS, decoded by its layout. */
  getDebugRegs(): StructValue {
    return decodeLayout(KVM_DEBUGREGS, state.getStruct(this.#io, "DEBUGREGS"));
  }

  /** KVM_SET_DEBUGREGS. */
  setDebugRegs(regs: StructValue): void {
    state.setStruct(this.#io, "DEBUGREGS", encodeLayout(KVM_DEBUGREGS, regs));
  }

  /** KVM_GET_XSAVE: the 4096-byte legacy XSAVE area. */
  getXsave(): Uint8Array {
    return state.getStruct(this.#io, "XSAVE");
  }

  /** KVM_SET_XSAVE. */
  setXsave(bytes: Uint8Array): void {
    state.setStruct(this.#io, "XSAVE", bytes);
  }

  /** KVM_GET_LAPIC: the 1024-byte APIC register page (needs the in-kernel irqchip). */
  getLapic(): Uint8Array {
    return state.getStruct(this.#io, "LAPIC");
  }

  /** KVM_SET_LAPIC. */
  setLapic(bytes: Uint8Array): void {
    state.setStruct(this.#io, "LAPIC", bytes);
  }

  /** KVM_GET_MP_STATE (`KVM_MP_STATE_*`). */
  getMpState(): number {
    return new DataView(state.getStruct(this.#io, "MP_STATE").buffer).getUint32(0, true);
  }

  /** KVM_SET_MP_STATE. */
  setMpState(mpState: number): void {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, mpState, true);
    state.setStruct(this.#io, "MP_STATE", bytes);
  }

  /** KVM_GET_MSRS for `indices` in one call. */
  getMsrs(indices: readonly number[]): bigint[] {
    return state.getMsrs(this.#io, indices);
  }

  /** KVM_SET_MSRS for `indices` in one call. */
  setMsrs(indices: readonly number[], values: readonly bigint[]): void {
    state.setMsrs(this.#io, indices, values);
  }

  /** KVM_GET_CPUID2, decoded. */
  getCpuid(): CpuidEntry[] {
    return decodeCpuid(state.getCpuidBytes(this.#io));
  }

  /** KVM_SET_CPUID2 from entries or raw `struct kvm_cpuid2` bytes. */
  setCpuid(table: readonly CpuidEntry[] | Uint8Array): void {
    state.setCpuidBytes(this.#io, table instanceof Uint8Array ? table : encodeCpuid(table));
  }

  /** KVM_SET_CPUID2 with everything KVM_GET_SUPPORTED_CPUID reports (what a guest needs for long mode). */
  setCpuidFromSupported(): void {
    state.setCpuidBytes(this.#io, this.vm.system.getSupportedCpuidBytes());
  }

  /** KVM_GET_TSC_KHZ. */
  getTscKhz(): number {
    return state.getTscKhz(this.#io);
  }

  /** KVM_SET_TSC_KHZ (no ioctl when the frequency is unchanged). */
  setTscKhz(khz: number): void {
    state.setTscKhz(this.#io, khz);
  }

  /** Releases the kvm_run mapping and the fd; a second call is a no-op. */
  close(): void {
    if (this.#fd < 0) return;
    if (this.#thread !== undefined) {
      // A run in progress keeps its own reference to the vCPU file; kick it out, end the thread.
      this.kick();
      this.#thread.close();
    }
    closeFd(this.#fd);
    this.#fd = -1;
    this.#run.release();
    this.#one.release();
    this.#scratch.release();
    this.#onClose();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
