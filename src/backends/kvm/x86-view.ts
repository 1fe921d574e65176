/**
 * The complete, enumerable x86 register view of docs/DESIGN.md §3 and the MANY_REGS planner.
 *
 * The view is REG_LIST (x86 6.18: GUEST_SSP at most) ∪ the MSRs of KVM_GET_MSR_INDEX_LIST
 * that this vCPU accepts (each probed once with KVM_GET_MSRS, then cached) ∪ the struct
 * pseudo-registers this vCPU can read (probed once; LAPIC needs the in-kernel irqchip).
 * Pseudo ids are served by their struct ioctl and never reach ONE_REG.
 *
 * getMany: every MSR in one KVM_GET_MSRS, each struct once, anything else by ONE_REG.
 * setMany: validate everything first (length, known pseudo ids, pseudo padding), read the
 * affected state into a native rollback area, apply in the restore order of ABI doc §13.1
 * (CPUID, TSC_KHZ, SREGS, REGS, FPU, XSAVE, XCRS, MSRs, LAPIC, IA32_TSC_DEADLINE, VCPU_EVENTS,
 * MP_STATE, DEBUGREGS, other ONE_REG ids), and on a failure write the rollback area back to
 * every step already applied before rethrowing with the failing batch index and id. With
 * duplicate ids the last value wins. Which ioctls a list needs is worked out once per list
 * (x86-layout.ts).
 */
import { Buffer } from "node:buffer";
import { ERRNO } from "../../abi/kvm/errno.js";
import { KvmError } from "../../abi/kvm/errors.js";
import { IOCTLS } from "../../abi/kvm/ioctls.js";
import { KVM_REG_LIST } from "../../abi/kvm/layouts.js";
import {
  X86_PSEUDO,
  X86_PSEUDO_LIST,
  msrIndexOf,
  msrRegId,
  pseudoRegById,
  pseudoValueFromStruct,
  structFromPseudoValue,
  type X86PseudoName,
  type X86PseudoReg,
} from "../../abi/arch/x86/index.js";
import { formatRegId, regId, regSize, type RegId } from "../../abi/regid.js";
import { kvmFail } from "./errors.js";
import { ioctlMem, viewAddress, type NativeMemory } from "./ffi.js";
import type { KvmVm } from "./vm.js";
import { LayoutCache, type ListLayout, type SetStep, type StructUse } from "./x86-layout.js";
import * as state from "./x86-state.js";
import { getU32, putU32 } from "./le-bytes.js";

function isStructName(name: X86PseudoName): name is state.StructName {
  return name !== "CPUID" && name !== "TSC_KHZ";
}

/** The x86 register view of one vCPU. */
export class X86RegisterView {
  readonly #io: state.VcpuIo;
  readonly #vm: KvmVm;
  #msrs: readonly number[] | undefined;
  #pseudo: readonly X86PseudoReg[] | undefined;
  readonly #layouts = new LayoutCache();
  // setMany nesting (an ioctl hook may call setMany): the rollback-area slot to use.
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

  /**
   * Pseudo-registers this vCPU has, found once: TSC_KHZ by KVM_CAP_GET_TSC_KHZ (a read that
   * fails must fail loudly, not drop it from the list), the structs by reading them.
   */
  availablePseudo(): readonly X86PseudoReg[] {
    if (this.#pseudo === undefined) {
      const ok: X86PseudoReg[] = [];
      for (const reg of Object.values(X86_PSEUDO)) {
        if (reg.name === "TSC_KHZ") {
          if (this.#vm.checkExtension("KVM_CAP_GET_TSC_KHZ") > 0) ok.push(reg);
          continue;
        }
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
      const problem = state.tscKhzProblem(khz);
      if (problem !== undefined) throw new RangeError(problem);
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
    const layout = this.#layouts.layout(ids);
    this.#checkKnown(ids, layout);
    // Not zero-filled: #fill() writes every byte (pseudo padding included), and the array is
    // dropped unseen if it throws. Clearing the ~24 KiB a full x86 view takes was a tenth of
    // a snapshot save's own CPU time.
    const out = uninitializedBytes(layout.total);
    this.#fill(ids, layout, out, false);
    return out;
  }

  /**
   * `getMany()` into `out`, which must be exactly the stream's length; every byte is written
   * (pseudo padding with zeros), so a buffer can be reused from call to call.
   * @throws {RangeError} if `out` has the wrong length (before any syscall).
   * @throws {KvmError} naming the batch index and id of the first failure.
   */
  getManyInto(ids: readonly RegId[], out: Uint8Array): void {
    const layout = this.#layouts.layout(ids);
    if (out.length !== layout.total) {
      throw new RangeError(
        `getManyRegsInto: ${ids.length} registers need ${layout.total} bytes, got ${out.length}`,
      );
    }
    this.#checkKnown(ids, layout);
    this.#fill(ids, layout, out, false);
  }

  #checkKnown(ids: readonly RegId[], layout: ListLayout): void {
    if (layout.unknownAt !== undefined) {
      this.#known(at(ids, layout.unknownAt), "KVM_GET_ONE_REG", layout.unknownAt);
    }
  }

  /** Reads every value of `layout` into `out`; `zeroed`: the pseudo padding is zero already. */
  #fill(ids: readonly RegId[], layout: ListLayout, out: Uint8Array, zeroed: boolean): void {
    const fd = this.#io.fd("read registers");
    // With the addon, structs are read straight into `out` (layout.total bytes, checked by
    // the callers); without it, through native scratch and a copy.
    const base = layout.structs.length > 0 ? viewAddress(out) : undefined;
    // What is being read, for the error: the batch indices it serves (and MSR numbers).
    let where: readonly number[] = [];
    let msrs: readonly number[] | undefined;
    try {
      const batch = layout.msrs;
      if (batch !== undefined) {
        ({ where, msrs } = batch);
        const mem = this.#io.scratch.get(batch.request.length);
        mem.bytes.set(batch.request);
        state.msrsAt(this.#io, fd, false, mem, 0, batch.msrs);
        state.msrValuesOut(mem, 0, out, batch.at);
        msrs = undefined;
      }
      for (const use of layout.structs) {
        where = use.where;
        const first = at(use.at, 0);
        const written = this.#readPseudoInto(fd, use, out, first, base);
        if (!zeroed) out.fill(0, first + written, first + use.reg.size);
        for (let k = 1; k < use.at.length; k++) {
          out.copyWithin(at(use.at, k), first, first + use.reg.size);
        }
      }
      for (const i of layout.others) {
        where = [i];
        this.#readOneInto(fd, at(ids, i), out, at(layout.offsets, i));
      }
    } catch (error) {
      throw batchError("Cannot read", ids, where, msrs, error);
    }
  }

  /**
   * Reads a pseudo-register's struct bytes into `out` at `offset`; returns how many. `base`:
   * the address of `out` (viewAddress()) when the kernel may write there directly.
   */
  #readPseudoInto(
    fd: number,
    use: StructUse,
    out: Uint8Array,
    offset: number,
    base: number | undefined,
  ): number {
    const { reg } = use;
    const scratch = this.#io.scratch;
    if (reg.name === "CPUID") {
      // The value (16 KiB) has room for the largest table the kernel writes.
      if (base !== undefined) return state.readCpuidTo(fd, out, offset, base + offset);
      const at = state.CPUID_READ_AT;
      const mem = scratch.get(at + state.CPUID_MAX_BYTES);
      const length = state.readCpuidAt(fd, mem, at);
      out.set(mem.bytes.subarray(at, at + length), offset);
      return length;
    }
    if (reg.name === "TSC_KHZ") {
      putU32(out, offset, state.getTscKhz(this.#io));
      return 4;
    }
    const spec = use.spec ?? state.STRUCT_IOCTLS[reg.name];
    if (base !== undefined) {
      // The value is the struct plus padding, so spec.size bytes from `offset` are in `out`.
      state.readStructTo(fd, spec, base + offset);
      return spec.size;
    }
    state.readStructAt(fd, spec, scratch.get(spec.size), 0);
    out.set(scratch.prefix(spec.size), offset);
    return spec.size;
  }

  #readOneInto(fd: number, id: RegId, out: Uint8Array, offset: number): void {
    const size = regSize(id);
    const mem = this.#io.scratch.get(state.ONE_REG_VALUE + size);
    state.oneRegAt(mem, 0, id);
    state.oneRegIoctlAt(fd, false, mem, 0, id);
    out.set(mem.bytes.subarray(state.ONE_REG_VALUE, state.ONE_REG_VALUE + size), offset);
  }

  /**
   * Writes a packed stream, all-or-nothing: everything is validated first, then each step's
   * current state is read into the rollback area, then the steps are applied in order; if
   * one fails, every step up to it is written back from the rollback area.
   * @throws {RangeError} if the stream length or a pseudo value's padding is wrong.
   * @throws {KvmError} naming the failing batch index and id; the vCPU is left as before.
   */
  setMany(ids: readonly RegId[], bytes: Uint8Array): void {
    const layout = this.#layouts.layout(ids);
    if (bytes.length !== layout.total) {
      throw new RangeError(
        `setManyRegs: ${ids.length} registers need ${layout.total} bytes, got ${bytes.length}`,
      );
    }
    this.#checkPseudo(layout, ids, bytes);
    const plan = this.#layouts.setPlan(layout);
    checkTscSteps(ids, plan.steps, bytes);
    const fd = this.#io.fd("write registers");
    // The rollback copies stay in native memory where the GET ioctls put them and are written
    // back from there (no copy through JS). A nested call — from an ioctl hook — gets the
    // next slot, so it cannot overwrite the copies of the call around it.
    const depth = this.#setDepth++;
    try {
      const saved = this.#io.scratch.side(depth, plan.saveBytes);
      this.#applySteps(fd, ids, bytes, plan.steps, saved);
    } finally {
      this.#setDepth--;
    }
  }

  /**
   * Checks the pseudo entries in batch order (padding, then the first unknown id) before any
   * syscall.
   */
  #checkPseudo(layout: ListLayout, ids: readonly RegId[], bytes: Uint8Array): void {
    const unknownAt = layout.unknownAt;
    for (const p of layout.padded) {
      if (unknownAt !== undefined && p.index > unknownAt) break;
      if (!zeroRange(bytes, p.from, p.to)) {
        throw new RangeError(
          `setManyRegs entry ${p.index} (${formatRegId(at(ids, p.index))}): ${p.reg.name} value has non-zero padding after byte ${p.reg.structSize}`,
        );
      }
    }
    if (unknownAt !== undefined) this.#known(at(ids, unknownAt), "KVM_SET_ONE_REG", unknownAt);
  }

  #applySteps(
    fd: number,
    ids: readonly RegId[],
    bytes: Uint8Array,
    steps: readonly SetStep[],
    saved: NativeMemory,
  ): void {
    let current: SetStep | undefined;
    try {
      for (const step of steps) {
        current = step;
        this.#save(fd, step, saved);
      }
    } catch (error) {
      throw stepError(ids, current, error);
    }
    let done = 0;
    try {
      for (const step of steps) {
        current = step;
        this.#write(fd, step, bytes);
        done++;
      }
    } catch (error) {
      // Undo: the failing step may have been partly applied (KVM_SET_MSRS stops midway), so
      // it is written back too. Failures here are ignored: the original error is what matters.
      for (let k = 0; k <= done && k < steps.length; k++) {
        try {
          this.#writeBack(fd, at(steps, k), saved);
        } catch {
          // best effort
        }
      }
      throw stepError(ids, current, error);
    }
  }

  /** Reads what `step` will overwrite into `saved` at its `saveAt`. */
  #save(fd: number, step: SetStep, saved: NativeMemory): void {
    switch (step.kind) {
      case "struct":
        state.readStructAt(fd, step.spec, saved, step.saveAt);
        return;
      case "cpuid":
        state.readCpuidAt(fd, saved, step.saveAt);
        return;
      case "tsc":
        saved.view.setUint32(step.saveAt, state.getTscKhz(this.#io), true);
        return;
      case "msrs":
        saved.bytes.set(step.batch.request, step.saveAt);
        state.msrsAt(this.#io, fd, false, saved, step.saveAt, step.batch.msrs);
        return;
      case "one":
        state.oneRegAt(saved, step.saveAt, step.id);
        state.oneRegIoctlAt(fd, false, saved, step.saveAt, step.id);
        return;
    }
  }

  /** Applies `step` with its new value from the stream. */
  #write(fd: number, step: SetStep, bytes: Uint8Array): void {
    const scratch = this.#io.scratch;
    switch (step.kind) {
      case "struct": {
        // setMany() checked that `bytes` is the whole stream, so the struct lies inside it.
        const size = step.spec.size;
        const base = viewAddress(bytes);
        if (base !== undefined) {
          state.writeStructFrom(fd, step.spec, base + step.from);
          return;
        }
        const mem = scratch.get(size);
        mem.bytes.set(valueOf(bytes, step.from, size));
        state.writeStructAt(fd, step.spec, mem, 0);
        return;
      }
      case "cpuid": {
        const value = valueOf(bytes, step.from, step.size);
        const base = viewAddress(bytes);
        if (base !== undefined) state.setCpuidFrom(this.#io, value, base + step.from);
        else state.setCpuidBytes(this.#io, value);
        return;
      }
      case "tsc":
        // checkTscSteps() refused a value above u32 before any syscall.
        state.setTscKhz(this.#io, getU32(bytes, step.from));
        return;
      case "msrs": {
        const batch = step.batch;
        const mem = scratch.get(batch.request.length);
        mem.bytes.set(batch.request);
        state.msrValuesIn(mem, 0, bytes, batch.at);
        state.msrsAt(this.#io, fd, true, mem, 0, batch.msrs);
        return;
      }
      case "one": {
        const mem = scratch.get(state.ONE_REG_VALUE + step.size);
        state.oneRegAt(mem, 0, step.id);
        mem.bytes.set(bytes.subarray(step.from, step.from + step.size), state.ONE_REG_VALUE);
        state.oneRegIoctlAt(fd, true, mem, 0, step.id);
        return;
      }
    }
  }

  /** Writes back what `#save()` read. */
  #writeBack(fd: number, step: SetStep, saved: NativeMemory): void {
    switch (step.kind) {
      case "struct":
        state.writeStructAt(fd, step.spec, saved, step.saveAt);
        return;
      case "cpuid":
        state.writeCpuidAt(fd, saved, step.saveAt);
        return;
      case "tsc":
        state.setTscKhz(this.#io, saved.view.getUint32(step.saveAt, true));
        return;
      case "msrs":
        state.msrsAt(this.#io, fd, true, saved, step.saveAt, step.batch.msrs);
        return;
      case "one":
        state.oneRegIoctlAt(fd, true, saved, step.saveAt, step.id);
        return;
    }
  }
}

/**
 * The error a failed kernel call of a batch surfaces as: a `KvmError` naming the batch index
 * and id it concerns — for an MSR call the entry whose MSR the kernel refused, otherwise the
 * first index the call serves. Anything but a `KvmError` passes through.
 */
function batchError(
  action: string,
  ids: readonly RegId[],
  where: readonly number[],
  msrs: readonly number[] | undefined,
  error: unknown,
): unknown {
  if (!(error instanceof KvmError)) return error;
  let k = 0;
  if (msrs !== undefined && error.regId !== undefined) {
    k = Math.max(0, msrs.indexOf(msrIndexOf(error.regId) ?? -1));
  }
  const index = at(where, k);
  return new KvmError(
    { action, ioctl: error.ioctl, errno: error.errno, regId: at(ids, index), index },
    { cause: error },
  );
}

/**
 * Refuses, before any syscall, a TSC_KHZ value that would not read back (x86-state.ts).
 * @throws {RangeError} naming the batch entry.
 */
function checkTscSteps(ids: readonly RegId[], steps: readonly SetStep[], bytes: Uint8Array): void {
  for (const step of steps) {
    if (step.kind !== "tsc") continue;
    const khz = (BigInt(getU32(bytes, step.from + 4)) << 32n) | BigInt(getU32(bytes, step.from));
    const problem = state.tscKhzProblem(khz);
    if (problem !== undefined) {
      throw new RangeError(
        `setManyRegs entry ${step.index} (${formatRegId(at(ids, step.index))}): ${problem}`,
      );
    }
  }
}

function stepError(ids: readonly RegId[], step: SetStep | undefined, error: unknown): unknown {
  if (step === undefined) return error;
  if (step.kind === "msrs") {
    return batchError("Cannot set", ids, step.batch.where, step.batch.msrs, error);
  }
  return batchError("Cannot set", ids, [step.index], undefined, error);
}

// Zeros to compare pseudo padding against, as long as the longest padding (CPUID's).
const ZEROS = Buffer.alloc(Math.max(...X86_PSEUDO_LIST.map((r) => r.size - r.structSize)));

/**
 * True when `bytes[from, to)` are all zero. A memcmp against zeros (Buffer#compare): the
 * CPUID value carries ~6 KiB of padding, checked on every restore, and a JS loop over it
 * took ~1 µs.
 */
function zeroRange(bytes: Uint8Array, from: number, to: number): boolean {
  return ZEROS.compare(bytes, from, to, 0, to - from) === 0;
}

/**
 * `bytes[from, from + size)`: `bytes` itself when that is all of it — restore writes one
 * struct per phase, so most struct steps get a stream of just their value — else a view. A
 * view is a ~100-byte heap object, and these were a tenth of a save + restore's garbage.
 */
function valueOf(bytes: Uint8Array, from: number, size: number): Uint8Array {
  return from === 0 && size === bytes.length ? bytes : bytes.subarray(from, from + size);
}

/**
 * A Uint8Array of `length` bytes whose contents are whatever the allocator had: for buffers
 * the caller fills completely before anyone sees them. A plain Uint8Array (not a Buffer, whose
 * `slice()` shares memory) over the unpooled ArrayBuffer of `Buffer.allocUnsafeSlow()`.
 */
function uninitializedBytes(length: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(length);
  return new Uint8Array(b.buffer, b.byteOffset, length);
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
