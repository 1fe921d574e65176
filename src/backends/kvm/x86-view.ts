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
  isPseudoRegId,
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
import { ioctlMem } from "./ffi.js";
import type { KvmVm } from "./vm.js";
import * as state from "./x86-state.js";

// IA32_TSC_DEADLINE must be written after KVM_SET_LAPIC (ABI doc §13.1).
const MSR_TSC_DEADLINE = 0x6e0;
const GET_ONE_REG = IOCTLS.KVM_GET_ONE_REG.number;
const SET_ONE_REG = IOCTLS.KVM_SET_ONE_REG.number;

/** Order in which struct pseudo-registers are restored (ABI doc §13.1). */
const SET_ORDER_BEFORE_MSRS: readonly X86PseudoName[] = [
  "CPUID",
  "TSC_KHZ",
  "SREGS",
  "REGS",
  "FPU",
  "XSAVE",
  "XCRS",
];
const SET_ORDER_AFTER_MSRS: readonly X86PseudoName[] = ["VCPU_EVENTS", "MP_STATE", "DEBUGREGS"];

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
    const ids = [...this.kernelRegList()];
    const seen = new Set<bigint>(ids);
    for (const msr of this.acceptedMsrs()) {
      const id = msrRegId(msr);
      if (!seen.has(id)) {
        seen.add(id);
        ids.push(id);
      }
    }
    for (const reg of this.availablePseudo()) ids.push(reg.id);
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
    const offsets = packOffsets(ids);
    const out = new Uint8Array(offsets.total);
    const msrAt: number[] = [];
    const structs = new Map<X86PseudoReg, number[]>();
    const others: number[] = [];
    ids.forEach((id, i) => {
      if (isPseudoRegId(id)) {
        const reg = this.#known(id, "KVM_GET_ONE_REG", i);
        structs.set(reg, [...(structs.get(reg) ?? []), i]);
      } else if (msrIndexOf(id) !== undefined) msrAt.push(i);
      else others.push(i);
    });
    this.#io.fd("read registers");
    if (msrAt.length > 0) {
      const indices = msrAt.map((i) => msrIndexOf(at(ids, i)) ?? 0);
      const values = this.#batch(msrAt, () => state.getMsrs(this.#io, indices), indices);
      msrAt.forEach((i, k) => {
        new DataView(out.buffer).setBigUint64(at(offsets.at, i), values[k] ?? 0n, true);
      });
    }
    for (const [reg, where] of structs) {
      const value = this.#batch(where, () => this.#readPseudo(reg));
      for (const i of where) out.set(value, at(offsets.at, i));
    }
    for (const i of others) {
      const value = this.#batch([i], () => this.#oneReg(GET_ONE_REG, at(ids, i)));
      out.set(value, at(offsets.at, i));
    }
    return out;
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
    rethrowWithIndex(ids, "Cannot set", () => {
      this.#setMany(ids, bytes);
    });
  }

  #setMany(ids: readonly RegId[], bytes: Uint8Array): void {
    const offsets = packOffsets(ids);
    if (bytes.length !== offsets.total) {
      throw new RangeError(
        `setManyRegs: ${ids.length} registers need ${offsets.total} bytes, got ${bytes.length}`,
      );
    }
    const plan = this.#plan(ids, bytes, offsets.at);
    this.#io.fd("write registers");
    const before = this.#snapshot(plan);
    const done: Step[] = [];
    try {
      for (const step of plan) {
        this.#apply(step, step.values);
        done.push(step);
      }
    } catch (error) {
      // Undo: the failing step may have been partly applied (KVM_SET_MSRS stops midway), so
      // it is restored too. Restore failures are ignored: the original error is what matters.
      const failing = plan[done.length];
      for (const step of failing === undefined ? done : [...done, failing]) {
        try {
          this.#apply(step, before.get(step) ?? step.values);
        } catch {
          // best effort
        }
      }
      throw error;
    }
  }

  #plan(ids: readonly RegId[], bytes: Uint8Array, offsets: readonly number[]): Step[] {
    const structs = new Map<X86PseudoName, { index: number; struct: Uint8Array }>();
    const msrs = new Map<number, { index: number; value: bigint }>();
    const others = new Map<RegId, { index: number; value: Uint8Array }>();
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    ids.forEach((id, i) => {
      const from = at(offsets, i);
      const value = bytes.subarray(from, from + regSize(id));
      if (isPseudoRegId(id)) {
        const reg = this.#known(id, "KVM_SET_ONE_REG", i);
        const struct = withIndex(i, id, () => structFromPseudoValue(reg, value));
        structs.set(reg.name, { index: i, struct });
        return;
      }
      const msr = msrIndexOf(id);
      if (msr !== undefined) msrs.set(msr, { index: i, value: view.getBigUint64(from, true) });
      else others.set(id, { index: i, value: value.slice() });
    });
    const steps: Step[] = [];
    const structStep = (name: X86PseudoName): void => {
      const entry = structs.get(name);
      if (entry !== undefined)
        steps.push({
          kind: "struct",
          reg: X86_PSEUDO[name],
          index: entry.index,
          values: entry.struct,
        });
    };
    SET_ORDER_BEFORE_MSRS.forEach(structStep);
    const early = [...msrs].filter(([msr]) => msr !== MSR_TSC_DEADLINE);
    if (early.length > 0) steps.push(msrStep(early));
    structStep("LAPIC");
    const deadline = msrs.get(MSR_TSC_DEADLINE);
    if (deadline !== undefined) steps.push(msrStep([[MSR_TSC_DEADLINE, deadline]]));
    SET_ORDER_AFTER_MSRS.forEach(structStep);
    for (const [id, entry] of others) {
      steps.push({ kind: "one", id, index: entry.index, values: entry.value });
    }
    return steps;
  }

  #snapshot(plan: readonly Step[]): Map<Step, Step["values"]> {
    const before = new Map<Step, Step["values"]>();
    for (const step of plan) {
      if (step.kind === "struct") {
        before.set(
          step,
          this.#batch([step.index], () => this.#readStructBytes(step.reg)),
        );
      } else if (step.kind === "msrs") {
        const values = this.#batch(step.where, () => state.getMsrs(this.#io, step.msrs), step.msrs);
        before.set(step, values);
      } else {
        before.set(
          step,
          this.#batch([step.index], () => this.#oneReg(GET_ONE_REG, step.id)),
        );
      }
    }
    return before;
  }

  #apply(step: Step, values: Step["values"]): void {
    if (step.kind === "struct" && values instanceof Uint8Array) {
      this.#batch([step.index], () => {
        this.#writeStruct(step.reg, values);
      });
    } else if (step.kind === "msrs" && Array.isArray(values)) {
      const list: readonly bigint[] = values;
      this.#batch(
        step.where,
        () => {
          state.setMsrs(this.#io, step.msrs, list);
        },
        step.msrs,
      );
    } else if (step.kind === "one" && values instanceof Uint8Array) {
      this.#batch([step.index], () => this.#oneReg(SET_ONE_REG, step.id, values));
    }
  }
}

/** One planned kernel call of setMany. */
type Step =
  | { kind: "struct"; reg: X86PseudoReg; index: number; values: Uint8Array }
  | { kind: "msrs"; msrs: number[]; where: number[]; values: bigint[] }
  | { kind: "one"; id: RegId; index: number; values: Uint8Array };

function msrStep(entries: readonly (readonly [number, { index: number; value: bigint }])[]): Step {
  return {
    kind: "msrs",
    msrs: entries.map(([msr]) => msr),
    where: entries.map(([, e]) => e.index),
    values: entries.map(([, e]) => e.value),
  };
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
