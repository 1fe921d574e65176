/**
 * Restore planning: compare a stream's registers with a destination vCPU's `regList()`, apply
 * the options, place every register by the arch's ordering data, read the destination's
 * current values (for verification and rollback) — all before anything is written.
 */
import type { ArchName, RegId } from "../../abi/regid.js";
import type { Vcpu } from "../../backends/vcpu.js";
import { regRef, refText, sameBytes, sizeOf } from "./describe.js";
import { RestoreError, type RegComparison, type RegRef } from "./errors.js";
import type { VcpuState } from "./model.js";
import { orderingFor, placeRegister } from "./ordering.js";
import {
  placeMatched,
  checkVerified,
  compareIds,
  comparisonReport,
  effectTargets,
  indexValues,
  pack,
  withTargets,
  readCurrent,
  type EffectTargets,
  type IdComparison,
  type ReadBuffers,
  type ValueSource,
} from "./plan-common.js";
import { buildShape, cachedShape, planFromShape } from "./plan-shape.js";

export { compareIds } from "./plan-common.js";

/** What restore does about registers present on one side only. */
export interface RestoreOptions {
  /** Destination lists it, stream lacks it: fail (default) or keep the destination's value. */
  readonly onMissing?: "error" | "keep";
  /**
   * Stream has it, destination does not list it: fail (default), skip it, or try writing it
   * (a refused write is reported, not fatal; an unreadable one is never written, as it
   * could not be rolled back).
   */
  readonly onExtra?: "error" | "ignore" | "try";
  /** Same register with another size (e.g. RISC-V vector registers at another VLEN). */
  readonly onSizeMismatch?: "error" | "ignore";
}

/** Options with defaults applied. */
export type ResolvedRestoreOptions = Required<RestoreOptions>;

const CHOICES = {
  onMissing: ["error", "keep"],
  onExtra: ["error", "ignore", "try"],
  onSizeMismatch: ["error", "ignore"],
} as const;

/**
 * Applies defaults and checks option values.
 * @throws {TypeError} on an unknown option or value.
 */
export function resolveRestoreOptions(options: RestoreOptions = {}): ResolvedRestoreOptions {
  for (const [key, value] of Object.entries(options)) {
    const allowed: readonly unknown[] | undefined = (CHOICES as Record<string, readonly unknown[]>)[
      key
    ];
    if (allowed === undefined) continue; // Callers may pass a wider options object.
    if (value !== undefined && !allowed.includes(value)) {
      throw new TypeError(
        `Restore option ${key} must be one of ${allowed.join(", ")}, got ${String(value)}`,
      );
    }
  }
  return {
    onMissing: options.onMissing ?? "error",
    onExtra: options.onExtra ?? "error",
    onSizeMismatch: options.onSizeMismatch ?? "error",
  };
}

/** An extra register to try writing on its own (onExtra: "try"). */
export interface TryWrite {
  readonly id: RegId;
  readonly value: Uint8Array;
  readonly saved: Uint8Array;
}

/** One phase ready to write: packed new values and the destination's saved values. */
export interface PhasePlan {
  readonly phase: string;
  readonly ids: readonly RegId[];
  readonly values: Uint8Array;
  /** The destination's values before the restore, packed; built only when a rollback needs it. */
  saved(): Uint8Array;
  readonly tries: readonly TryWrite[];
}

/** Everything restore will do to one vCPU, decided before the first write. */
export interface VcpuPlan {
  readonly vcpu: Vcpu;
  /** Index of the state in the stream. */
  readonly streamIndex: number;
  readonly phases: readonly PhasePlan[];
  /**
   * The report's registers per phase when the planner has them ready (a cached shape does,
   * frozen); otherwise the report counts them from `phases`.
   */
  readonly phaseReport?: readonly { readonly phase: string; readonly registers: number }[];
  readonly comparison: RegComparison;
  readonly verified: readonly RegRef[];
  readonly skippedVmScoped: readonly RegRef[];
  /** "write-if-changed" registers equal on both sides, so not written. */
  readonly skippedUnchanged: readonly RegRef[];
  /** Extras not written: ignored, unreadable or read-only. */
  readonly notWritten: readonly { readonly register: RegRef; readonly reason: string }[];
  /** Registers that writes in some phases change as a side effect (rewritten on rollback). */
  readonly effects: readonly EffectTargets[];
  /** The destination's values of `ids` before the restore, packed; each id must be planned. */
  savedValues(ids: readonly RegId[]): Uint8Array;
}

function listText(refs: readonly RegRef[]): string {
  const shown = refs.slice(0, 8).map(refText).join(", ");
  return refs.length > 8 ? `${shown} and ${refs.length - 8} more` : shown;
}

function refuse(c: IdComparison, o: ResolvedRestoreOptions, vcpu: number): void {
  const report = comparisonReport(c);
  const details = { vcpu, comparison: report };
  if (c.sizeMismatched.length > 0 && o.onSizeMismatch === "error") {
    const text = report.sizeMismatched.map(
      (m) => `${refText(m.stream)} vs ${m.destination.size} bytes`,
    );
    throw new RestoreError(
      "RESTORE_SIZE_MISMATCH",
      `Cannot restore vCPU ${vcpu}: ${c.sizeMismatched.length} registers differ in size from the destination's: ${text.slice(0, 8).join(", ")}`,
      { ...details, registers: report.sizeMismatched.map((m) => m.stream) },
    );
  }
  if (c.missing.length > 0 && o.onMissing === "error") {
    throw new RestoreError(
      "RESTORE_MISSING",
      `Cannot restore vCPU ${vcpu}: the snapshot lacks ${c.missing.length} registers the destination lists: ${listText(report.missing)} (onMissing: "keep" leaves them as they are)`,
      { ...details, registers: report.missing },
    );
  }
  if (c.extra.length > 0 && o.onExtra === "error") {
    throw new RestoreError(
      "RESTORE_EXTRA",
      `Cannot restore vCPU ${vcpu}: the snapshot carries ${c.extra.length} registers the destination does not list: ${listText(report.extra)} (onExtra: "ignore" or "try")`,
      { ...details, registers: report.extra },
    );
  }
}

/**
 * Plans the restore of `state` into `vcpu`. Reads the destination (regList, current values)
 * but writes nothing.
 * @param writeVmScoped write VM-wide registers (false for every vCPU but the first).
 * @param buffers where the current values may be read; the plan is valid until their reset.
 * @throws {RestoreError} RESTORE_ARCH, _SIZE_MISMATCH, _MISSING, _EXTRA, _READ or _VERIFY.
 */
export function planVcpuRestore(
  vcpu: Vcpu,
  state: VcpuState,
  arch: ArchName,
  options: ResolvedRestoreOptions,
  writeVmScoped = true,
  buffers?: ReadBuffers,
): VcpuPlan {
  const n = state.index;
  if (vcpu.arch !== arch) {
    throw new RestoreError(
      "RESTORE_ARCH",
      `Cannot restore a ${arch} snapshot into a ${vcpu.arch} vCPU`,
      { vcpu: n },
    );
  }
  const list = readList(vcpu, n);
  const shape = cachedShape(state, list, arch, options, writeVmScoped);
  if (shape !== undefined) return planFromShape(vcpu, state, shape, buffers);
  const cmp = compareIds(
    state.regs.map((r) => r.id),
    list,
  );
  refuse(cmp, options, n);
  if (cmp.extra.length === 0) {
    const built = buildShape(state, list, arch, options, writeVmScoped, cmp);
    return planFromShape(vcpu, state, built, buffers);
  }
  return planWithExtras(vcpu, state, { arch, list, options, writeVmScoped, cmp }, buffers);
}

/** What planWithExtras() plans from, besides the vCPU and the state. */
interface ExtrasInput {
  readonly arch: ArchName;
  /** The destination's register list. */
  readonly list: readonly RegId[];
  readonly options: ResolvedRestoreOptions;
  readonly writeVmScoped: boolean;
  readonly cmp: IdComparison;
}

/** The plan when the stream carries extras (tried one by one or not written): never cached. */
function planWithExtras(
  vcpu: Vcpu,
  state: VcpuState,
  input: ExtrasInput,
  buffers: ReadBuffers | undefined,
): VcpuPlan {
  const { arch, options, writeVmScoped, cmp } = input;
  const n = state.index;
  const values = new Map<RegId, Uint8Array>();
  for (const r of state.regs) values.set(r.id, r.value);
  const ordering = orderingFor(arch);
  const placed = placeMatched(cmp.matched, arch, writeVmScoped);
  const { buckets, verify, skippedVmScoped } = placed;
  const effects = effectTargets(arch, input.list);
  const toRead = withTargets(placed.toRead, effects);
  const ifChanged = new Set(placed.ifChanged);
  const current = indexValues(toRead, readCurrent(vcpu, toRead, n, undefined, buffers));
  for (const id of verify) checkVerified(id, values.get(id), current.get(id), n);
  const unchanged = dropUnchanged(buckets, ifChanged, values, current);

  const { tries, notWritten } = planExtras(vcpu, cmp.extra, values, options, writeVmScoped);
  // Every phase's values in one allocation, phase after phase; each phase gets a view.
  const ordered: RegId[] = [];
  for (const { name } of ordering.phases) ordered.push(...(buckets.get(name) ?? []));
  const packed = pack(ordered, values);
  let at = 0;
  const phases: PhasePlan[] = [];
  for (const { name } of ordering.phases) {
    const ids = buckets.get(name) ?? [];
    const phaseTries = tries.get(name) ?? [];
    let length = 0;
    for (const id of ids) length += sizeOf(id);
    const view = packed.subarray(at, at + length);
    at += length;
    if (ids.length === 0 && phaseTries.length === 0) continue;
    phases.push({
      phase: name,
      ids,
      values: view,
      saved: () => pack(ids, current),
      tries: phaseTries,
    });
  }
  return {
    vcpu,
    streamIndex: n,
    phases,
    comparison: comparisonReport(cmp),
    verified: verify.map(regRef),
    skippedVmScoped: skippedVmScoped.map(regRef),
    skippedUnchanged: unchanged.map(regRef),
    notWritten,
    effects,
    savedValues: (ids) => pack(ids, current),
  };
}

/** Removes "write-if-changed" ids whose stream value equals the destination's; returns them. */
function dropUnchanged(
  buckets: Map<string, RegId[]>,
  ifChanged: ReadonlySet<RegId>,
  values: ReadonlyMap<RegId, Uint8Array>,
  current: ValueSource,
): RegId[] {
  const out: RegId[] = [];
  if (ifChanged.size === 0) return out;
  for (const [phase, ids] of buckets) {
    const keep = ids.filter((id) => {
      const a = values.get(id);
      const b = current.get(id);
      const same = ifChanged.has(id) && a !== undefined && b !== undefined && sameBytes(a, b);
      if (same) out.push(id);
      return !same;
    });
    buckets.set(phase, keep);
  }
  return out;
}

function readList(vcpu: Vcpu, n: number): RegId[] {
  try {
    return vcpu.regList();
  } catch (cause) {
    throw new RestoreError(
      "RESTORE_READ",
      `Cannot restore vCPU ${n}: the destination's register list failed`,
      { vcpu: n },
      { cause },
    );
  }
}

interface ExtrasPlan {
  /** Tries by phase name. */
  readonly tries: Map<string, TryWrite[]>;
  readonly notWritten: { register: RegRef; reason: string }[];
}

/** Decides, per extra register, whether to try writing it (and saves its value) or not. */
function planExtras(
  vcpu: Vcpu,
  extra: readonly RegId[],
  values: ReadonlyMap<RegId, Uint8Array>,
  options: ResolvedRestoreOptions,
  writeVmScoped: boolean,
): ExtrasPlan {
  const ordering = orderingFor(vcpu.arch);
  const out: ExtrasPlan = { tries: new Map(), notWritten: [] };
  for (const id of extra) {
    const reason = extraProblem(vcpu, id, options, ordering, writeVmScoped);
    const value = values.get(id);
    if (typeof reason === "string" || value === undefined) {
      out.notWritten.push({
        register: regRef(id),
        reason: typeof reason === "string" ? reason : "no value",
      });
      continue;
    }
    const phase = placeRegister(ordering, id).phase;
    out.tries.set(phase, [...(out.tries.get(phase) ?? []), { id, value, saved: reason.saved }]);
  }
  return out;
}

/** Why an extra register will not be tried, or its saved value when it will. */
function extraProblem(
  vcpu: Vcpu,
  id: RegId,
  o: ResolvedRestoreOptions,
  ordering: ReturnType<typeof orderingFor>,
  writeVmScoped: boolean,
): string | { saved: Uint8Array } {
  if (o.onExtra === "ignore") return "ignored (onExtra: ignore)";
  const place = placeRegister(ordering, id);
  if (place.action === "verify") return "read-only, not written";
  if (place.scope === "vm" && !writeVmScoped) return "VM-wide, written through the first vCPU";
  try {
    return { saved: vcpu.getOneReg(id) };
  } catch (e) {
    return `unreadable on the destination, so not written: ${e instanceof Error ? e.message : String(e)}`;
  }
}
