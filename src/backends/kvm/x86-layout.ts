/**
 * How a MANY_REGS id list maps onto x86 kernel calls: each id's offset in the packed stream,
 * the MSRs (one KVM_GET/SET_MSRS), the struct pseudo-registers (one ioctl each) and the ids
 * left to ONE_REG, and for setMany the ordered steps with where each keeps its rollback copy.
 * A layout depends on the ids alone — never on vCPU state — so a vCPU caches the layouts of
 * the lists it sees; a whole-vCPU save + restore moves the same ~15 lists every time, and
 * everything that can be worked out once (offsets, the kvm_msrs request, padding ranges) is
 * worked out here, so a call only copies values and issues ioctls.
 *
 * Building a layout never throws for an unknown pseudo id: it records where the first one is,
 * so the caller reports it in batch order with the ioctl name of its own direction.
 */
import {
  X86_PSEUDO_LIST,
  isPseudoRegId,
  msrIndexOf,
  type X86PseudoReg,
} from "../../abi/arch/x86/index.js";
import { regId, regSize, type RegId } from "../../abi/regid.js";
import {
  CPUID_MAX_BYTES,
  CPUID_READ_AT,
  ONE_REG_VALUE,
  STRUCT_IOCTLS,
  msrRequest,
  msrRequestBytes,
  type StructSpec,
} from "./x86-state.js";

/** A struct pseudo-register and the batch indices that name it. */
export interface StructUse {
  readonly reg: X86PseudoReg;
  /** Its ioctls (undefined for CPUID and TSC_KHZ, which have their own). */
  readonly spec: StructSpec | undefined;
  /** Batch indices naming it, in list order. */
  readonly where: readonly number[];
  /** Stream offset of each of those entries (read once, copied to the others). */
  readonly at: readonly number[];
}

/** MSRs moved by one KVM_GET/SET_MSRS. */
export interface MsrBatch {
  readonly msrs: readonly number[];
  /** Batch index of each MSR's entry. */
  readonly where: readonly number[];
  /** Stream offset of each MSR's value. */
  readonly at: readonly number[];
  /** The `struct kvm_msrs` naming them (data zero), copied into native memory per call. */
  readonly request: Uint8Array;
}

/** A pseudo entry whose value has padding after its struct bytes, which must be zero. */
export interface PaddedEntry {
  readonly index: number;
  readonly reg: X86PseudoReg;
  /** Stream offsets of the padding: `[from, to)`. */
  readonly from: number;
  readonly to: number;
}

/** The classified form of one id list. */
export interface ListLayout {
  readonly ids: readonly RegId[];
  /** Byte offset of each id's value in the packed stream. */
  readonly offsets: readonly number[];
  readonly total: number;
  /** Every MSR id in list order (duplicates included), or undefined when there is none. */
  readonly msrs: MsrBatch | undefined;
  /** Struct pseudo-registers in order of first appearance. */
  readonly structs: readonly StructUse[];
  /** Batch indices of ids for ONE_REG. */
  readonly others: readonly number[];
  /** Known pseudo entries with padding, in list order. */
  readonly padded: readonly PaddedEntry[];
  /** Batch index of the first pseudo id the catalog does not know, if any. */
  readonly unknownAt: number | undefined;
}

/** What every setMany step has: where its value is, where its rollback copy goes. */
interface StepBase {
  /** Batch index of the entry whose value is written (MSR steps: the first of `batch.where`). */
  readonly index: number;
  readonly id: RegId;
  /** Offset of the value in the stream (MSR steps: `batch.at`). */
  readonly from: number;
  /** Value bytes: the struct size for pseudo-registers, the id's size for ONE_REG. */
  readonly size: number;
  /** Offset of the rollback copy in the rollback area. */
  readonly saveAt: number;
}

/**
 * One kernel call of setMany, in the restore order of ABI doc §13.1. Every kind has every
 * field, created in the same property order below, so the code that runs steps sees one
 * object shape rather than five (a polymorphic load per field showed up in profiles).
 */
export type SetStep =
  | (StepBase & { readonly kind: "struct"; readonly spec: StructSpec; readonly batch: undefined })
  | (StepBase & {
      readonly kind: "cpuid" | "tsc" | "one";
      readonly spec: undefined;
      readonly batch: undefined;
    })
  | (StepBase & { readonly kind: "msrs"; readonly spec: undefined; readonly batch: MsrBatch });

/** The steps of a setMany and the size of the rollback area they need. */
export interface SetPlan {
  readonly steps: readonly SetStep[];
  readonly saveBytes: number;
}

const PSEUDO_BY_ID = new Map<RegId, X86PseudoReg>(X86_PSEUDO_LIST.map((r) => [r.id, r]));

/** The ioctls of a fixed-size struct group; CPUID and TSC_KHZ have their own. */
function specOf(reg: X86PseudoReg): StructSpec | undefined {
  return reg.name === "CPUID" || reg.name === "TSC_KHZ" ? undefined : STRUCT_IOCTLS[reg.name];
}

function msrBatch(msrs: number[], where: number[], offsets: readonly number[]): MsrBatch {
  return { msrs, where, at: where.map((i) => offsets[i] ?? 0), request: msrRequest(msrs) };
}

/**
 * Classifies `ids`.
 * @throws {TypeError} if an id is not a bigint; {RangeError} if it is outside 0..2^64-1.
 */
export function buildLayout(ids: readonly RegId[]): ListLayout {
  const offsets: number[] = [];
  let total = 0;
  for (const id of ids) {
    if (typeof id !== "bigint") throw new TypeError("Register ids must be bigints");
    regId(id); // RangeError outside 0..2^64-1: a 65-bit id would be masked into a real one
    offsets.push(total);
    total += regSize(id);
  }
  const msrAt: number[] = [];
  const msrIndices: number[] = [];
  const structs = new Map<X86PseudoReg, number[]>();
  const others: number[] = [];
  const padded: PaddedEntry[] = [];
  let unknownAt: number | undefined;
  for (const [i, id] of ids.entries()) {
    if (isPseudoRegId(id)) {
      const reg = PSEUDO_BY_ID.get(id);
      if (reg === undefined) {
        unknownAt ??= i;
        continue;
      }
      const at = offsets[i] ?? 0;
      if (reg.structSize < reg.size)
        padded.push({ index: i, reg, from: at + reg.structSize, to: at + reg.size });
      const where = structs.get(reg);
      if (where === undefined) structs.set(reg, [i]);
      else where.push(i);
      continue;
    }
    const msr = msrIndexOf(id);
    if (msr !== undefined) {
      msrAt.push(i);
      msrIndices.push(msr);
    } else others.push(i);
  }
  return {
    ids: [...ids],
    offsets,
    total,
    msrs: msrAt.length === 0 ? undefined : msrBatch(msrIndices, msrAt, offsets),
    structs: [...structs].map(([reg, where]) => ({
      reg,
      spec: specOf(reg),
      where,
      at: where.map((i) => offsets[i] ?? 0),
    })),
    others,
    padded,
    unknownAt,
  };
}

// IA32_TSC_DEADLINE must be written after KVM_SET_LAPIC (ABI doc §13.1).
const MSR_TSC_DEADLINE = 0x6e0;

/** Order in which struct pseudo-registers are restored (ABI doc §13.1). */
const SET_ORDER_BEFORE_MSRS = ["CPUID", "TSC_KHZ", "SREGS", "REGS", "FPU", "XSAVE", "XCRS"];
const SET_ORDER_AFTER_MSRS = ["VCPU_EVENTS", "MP_STATE", "DEBUGREGS"];

// Rollback copies start on 64-byte boundaries (a cache line; every kernel struct here needs
// at most 8-byte alignment), the first one 64 bytes in: CPUID, which comes first, is read
// faster away from a page start (see CPUID_READ_AT).
const SAVE_ALIGN = 64;

function structStep(reg: X86PseudoReg, index: number, from: number, saveAt: number): SetStep {
  const base = { index, id: reg.id, from, size: reg.structSize, saveAt };
  const spec = specOf(reg);
  if (spec !== undefined) return { kind: "struct", ...base, spec, batch: undefined };
  const kind = reg.name === "CPUID" ? "cpuid" : "tsc";
  return { kind, ...base, spec: undefined, batch: undefined };
}

/** Rollback bytes a step needs (CPUID: room for a full GET). */
function saveSize(step: SetStep): number {
  switch (step.kind) {
    case "cpuid":
      return CPUID_MAX_BYTES;
    case "msrs":
      return msrRequestBytes(step.batch.msrs.length);
    case "one":
      return ONE_REG_VALUE + step.size;
    default:
      return step.size;
  }
}

/**
 * The setMany plan of a layout without unknown pseudo ids: CPUID, TSC_KHZ, SREGS, REGS, FPU,
 * XSAVE, XCRS, the MSRs but IA32_TSC_DEADLINE, LAPIC, IA32_TSC_DEADLINE, VCPU_EVENTS,
 * MP_STATE, DEBUGREGS, then other ids. With duplicates the last value wins; an MSR keeps the
 * position of its first occurrence.
 */
export function buildSetPlan(layout: ListLayout): SetPlan {
  const { offsets, ids } = layout;
  const lastStruct = new Map<string, { reg: X86PseudoReg; index: number }>();
  for (const { reg, where } of layout.structs) {
    lastStruct.set(reg.name, { reg, index: where[where.length - 1] ?? 0 });
  }
  const msrs = new Map<number, number>();
  const batch = layout.msrs;
  batch?.where.forEach((i, k) => msrs.set(batch.msrs[k] ?? 0, i));
  const others = new Map<RegId, number>();
  for (const i of layout.others) {
    const id = ids[i];
    if (id !== undefined) others.set(id, i);
  }
  const steps: SetStep[] = [];
  let saveBytes = CPUID_READ_AT;
  const push = (make: (saveAt: number) => SetStep): void => {
    const step = make(saveBytes);
    steps.push(step);
    saveBytes += Math.ceil(saveSize(step) / SAVE_ALIGN) * SAVE_ALIGN;
  };
  const struct = (name: string): void => {
    const entry = lastStruct.get(name);
    if (entry === undefined) return;
    const from = offsets[entry.index] ?? 0;
    push((saveAt) => structStep(entry.reg, entry.index, from, saveAt));
  };
  const msrStep = (list: [number, number][]): void => {
    if (list.length === 0) return;
    const b = msrBatch(
      list.map(([m]) => m),
      list.map(([, i]) => i),
      offsets,
    );
    const index = b.where[0] ?? 0;
    const id = ids[index];
    if (id === undefined) throw new RangeError(`index ${index} out of range`);
    const base = { index, id, from: b.at[0] ?? 0, size: 8 * b.msrs.length };
    push((saveAt) => ({ kind: "msrs", ...base, saveAt, spec: undefined, batch: b }));
  };
  SET_ORDER_BEFORE_MSRS.forEach(struct);
  msrStep([...msrs].filter(([msr]) => msr !== MSR_TSC_DEADLINE));
  struct("LAPIC");
  const deadline = msrs.get(MSR_TSC_DEADLINE);
  if (deadline !== undefined) msrStep([[MSR_TSC_DEADLINE, deadline]]);
  SET_ORDER_AFTER_MSRS.forEach(struct);
  for (const [id, index] of others) {
    const from = offsets[index] ?? 0;
    const base = { index, id, from, size: regSize(id) };
    push((saveAt) => ({ kind: "one", ...base, saveAt, spec: undefined, batch: undefined }));
  }
  return { steps, saveBytes };
}

const CACHE_SIZE = 32;

/**
 * A small most-recently-built cache of layouts, matched by list content. Restore plans pass
 * the same frozen arrays every time, and a frozen array cannot have changed, so those are
 * matched by identity first (comparing 52 bigint ids costs ~0.2 µs).
 */
export class LayoutCache {
  #entries: ListLayout[] = [];
  #frozen = new WeakMap<readonly RegId[], ListLayout>();
  #plans = new WeakMap<ListLayout, SetPlan>();

  /**
   * The layout of `ids`, built on first sight.
   * @throws {TypeError} if an id is not a bigint.
   */
  layout(ids: readonly RegId[]): ListLayout {
    const known = this.#frozen.get(ids);
    if (known !== undefined) return known;
    const entries = this.#entries;
    let found: ListLayout | undefined;
    for (const entry of entries) {
      if (sameIds(entry.ids, ids)) {
        found = entry;
        break;
      }
    }
    if (found === undefined) {
      found = buildLayout(ids);
      if (entries.length >= CACHE_SIZE) entries.shift();
      entries.push(found);
    }
    if (Object.isFrozen(ids)) this.#frozen.set(ids, found);
    return found;
  }

  /** The setMany plan of `layout` (which must have no unknown pseudo id). */
  setPlan(layout: ListLayout): SetPlan {
    let plan = this.#plans.get(layout);
    if (plan === undefined) {
      plan = buildSetPlan(layout);
      this.#plans.set(layout, plan);
    }
    return plan;
  }
}

function sameIds(a: readonly RegId[], b: readonly RegId[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
