/**
 * The complete, enumerable x86 register view of DESIGN.md §3 and the MANY_REGS planner.
 *
 * The view is REG_LIST (x86 6.18: GUEST_SSP at most) ∪ the MSRs of KVM_GET_MSR_INDEX_LIST
 * that this vCPU accepts (each probed once with KVM_GET_MSRS, then cached) ∪ the struct
 * pseudo-registers this vCPU can read (probed once; LAPIC needs the in-kernel irqchip).
 * Pseudo ids are served by their struct ioctl and never reach ONE_REG.
 *
 * getMany: every MSR in one KVM_GET_MSRS, each struct once, anything else by ONE_REG.
 * setMany: validate everything first (length, known pseudo ids, pseudo padding), snapshot the
 * affected state, apply in the restore order of ABI doc §13.1 (CPUID, TSC_KHZ, SREGS, REGS,
 * FPU, XSAVE, XCRS, MSRs, LAPIC, IA32_TSC_DEADLINE, VCPU_EVENTS, MP_STATE, DEBUGREGS, other
 * ONE_REG ids), and on a failure write the snapshot back to every step already applied before
 * rethrowing with the failing batch index and id. With duplicate ids the last value wins.
 */
import { ERRNO } from "../../abi/kvm/errno.js";
import { KvmError } from "../../abi/kvm/errors.js";
import { IOCTLS } from "../../abi/kvm/ioctls.js";
import { KVM_REG_LIST } from "../../abi/kvm/layouts.js";
import {
  X86_PSEUDO,
  msrIndexOf,
  msrRegId,
  pseudoRegById,
  pseudoStructView,
  pseudoValueFromStruct,
  structFromPseudoValue,
  type X86PseudoName,
  type X86PseudoReg,
} from "../../abi/arch/x86/index.js";
import { formatRegId, regId, regSize, type RegId } from "../../abi/regid.js";
import { kvmFail } from "./errors.js";
import { ioctlMem } from "./ffi.js";
import type { KvmVm } from "./vm.js";
import { LayoutCache, type ListLayout, type SetStep } from "./x86-layout.js";
import * as state from "./x86-state.js";

const GET_ONE_REG = IOCTLS.KVM_GET_ONE_REG.number;
const SET_ONE_REG = IOCTLS.KVM_SET_ONE_REG.number;

function isStructName(name: X86PseudoName): name is state.StructName {
  return name !== "CPUID" && name !== "TSC_KHZ";
}

/** A failure inside a planned step, to be mapped back to a batch index. */
class StepError extends Error {
  constructor(
    readonly batchIndex: number,
    readonly kvm: KvmError,
  ) {
    super(kvm.message, { cause: kvm });
  }
}

/** The x86 register view of one vCPU. */
export class X86RegisterView {
  readonly #io: state.VcpuIo;
  readonly #vm: KvmVm;
  #msrs: readonly number[] | undefined;
  #pseudo: readonly X86PseudoReg[] | undefined;
  readonly #layouts = new LayoutCache();
  // Rollback buffers reused across setMany calls (see #readStep), and the setMany nesting.
  readonly #savedBufs = new WeakMap<SetStep, Uint8Array>();
  #setDepth = 0;
  // The last whole view and the kernel list it was built from: the MSR and pseudo parts are
  // probed once, so the view changes only when REG_LIST does (GUEST_SSP follows CPUID).
  #view: { readonly kernel: readonly RegId[]; readonly ids: readonly RegId[] } | undefined;

  constructor(io: state.VcpuIo, vm: KvmVm) {
    this.#io = io;
    this.#vm = vm;
  }

  /** KVM_GET_REG_LIST with the E2BIG protocol: probe with n = 0, then loop while n changes. */
  kernelRegList(): RegId[] {
    const fd = this.#io.fd("list registers");
    const head = KVM_REG_LIST.fields.reg.offset;
    let n = 0;
    for (;;) {
      const mem = this.#io.scratch.get(head + 8 * n);
      mem.view.setBigUint64(KVM_REG_LIST.fields.n.offset, BigInt(n), true);
      // FFI: vCPU scratch with room for n ids, the capacity passed in kvm_reg_list.n.
      const r = ioctlMem(fd, IOCTLS.KVM_GET_REG_LIST.number, mem, 0);
      const count = Number(mem.view.getBigUint64(KVM_REG_LIST.fields.n.offset, true));
      if (r === -ERRNO.E2BIG && count > n) {
        n = count;
        continue;
      }
      if (r < 0) throw kvmFail("KVM_GET_REG_LIST", r, { action: "Cannot list registers" });
      const out: RegId[] = [];
      for (let i = 0; i < count; i++) out.push(regId(mem.view.getBigUint64(head + 8 * i, true)));
      return out;
    }
  }

  /** MSR indices this vCPU accepts, probed once. */
  acceptedMsrs(): readonly number[] {
    this.#msrs ??= Object.freeze(state.probeMsrs(this.#io, this.#vm.system.getMsrIndexList()));
    return this.#msrs;
  }

  /** Pseudo-registers this vCPU can read, probed once. */
  availablePseudo(): readonly X86PseudoReg[] {
    if (this.#pseudo === undefined) {
      const ok: X86PseudoReg[] = [];
      for (const reg of Object.values(X86_PSEUDO)) {
        try {
          this.#readPseudo(reg);
          ok.push(reg);
        } catch (error) {
          if (!(error instanceof KvmError)) throw error;
        }
      }
      this.#pseudo = Object.freeze(ok.sort((a, b) => a.index - b.index));
    }
    return this.#pseudo;
  }

  /** The whole view, in the order: kernel list, MSRs, pseudo-registers. */
  regList(): RegId[] {
    const kernel = this.kernelRegList();
    const last = this.#view;
    if (last !== undefined && sameIds(last.kernel, kernel)) return [...last.ids];
    const ids = [...kernel];
    const seen = new Set<bigint>(ids);
    for (const msr of this.acceptedMsrs()) {
      const id = msrRegId(msr);
      if (!seen.has(id)) {
        seen.add(id);
        ids.push(id);
      }
    }
    for (const reg of this.availablePseudo()) ids.push(reg.id);
    this.#view = { kernel, ids: [...ids] };
    return ids;
  }

  #readStructBytes(reg: X86PseudoReg): Uint8Array {
    if (reg.name === "CPUID") {
      const out = new Uint8Array(reg.structSize);
      out.set(state.getCpuidBytes(this.#io));
      return out;
    }
    if (reg.name === "TSC_KHZ") {
      const out = new Uint8Array(8);
      new DataView(out.buffer).setBigUint64(0, BigInt(state.getTscKhz(this.#io)), true);
      return out;
    }
    return state.getStruct(this.#io, reg.name);
  }

  #readPseudo(reg: X86PseudoReg): Uint8Array {
    return pseudoValueFromStruct(reg, this.#readStructBytes(reg));
  }

  #writeStruct(reg: X86PseudoReg, struct: Uint8Array): void {
    if (reg.name === "CPUID") state.setCpuidBytes(this.#io, struct);
    else if (reg.name === "TSC_KHZ") {
      const khz = new DataView(struct.buffer, struct.byteOffset).getBigUint64(0, true);
      if (khz > 0xffffffffn) throw new RangeError(`TSC_KHZ ${khz} does not fit in u32`);
      state.setTscKhz(this.#io, Number(khz));
    } else if (isStructName(reg.name)) state.setStruct(this.#io, reg.name, struct);
  }

  #known(id: RegId, ioctl: string, index?: number): X86PseudoReg {
    const reg = pseudoRegById(id);
    if (reg === undefined) {
      // The kernel rejects type 0xff with EINVAL (arch/x86/kvm/x86.c); answer the same way
      // without sending it.
      throw new KvmError({
        action: ioctl === "KVM_GET_ONE_REG" ? "Cannot read" : "Cannot set",
        ioctl,
        errno: ERRNO.EINVAL,
        regId: id,
        ...(index === undefined ? {} : { index }),
        hint: "unknown regvisor pseudo-register",
      });
    }
    return reg;
  }

  /** A pseudo-register's value (struct bytes + zero padding to the id's size). */
  getPseudo(id: RegId): Uint8Array {
    return this.#readPseudo(this.#known(id, "KVM_GET_ONE_REG"));
  }

  /**
   * Writes a pseudo-register.
   * @throws {RangeError} if the value's size or padding is wrong (before any syscall).
   */
  setPseudo(id: RegId, value: Uint8Array): void {
    const reg = this.#known(id, "KVM_SET_ONE_REG");
    this.#writeStruct(reg, structFromPseudoValue(reg, value));
  }

  /**
   * Reads `ids` into one packed stream: all MSRs with one KVM_GET_MSRS, each struct once,
   * other ids by ONE_REG.
   * @throws {KvmError} naming the batch index and id of the first failure.
   */
  getMany(ids: readonly RegId[]): Uint8Array {
    return rethrowWithIndex(ids, "Cannot read", () => this.#getMany(ids));
  }

  #getMany(ids: readonly RegId[]): Uint8Array {
    const layout = this.#layouts.layout(ids);
    if (layout.unknownAt !== undefined) {
      this.#known(at(ids, layout.unknownAt), "KVM_GET_ONE_REG", layout.unknownAt);
    }
    const offsets = layout.offsets;
    // Zero-filled, which is the padding of every pseudo value read below.
    const out = new Uint8Array(layout.total);
    this.#io.fd("read registers");
    if (layout.msrAt.length > 0) {
      const msrOffsets = layout.msrAt.map((i) => at(offsets, i));
      this.#batch(
        layout.msrAt,
        () => {
          state.getMsrsInto(this.#io, layout.msrIndices, out, msrOffsets);
        },
        layout.msrIndices,
      );
    }
    for (const { reg, where } of layout.structs) {
      const first = at(offsets, at(where, 0));
      this.#batch(where, () => {
        this.#readPseudoInto(reg, out, first);
      });
      for (let k = 1; k < where.length; k++) {
        out.copyWithin(at(offsets, at(where, k)), first, first + reg.size);
      }
    }
    for (const i of layout.others) {
      const value = this.#batch([i], () => this.#oneReg(GET_ONE_REG, at(ids, i)));
      out.set(value, at(offsets, i));
    }
    return out;
  }

  /** Reads a pseudo-register's struct bytes into zeroed `out` at `offset`. */
  #readPseudoInto(reg: X86PseudoReg, out: Uint8Array, offset: number): void {
    if (reg.name === "CPUID") state.getCpuidInto(this.#io, out, offset);
    else if (reg.name === "TSC_KHZ") {
      const khz = state.getTscKhz(this.#io);
      new DataView(out.buffer, out.byteOffset).setUint32(offset, khz, true);
    } else if (isStructName(reg.name)) state.getStruct(this.#io, reg.name, out, offset);
  }

  #oneReg(request: number, id: RegId, value?: Uint8Array): Uint8Array {
    const size = regSize(id);
    const mem = this.#io.scratch.get(16 + size);
    mem.view.setBigUint64(0, id, true);
    // FFI: kvm_one_reg.addr points 16 bytes further into the same scratch page.
    mem.view.setBigUint64(8, mem.addressOf(16), true);
    if (value !== undefined) mem.bytes.set(value, 16);
    const r = ioctlMem(this.#io.fd("access a register"), request, mem, 0);
    const name = request === GET_ONE_REG ? "KVM_GET_ONE_REG" : "KVM_SET_ONE_REG";
    const action = request === GET_ONE_REG ? "Cannot read" : "Cannot set";
    if (r < 0) throw kvmFail(name, r, { action, regId: id });
    return mem.bytes.slice(16, 16 + size);
  }

  /**
   * Runs one planned step; maps a KvmError to the batch index it concerns: for MSR batches,
   * the entry whose MSR the error names, otherwise the first index of the step.
   */
  #batch<T>(where: readonly number[], step: () => T, msrIndices?: readonly number[]): T {
    try {
      return step();
    } catch (error) {
      if (!(error instanceof KvmError)) throw error;
      let k = 0;
      if (msrIndices !== undefined && error.regId !== undefined) {
        const msr = msrIndexOf(error.regId);
        k = Math.max(0, msrIndices.indexOf(msr ?? -1));
      }
      throw new StepError(at(where, k), error);
    }
  }

  /**
   * Writes a packed stream, all-or-nothing.
   * @throws {RangeError} if the stream length or a pseudo value's padding is wrong.
   * @throws {KvmError} naming the failing batch index and id; the vCPU is left as before.
   */
  setMany(ids: readonly RegId[], bytes: Uint8Array): void {
    this.#setDepth++;
    try {
      rethrowWithIndex(ids, "Cannot set", () => {
        this.#setMany(ids, bytes);
      });
    } finally {
      this.#setDepth--;
    }
  }

  #setMany(ids: readonly RegId[], bytes: Uint8Array): void {
    const layout = this.#layouts.layout(ids);
    if (bytes.length !== layout.total) {
      throw new RangeError(
        `setManyRegs: ${ids.length} registers need ${layout.total} bytes, got ${bytes.length}`,
      );
    }
    const structs = this.#checkPseudo(layout, bytes);
    const steps = this.#layouts.steps(layout);
    this.#io.fd("write registers");
    const before = steps.map((step) => this.#readStep(step));
    let done = 0;
    try {
      for (const step of steps) {
        this.#applyNew(step, layout, bytes, structs);
        done++;
      }
    } catch (error) {
      // Undo: the failing step may have been partly applied (KVM_SET_MSRS stops midway), so
      // it is restored too. Restore failures are ignored: the original error is what matters.
      for (let k = 0; k <= done && k < steps.length; k++) {
        try {
          this.#applySaved(at(steps, k), at(before, k));
        } catch {
          // best effort
        }
      }
      throw error;
    }
  }

  /**
   * Checks every pseudo entry in batch order (unknown id, value padding) before any syscall;
   * returns the struct bytes of each pseudo entry by batch index (views into `bytes`).
   */
  #checkPseudo(layout: ListLayout, bytes: Uint8Array): (Uint8Array | undefined)[] {
    const structs: (Uint8Array | undefined)[] = [];
    for (const i of layout.pseudoAt) {
      const id = at(layout.ids, i);
      const reg = layout.pseudoRegs[i] ?? this.#known(id, "KVM_SET_ONE_REG", i);
      const from = at(layout.offsets, i);
      const value = bytes.subarray(from, from + reg.size);
      structs[i] = withIndex(i, id, () => pseudoStructView(reg, value));
    }
    return structs;
  }

  /**
   * The current value of what `step` writes, for the rollback, in a buffer reused by later
   * calls with the same (cached) step: the copy lives only during one setMany, which is
   * synchronous, and allocating fresh ArrayBuffers for CPUID, XSAVE, LAPIC and the MSRs cost
   * more than the ioctls that fill them (~1.7 µs per 4 KiB buffer). A nested setMany (from an
   * ioctl hook) gets fresh buffers.
   */
  #readStep(step: SetStep): Uint8Array {
    const reuse = this.#setDepth === 1;
    const known = reuse ? this.#savedBufs.get(step) : undefined;
    if (step.kind === "struct") {
      const reg = step.reg;
      return this.#batch([step.index], () => {
        if (reg.name === "TSC_KHZ" || !reuse) return this.#readStructBytes(reg);
        const buf = known ?? this.#keep(step, new Uint8Array(reg.structSize));
        if (reg.name === "CPUID") state.getCpuidInto(this.#io, buf, 0);
        else if (isStructName(reg.name)) state.getStruct(this.#io, reg.name, buf, 0);
        return buf;
      });
    }
    if (step.kind === "msrs") {
      const out = known ?? this.#keep(step, new Uint8Array(8 * step.msrs.length), reuse);
      const offsets = step.msrs.map((_, k) => 8 * k);
      this.#batch(
        step.where,
        () => {
          state.getMsrsInto(this.#io, step.msrs, out, offsets);
        },
        step.msrs,
      );
      return out;
    }
    return this.#batch([step.index], () => this.#oneReg(GET_ONE_REG, step.id));
  }

  #keep(step: SetStep, buf: Uint8Array, reuse = true): Uint8Array {
    if (reuse) this.#savedBufs.set(step, buf);
    return buf;
  }

  #applyNew(
    step: SetStep,
    layout: ListLayout,
    bytes: Uint8Array,
    structs: readonly (Uint8Array | undefined)[],
  ): void {
    if (step.kind === "struct") {
      const struct = structs[step.index];
      if (struct === undefined) throw new Error("setMany: struct entry was not checked");
      this.#batch([step.index], () => {
        this.#writeStruct(step.reg, struct);
      });
    } else if (step.kind === "msrs") {
      const offsets = step.where.map((i) => at(layout.offsets, i));
      this.#batch(
        step.where,
        () => {
          state.setMsrsFrom(this.#io, step.msrs, bytes, offsets);
        },
        step.msrs,
      );
    } else {
      const from = at(layout.offsets, step.index);
      const value = bytes.subarray(from, from + regSize(step.id));
      this.#batch([step.index], () => this.#oneReg(SET_ONE_REG, step.id, value));
    }
  }

  /** Writes back what `#readStep()` read. */
  #applySaved(step: SetStep, saved: Uint8Array): void {
    if (step.kind === "struct") {
      this.#batch([step.index], () => {
        this.#writeStruct(step.reg, saved);
      });
    } else if (step.kind === "msrs") {
      const offsets = step.msrs.map((_, k) => 8 * k);
      this.#batch(
        step.where,
        () => {
          state.setMsrsFrom(this.#io, step.msrs, saved, offsets);
        },
        step.msrs,
      );
    } else {
      this.#batch([step.index], () => this.#oneReg(SET_ONE_REG, step.id, saved));
    }
  }
}

/** Runs `fn`, turning a `StepError` into the `KvmError` that names the batch index and id. */
function rethrowWithIndex<T>(ids: readonly RegId[], action: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (!(error instanceof StepError)) throw error;
    const inner = error.kvm;
    throw new KvmError(
      {
        action,
        ioctl: inner.ioctl,
        errno: inner.errno,
        regId: at(ids, error.batchIndex),
        index: error.batchIndex,
      },
      { cause: inner },
    );
  }
}

function withIndex<T>(index: number, id: RegId, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof RangeError) {
      throw new RangeError(`setManyRegs entry ${index} (${formatRegId(id)}): ${error.message}`);
    }
    throw error;
  }
}

function sameIds(a: readonly RegId[], b: readonly RegId[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function at<T>(list: readonly T[], i: number): T {
  const value = list[i];
  if (value === undefined) throw new RangeError(`index ${i} out of range`);
  return value;
}

/** Byte offset of each id's value in a packed stream, and the total length. */
export function packOffsets(ids: readonly RegId[]): { at: number[]; total: number } {
  const offsets: number[] = [];
  let total = 0;
  for (const id of ids) {
    if (typeof id !== "bigint") throw new TypeError("Register ids must be bigints");
    offsets.push(total);
    total += regSize(id);
  }
  return { at: offsets, total };
}
