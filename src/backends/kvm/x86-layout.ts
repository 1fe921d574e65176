/**
 * How a MANY_REGS id list maps onto x86 kernel calls: each id's offset in the packed stream,
 * the MSRs (one KVM_GET/SET_MSRS), the struct pseudo-registers (one ioctl each) and the ids
 * left to ONE_REG. A layout depends on the ids alone — never on vCPU state — so a vCPU caches
 * the layouts of the lists it sees; a whole-vCPU save + restore moves the same ~15 lists
 * every time, and classifying 52 ids per call (bigint field extraction, catalog lookups)
 * dominated the TypeScript side of it.
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
import { regSize, type RegId } from "../../abi/regid.js";

/** A struct pseudo-register and the batch indices that name it. */
export interface StructUse {
  readonly reg: X86PseudoReg;
  /** Batch indices naming it, in list order. */
  readonly where: readonly number[];
}

/** One kernel call of setMany, in the restore order of ABI doc §13.1. */
export type SetStep =
  | { readonly kind: "struct"; readonly reg: X86PseudoReg; readonly index: number }
  | {
      readonly kind: "msrs";
      readonly msrs: readonly number[];
      /** Batch index whose value each MSR takes (the last occurrence of that MSR). */
      readonly where: readonly number[];
    }
  | { readonly kind: "one"; readonly id: RegId; readonly index: number };

/** The classified form of one id list. */
export interface ListLayout {
  readonly ids: readonly RegId[];
  /** Byte offset of each id's value in the packed stream. */
  readonly offsets: readonly number[];
  readonly total: number;
  /** Batch indices of MSR ids and their MSR numbers, in list order. */
  readonly msrAt: readonly number[];
  readonly msrIndices: readonly number[];
  /** Struct pseudo-registers in order of first appearance. */
  readonly structs: readonly StructUse[];
  /** Batch indices of ids for ONE_REG. */
  readonly others: readonly number[];
  /** Batch indices of every pseudo id (known or not), in list order. */
  readonly pseudoAt: readonly number[];
  /** The pseudo-register at each batch index (undefined for other ids and unknown pseudo ids). */
  readonly pseudoRegs: readonly (X86PseudoReg | undefined)[];
  /** Batch index of the first pseudo id the catalog does not know, if any. */
  readonly unknownAt: number | undefined;
}

const PSEUDO_BY_ID = new Map<RegId, X86PseudoReg>(X86_PSEUDO_LIST.map((r) => [r.id, r]));

/**
 * Classifies `ids`.
 * @throws {TypeError} if an id is not a bigint.
 */
export function buildLayout(ids: readonly RegId[]): ListLayout {
  const offsets: number[] = [];
  let total = 0;
  for (const id of ids) {
    if (typeof id !== "bigint") throw new TypeError("Register ids must be bigints");
    offsets.push(total);
    total += regSize(id);
  }
  const msrAt: number[] = [];
  const msrIndices: number[] = [];
  const structs = new Map<X86PseudoReg, number[]>();
  const others: number[] = [];
  const pseudoAt: number[] = [];
  const pseudoRegs: (X86PseudoReg | undefined)[] = [];
  let unknownAt: number | undefined;
  for (const [i, id] of ids.entries()) {
    pseudoRegs.push(undefined);
    if (isPseudoRegId(id)) {
      pseudoAt.push(i);
      const reg = PSEUDO_BY_ID.get(id);
      if (reg === undefined) {
        unknownAt ??= i;
        continue;
      }
      pseudoRegs[i] = reg;
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
    msrAt,
    msrIndices,
    structs: [...structs].map(([reg, where]) => ({ reg, where })),
    others,
    pseudoAt,
    pseudoRegs,
    unknownAt,
  };
}

// IA32_TSC_DEADLINE must be written after KVM_SET_LAPIC (ABI doc §13.1).
const MSR_TSC_DEADLINE = 0x6e0;

/** Order in which struct pseudo-registers are restored (ABI doc §13.1). */
const SET_ORDER_BEFORE_MSRS = ["CPUID", "TSC_KHZ", "SREGS", "REGS", "FPU", "XSAVE", "XCRS"];
const SET_ORDER_AFTER_MSRS = ["VCPU_EVENTS", "MP_STATE", "DEBUGREGS"];

/**
 * The setMany steps of a layout without unknown pseudo ids: CPUID, TSC_KHZ, SREGS, REGS, FPU,
 * XSAVE, XCRS, the MSRs but IA32_TSC_DEADLINE, LAPIC, IA32_TSC_DEADLINE, VCPU_EVENTS,
 * MP_STATE, DEBUGREGS, then other ids. With duplicates the last value wins; an MSR keeps the
 * position of its first occurrence.
 */
export function buildSetSteps(layout: ListLayout): SetStep[] {
  const lastStruct = new Map<string, { reg: X86PseudoReg; index: number }>();
  for (const { reg, where } of layout.structs) {
    lastStruct.set(reg.name, { reg, index: where[where.length - 1] ?? 0 });
  }
  const msrs = new Map<number, number>();
  layout.msrAt.forEach((i, k) => msrs.set(layout.msrIndices[k] ?? 0, i));
  const others = new Map<RegId, number>();
  for (const i of layout.others) {
    const id = layout.ids[i];
    if (id !== undefined) others.set(id, i);
  }
  const steps: SetStep[] = [];
  const structStep = (name: string): void => {
    const entry = lastStruct.get(name);
    if (entry !== undefined) steps.push({ kind: "struct", ...entry });
  };
  SET_ORDER_BEFORE_MSRS.forEach(structStep);
  const early = [...msrs].filter(([msr]) => msr !== MSR_TSC_DEADLINE);
  if (early.length > 0) {
    steps.push({ kind: "msrs", msrs: early.map(([m]) => m), where: early.map(([, i]) => i) });
  }
  structStep("LAPIC");
  const deadline = msrs.get(MSR_TSC_DEADLINE);
  if (deadline !== undefined) {
    steps.push({ kind: "msrs", msrs: [MSR_TSC_DEADLINE], where: [deadline] });
  }
  SET_ORDER_AFTER_MSRS.forEach(structStep);
  for (const [id, index] of others) steps.push({ kind: "one", id, index });
  return steps;
}

const CACHE_SIZE = 32;

/** A small most-recently-built cache of layouts, matched by list content. */
export class LayoutCache {
  #entries: ListLayout[] = [];
  #steps = new WeakMap<ListLayout, SetStep[]>();

  /**
   * The layout of `ids`, built on first sight.
   * @throws {TypeError} if an id is not a bigint.
   */
  layout(ids: readonly RegId[]): ListLayout {
    const entries = this.#entries;
    for (const entry of entries) if (sameIds(entry.ids, ids)) return entry;
    const built = buildLayout(ids);
    if (entries.length >= CACHE_SIZE) entries.shift();
    entries.push(built);
    return built;
  }

  /** The setMany steps of `layout` (which must have no unknown pseudo id). */
  steps(layout: ListLayout): readonly SetStep[] {
    let steps = this.#steps.get(layout);
    if (steps === undefined) {
      steps = buildSetSteps(layout);
      this.#steps.set(layout, steps);
    }
    return steps;
  }
}

function sameIds(a: readonly RegId[], b: readonly RegId[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
