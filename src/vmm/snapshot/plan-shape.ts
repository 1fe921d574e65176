/**
 * Restore plans from a cached shape. Everything about a plan that follows from the two id
 * lists, the arch and the options alone — comparison, placement, the read list, phase lists,
 * where each value sits in the stream and in the planning read, and the report entries — is
 * built once per shape, so a repeated restore of same-shaped state (a snapshot loop, a
 * migration round) only reads the destination, checks the few values that decide something
 * (verify, write-if-changed) and hands each phase its values. Built only when the stream has
 * no extras (extras are read one by one and planned per call, in plan.ts).
 */
import type { ArchName, RegId } from "../../abi/regid.js";
import type { Vcpu } from "../../backends/vcpu.js";
import { regRef, sizeOf } from "./describe.js";
import type { RegComparison, RegRef } from "./errors.js";
import type { RegValue, VcpuState } from "./model.js";
import {
  checkVerified,
  comparisonReport,
  copyValue,
  packedLength,
  effectTargets,
  placeMatched,
  readCurrent,
  withTargets,
  type EffectTargets,
  type IdComparison,
  type ReadBuffers,
} from "./plan-common.js";
import type { PhasePlan, ResolvedRestoreOptions, TryWrite, VcpuPlan } from "./plan.js";

/** A register whose values the plan compares: where it is in the stream and in the read. */
interface Probe {
  readonly id: RegId;
  /** Index of its value in `state.regs` (the last one, with duplicates). */
  readonly stream: number;
  /** Offset of its current value in the planning read. */
  readonly read: number;
  readonly size: number;
}

/** One phase to write: its ids and, per id, the stream index, size and read offset. */
interface PhaseLayout {
  readonly phase: string;
  readonly ids: readonly RegId[];
  readonly stream: readonly number[];
  readonly sizes: readonly number[];
  readonly read: readonly number[];
  /** Packed length of the phase's values. */
  readonly length: number;
  /** True when the phase's stream indices follow one another (its values may be adjacent). */
  readonly consecutive: boolean;
}

/** The phases and report entry for one set of unchanged "write-if-changed" registers. */
interface Variant {
  readonly phases: readonly PhaseLayout[];
  readonly skippedUnchanged: readonly RegRef[];
  /** The report's registers per phase (shaped plans have no tries), shared by every plan. */
  readonly phaseReport: readonly { readonly phase: string; readonly registers: number }[];
}

interface PlanShape {
  readonly arch: ArchName;
  readonly options: ResolvedRestoreOptions;
  readonly writeVmScoped: boolean;
  readonly streamIds: readonly RegId[];
  readonly list: readonly RegId[];
  readonly comparison: RegComparison;
  readonly toRead: readonly RegId[];
  readonly readBytes: number;
  readonly verify: readonly Probe[];
  readonly verified: readonly RegRef[];
  readonly skippedVmScoped: readonly RegRef[];
  readonly ifChanged: readonly Probe[];
  /** Phase lists before "write-if-changed" drops, in phase order. */
  readonly buckets: readonly { readonly phase: string; readonly ids: readonly RegId[] }[];
  /** Every id of `toRead` as a probe. */
  readonly probes: ReadonlyMap<RegId, Probe>;
  /** Side-effect targets of the destination's list, all in `toRead`. */
  readonly effects: readonly EffectTargets[];
  /** Variants by the indices (into `ifChanged`) of the unchanged registers, e.g. `"0,3,"`. */
  readonly variants: Map<string, Variant>;
}

const SHAPE_CACHE_SIZE = 8;
// Variants multiply with the "write-if-changed" registers that happen to match; past this
// many a shape builds further ones per call instead of keeping them.
const VARIANT_CACHE_SIZE = 64;
const shapes: PlanShape[] = [];
const NO_TRIES: readonly TryWrite[] = Object.freeze([]);
const NOTHING_REFUSED: readonly { register: RegRef; reason: string }[] = Object.freeze([]);

function sameList(a: readonly RegId[], b: readonly RegId[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The cached shape for these lists, arch and options, if any. */
export function cachedShape(
  state: VcpuState,
  list: readonly RegId[],
  arch: ArchName,
  options: ResolvedRestoreOptions,
  writeVmScoped: boolean,
): PlanShape | undefined {
  const regs = state.regs;
  for (const s of shapes) {
    if (s.arch !== arch || s.writeVmScoped !== writeVmScoped) continue;
    const o = s.options;
    if (o.onMissing !== options.onMissing || o.onExtra !== options.onExtra) continue;
    if (o.onSizeMismatch !== options.onSizeMismatch) continue;
    if (s.streamIds.length !== regs.length || !sameList(s.list, list)) continue;
    let same = true;
    for (let i = 0; i < regs.length && same; i++) same = regs[i]?.id === s.streamIds[i];
    if (same) return s;
  }
  return undefined;
}

const frozenRefs = (ids: readonly RegId[]): readonly RegRef[] =>
  Object.freeze(ids.map((id) => Object.freeze(regRef(id))));

function frozenComparison(cmp: IdComparison): RegComparison {
  const c = comparisonReport(cmp);
  return Object.freeze({
    matched: c.matched,
    missing: Object.freeze(c.missing.map((r) => Object.freeze(r))),
    extra: Object.freeze(c.extra.map((r) => Object.freeze(r))),
    sizeMismatched: Object.freeze(c.sizeMismatched.map((m) => Object.freeze(m))),
  });
}

/** Builds (and caches) the shape of a restore whose comparison `cmp` has no extras. */
export function buildShape(
  state: VcpuState,
  list: readonly RegId[],
  arch: ArchName,
  options: ResolvedRestoreOptions,
  writeVmScoped: boolean,
  cmp: IdComparison,
): PlanShape {
  const placed = placeMatched(cmp.matched, arch, writeVmScoped);
  const { buckets, verify, skippedVmScoped, ifChanged } = placed;
  const effects = Object.freeze(effectTargets(arch, list));
  // The effect targets not written are read too: a rollback writes them back.
  const toRead = withTargets(placed.toRead, effects);
  const streamAt = new Map<RegId, number>();
  state.regs.forEach((r, i) => streamAt.set(r.id, i));
  const probes = new Map<RegId, Probe>();
  let at = 0;
  for (const id of toRead) {
    const size = sizeOf(id);
    probes.set(id, { id, stream: streamAt.get(id) ?? -1, read: at, size });
    at += size;
  }
  const probe = (id: RegId): Probe => probes.get(id) ?? { id, stream: -1, read: 0, size: 0 };
  const shape: PlanShape = {
    arch,
    options,
    writeVmScoped,
    streamIds: state.regs.map((r) => r.id),
    list: [...list],
    comparison: frozenComparison(cmp),
    toRead: Object.freeze(toRead),
    readBytes: at,
    verify: verify.map(probe),
    verified: frozenRefs(verify),
    skippedVmScoped: frozenRefs(skippedVmScoped),
    ifChanged: ifChanged.map(probe),
    buckets: [...buckets].map(([phase, ids]) => ({ phase, ids })),
    probes,
    effects,
    variants: new Map(),
  };
  if (shapes.length >= SHAPE_CACHE_SIZE) shapes.shift();
  shapes.push(shape);
  return shape;
}

/** The phases when the `ifChanged` entries at `unchanged` are left out. */
function buildVariant(shape: PlanShape, unchanged: readonly number[]): Variant {
  const skipped = new Set<RegId>();
  for (const k of unchanged) {
    const p = shape.ifChanged[k];
    if (p !== undefined) skipped.add(p.id);
  }
  const phases: PhaseLayout[] = [];
  for (const { phase, ids: all } of shape.buckets) {
    const ids = skipped.size === 0 ? all : all.filter((id) => !skipped.has(id));
    if (ids.length === 0) continue;
    const probes = ids.map((id) => shape.probes.get(id) ?? { id, stream: -1, read: 0, size: 0 });
    const stream = probes.map((p) => p.stream);
    phases.push({
      phase,
      ids: Object.freeze([...ids]),
      stream,
      sizes: ids.map(sizeOf),
      read: probes.map((p) => p.read),
      length: packedLength(ids),
      consecutive: stream.every((at, k) => at >= 0 && at === (stream[0] ?? 0) + k),
    });
  }
  const phaseReport = Object.freeze(
    phases.map((l) => Object.freeze({ phase: l.phase, registers: l.ids.length })),
  );
  return { phases, skippedUnchanged: frozenRefs([...skipped]), phaseReport };
}

/** True when `value` equals the `value.length` bytes of `bytes` at `at`. */
function sameAt(value: Uint8Array, bytes: Uint8Array, at: number): boolean {
  for (let i = 0; i < value.length; i++) if (value[i] !== bytes[at + i]) return false;
  return true;
}

/**
 * The phase's values when they already lie packed in the stream: one value of exactly the
 * phase's length (a struct pseudo-register), or consecutive stream values that are adjacent
 * views of one buffer, in order — as captureVcpu() leaves them (FPU then XSAVE, 4.6 KiB). A
 * view of them replaces a copy: setManyRegs only reads its stream.
 */
function valuesInPlace(regs: readonly RegValue[], l: PhaseLayout): Uint8Array | undefined {
  if (!l.consecutive) return undefined;
  const first = regs[l.stream[0] ?? -1]?.value;
  if (first === undefined) return undefined;
  if (first.length === l.length) return first;
  const { buffer, byteOffset } = first;
  let end = byteOffset + first.length;
  for (let k = 1; k < l.stream.length; k++) {
    const v = regs[l.stream[k] ?? -1]?.value;
    if (v?.buffer !== buffer || v.byteOffset !== end || v.length !== l.sizes[k]) return undefined;
    end += v.length;
  }
  return end - byteOffset === l.length ? new Uint8Array(buffer, byteOffset, l.length) : undefined;
}

/**
 * Copies the phase's values from the stream into `out` (the MANY_REGS layout), writing every
 * byte: `out` may be a reused buffer, and a short value (a hand-built state) leaves zeros.
 */
function packPhase(regs: readonly RegValue[], l: PhaseLayout, out: Uint8Array): void {
  let at = 0;
  for (let k = 0; k < l.stream.length; k++) {
    const v = regs[l.stream[k] ?? -1]?.value;
    const size = l.sizes[k] ?? 0;
    const copied = v === undefined ? 0 : Math.min(v.length, size);
    if (v !== undefined) copyValue(out, at, v);
    if (copied < size) out.fill(0, at + copied, at + size);
    at += size;
  }
}

const NO_VALUES = new Uint8Array(0);

/** A phase of a shaped plan; its saved values are cut from the planning read on demand. */
class ShapedPhase implements PhasePlan {
  readonly phase: string;
  readonly ids: readonly RegId[];
  /** Set once, by phasesOf(), when the values are packed rather than in place. */
  values: Uint8Array;
  readonly tries = NO_TRIES;
  readonly layout: PhaseLayout;
  readonly #current: Uint8Array;

  constructor(layout: PhaseLayout, values: Uint8Array | undefined, current: Uint8Array) {
    this.phase = layout.phase;
    this.ids = layout.ids;
    this.values = values ?? NO_VALUES;
    this.layout = layout;
    this.#current = current;
  }

  saved(): Uint8Array {
    const l = this.layout;
    const out = new Uint8Array(l.length);
    let at = 0;
    for (let k = 0; k < l.read.length; k++) {
      const from = l.read[k] ?? 0;
      const size = l.sizes[k] ?? 0;
      out.set(this.#current.subarray(from, from + size), at);
      at += size;
    }
    return out;
  }
}

/** The plan for `state` given its shape: reads, checks and hands out values only. */
export function planFromShape(
  vcpu: Vcpu,
  state: VcpuState,
  shape: PlanShape,
  buffers?: ReadBuffers,
): VcpuPlan {
  const n = state.index;
  const regs = state.regs;
  const current = readCurrent(vcpu, shape.toRead, n, shape.readBytes, buffers);
  for (const p of shape.verify) {
    checkVerified(p.id, regs[p.stream]?.value, current.subarray(p.read, p.read + p.size), n);
  }
  const unchanged: number[] = [];
  let key = "";
  for (let k = 0; k < shape.ifChanged.length; k++) {
    const p = shape.ifChanged[k];
    const v = p === undefined ? undefined : regs[p.stream]?.value;
    if (p !== undefined && v?.length === p.size && sameAt(v, current, p.read)) {
      unchanged.push(k);
      key += `${k},`;
    }
  }
  let variant = shape.variants.get(key);
  if (variant === undefined) {
    variant = buildVariant(shape, unchanged);
    if (shape.variants.size < VARIANT_CACHE_SIZE) shape.variants.set(key, variant);
  }
  return {
    vcpu,
    streamIndex: n,
    phases: phasesOf(regs, variant.phases, current, buffers),
    phaseReport: variant.phaseReport,
    comparison: shape.comparison,
    verified: shape.verified,
    skippedVmScoped: shape.skippedVmScoped,
    skippedUnchanged: variant.skippedUnchanged,
    notWritten: NOTHING_REFUSED,
    effects: shape.effects,
    savedValues: (ids) => savedFrom(shape, current, ids),
  };
}

/** The planning read's values of `ids`, packed (zeros for an id the plan did not read). */
function savedFrom(shape: PlanShape, current: Uint8Array, ids: readonly RegId[]): Uint8Array {
  const out = new Uint8Array(packedLength(ids));
  let at = 0;
  for (const id of ids) {
    const p = shape.probes.get(id);
    if (p !== undefined) out.set(current.subarray(p.read, p.read + p.size), at);
    at += sizeOf(id);
  }
  return out;
}

/**
 * Each phase with its values: in place when they are packed in the stream already, the
 * others packed into one buffer together — from `buffers` when given, as the plan lives no
 * longer than they do (every Uint8Array over 64 bytes is an off-heap allocation of its own,
 * which costs more than the copy). Plain loops rather than map(): arrays built one way keep
 * one elements kind, so the optimized callers do not deoptimize.
 */
function phasesOf(
  regs: readonly RegValue[],
  layouts: readonly PhaseLayout[],
  current: Uint8Array,
  buffers: ReadBuffers | undefined,
): PhasePlan[] {
  const phases: ShapedPhase[] = [];
  let packBytes = 0;
  for (const l of layouts) {
    const value = valuesInPlace(regs, l);
    if (value === undefined) packBytes += l.length;
    phases.push(new ShapedPhase(l, value, current));
  }
  if (packBytes === 0) return phases;
  // Every byte is written below: packPhase() fills each phase's whole length.
  const packed = buffers === undefined ? new Uint8Array(packBytes) : buffers.take(packBytes);
  let at = 0;
  for (const phase of phases) {
    if (phase.values !== NO_VALUES) continue;
    const l = phase.layout;
    const values = packed.subarray(at, at + l.length);
    at += l.length;
    packPhase(regs, l, values);
    phase.values = values;
  }
  return phases;
}
