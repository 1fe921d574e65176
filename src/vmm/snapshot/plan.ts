/**
 * Restore planning: compare a stream's registers with a destination vCPU's `regList()`, apply
 * the options, place every register by the arch's ordering data, read the destination's
 * current values (for verification and rollback) — all before anything is written.
 */
import type { ArchName, RegId } from "../../abi/regid.js";
import type { Vcpu } from "../../backends/vcpu.js";
import { regRef, refText, sameBytes, sizeOf, valueHex } from "./describe.js";
import { RestoreError, type RegComparison, type RegRef } from "./errors.js";
import type { VcpuState } from "./model.js";
import { orderingFor, placeRegister } from "./ordering.js";

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

/** The id with its size field cleared: equal keys = same register, perhaps another size. */
const sizeless = (id: RegId): bigint => id & ~(0xfn << 52n);

interface IdComparison {
  readonly matched: RegId[];
  readonly missing: RegId[];
  readonly extra: RegId[];
  readonly sizeMismatched: { stream: RegId; destination: RegId }[];
}

/** Compares the stream's ids with the destination's list. */
export function compareIds(stream: readonly RegId[], destination: readonly RegId[]): IdComparison {
  // The usual case — a snapshot of the same kind of vCPU — is the same list in the same order.
  if (stream.length === destination.length && stream.every((id, i) => id === destination[i]))
    return { matched: [...stream], missing: [], extra: [], sizeMismatched: [] };
  const dest = new Set(destination);
  const destByKey = new Map(destination.map((id) => [sizeless(id), id]));
  const streamSet = new Set(stream);
  const streamKeys = new Set(stream.map(sizeless));
  const out: IdComparison = { matched: [], missing: [], extra: [], sizeMismatched: [] };
  for (const id of stream) {
    const other = destByKey.get(sizeless(id));
    if (dest.has(id)) out.matched.push(id);
    else if (other !== undefined) out.sizeMismatched.push({ stream: id, destination: other });
    else out.extra.push(id);
  }
  for (const id of dest)
    if (!streamSet.has(id) && !streamKeys.has(sizeless(id))) out.missing.push(id);
  return out;
}

/** The comparison as names, for reports. */
export function comparisonReport(c: IdComparison): RegComparison {
  return {
    matched: c.matched.length,
    missing: c.missing.map(regRef),
    extra: c.extra.map(regRef),
    sizeMismatched: c.sizeMismatched.map((m) => ({
      stream: regRef(m.stream),
      destination: regRef(m.destination),
    })),
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
  readonly saved: () => Uint8Array;
  readonly tries: readonly TryWrite[];
}

/** Everything restore will do to one vCPU, decided before the first write. */
export interface VcpuPlan {
  readonly vcpu: Vcpu;
  /** Index of the state in the stream. */
  readonly streamIndex: number;
  readonly phases: readonly PhasePlan[];
  readonly comparison: RegComparison;
  readonly verified: readonly RegRef[];
  readonly skippedVmScoped: readonly RegRef[];
  /** "write-if-changed" registers equal on both sides, so not written. */
  readonly skippedUnchanged: readonly RegRef[];
  /** Extras not written: ignored, unreadable or read-only. */
  readonly notWritten: readonly { readonly register: RegRef; readonly reason: string }[];
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

function readCurrent(vcpu: Vcpu, ids: readonly RegId[], streamIndex: number): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = vcpu.getManyRegs(ids);
  } catch (cause) {
    throw new RestoreError(
      "RESTORE_READ",
      `Cannot restore vCPU ${streamIndex}: reading the destination's current values failed, nothing was written`,
      { vcpu: streamIndex },
      { cause },
    );
  }
  let expected = 0;
  for (const id of ids) expected += sizeOf(id);
  if (bytes.length !== expected) {
    throw new RestoreError(
      "RESTORE_READ",
      `Cannot restore vCPU ${streamIndex}: the destination returned ${bytes.length} bytes for ${ids.length} registers, expected ${expected}; nothing was written`,
      { vcpu: streamIndex },
    );
  }
  return bytes;
}

/**
 * Plans the restore of `state` into `vcpu`. Reads the destination (regList, current values)
 * but writes nothing.
 * @param writeVmScoped write VM-wide registers (false for every vCPU but the first).
 * @throws {RestoreError} RESTORE_ARCH, _SIZE_MISMATCH, _MISSING, _EXTRA, _READ or _VERIFY.
 */
export function planVcpuRestore(
  vcpu: Vcpu,
  state: VcpuState,
  arch: ArchName,
  options: ResolvedRestoreOptions,
  writeVmScoped = true,
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
  if (shape !== undefined) return planFromShape(vcpu, state, shape);
  const values = new Map<RegId, Uint8Array>();
  for (const r of state.regs) values.set(r.id, r.value);
  const cmp = compareIds(
    state.regs.map((r) => r.id),
    list,
  );
  refuse(cmp, options, n);
  if (cmp.extra.length === 0) {
    const built = buildShape(state, list, arch, options, writeVmScoped, cmp);
    return planFromShape(vcpu, state, built);
  }

  const ordering = orderingFor(arch);
  const buckets = new Map<string, RegId[]>(ordering.phases.map((p) => [p.name, []]));
  const verify: RegId[] = [];
  const skippedVmScoped: RegId[] = [];
  const ifChanged = new Set<RegId>();
  for (const id of cmp.matched) {
    const place = placeRegister(ordering, id);
    if (place.action === "verify") verify.push(id);
    else if (place.scope === "vm" && !writeVmScoped) skippedVmScoped.push(id);
    else {
      if (place.action === "write-if-changed") ifChanged.add(id);
      bucketFor(buckets, place.phase, arch).push(id);
    }
  }
  const toRead = [...verify];
  for (const ids of buckets.values()) for (const id of ids) toRead.push(id);
  const current = indexValues(toRead, readCurrent(vcpu, toRead, n));
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

function bucketFor(buckets: Map<string, RegId[]>, phase: string, arch: ArchName): RegId[] {
  const bucket = buckets.get(phase);
  // Ordering data naming a phase it does not list would drop registers silently.
  if (bucket === undefined) throw new Error(`${arch} ordering: no phase "${phase}"`);
  return bucket;
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

function checkVerified(
  id: RegId,
  stream: Uint8Array | undefined,
  dest: Uint8Array | undefined,
  n: number,
): void {
  if (stream === undefined || dest === undefined || sameBytes(stream, dest)) return;
  const ref = regRef(id);
  throw new RestoreError(
    "RESTORE_VERIFY",
    `Cannot restore vCPU ${n}: read-only register ${refText(ref)} is ${valueHex(dest)} on the destination but ${valueHex(stream)} in the snapshot`,
    { vcpu: n, register: ref },
  );
}

/** Splits a packed MANY_REGS stream into values by id (views into `bytes`, not copies). */
export function splitValues(ids: readonly RegId[], bytes: Uint8Array): Map<RegId, Uint8Array> {
  const out = new Map<RegId, Uint8Array>();
  let at = 0;
  for (const id of ids) {
    const size = sizeOf(id);
    out.set(id, bytes.subarray(at, at + size));
    at += size;
  }
  return out;
}

/** Anything that gives a register's value by id (a Map, or an indexed packed stream). */
export interface ValueSource {
  get(id: RegId): Uint8Array | undefined;
}

/**
 * A packed MANY_REGS stream indexed by id, handing out views only when asked: restore reads
 * every register's current value but looks at few of them (verify, write-if-changed) unless
 * it rolls back, and creating a view per register showed up in restore profiles.
 */
export function indexValues(ids: readonly RegId[], bytes: Uint8Array): ValueSource {
  const offsets = new Map<RegId, number>();
  let at = 0;
  for (const id of ids) {
    offsets.set(id, at);
    at += sizeOf(id);
  }
  return {
    get(id) {
      const start = offsets.get(id);
      return start === undefined ? undefined : bytes.subarray(start, start + sizeOf(id));
    },
  };
}

/** Packs values in `ids` order (the MANY_REGS layout). */
export function pack(ids: readonly RegId[], values: ValueSource): Uint8Array {
  let total = 0;
  for (const id of ids) total += sizeOf(id);
  const out = new Uint8Array(total);
  let at = 0;
  for (const id of ids) {
    const v = values.get(id);
    if (v !== undefined) copyValue(out, at, v);
    at += sizeOf(id);
  }
  return out;
}

/** Copies one value into a packed stream. */
export function copyValue(out: Uint8Array, at: number, v: Uint8Array): void {
  if (v.length <= 16) {
    // A byte loop beats TypedArray.prototype.set for the many 4- and 8-byte values.
    for (let i = 0; i < v.length; i++) out[at + i] = v[i] ?? 0;
  } else out.set(v, at);
}

/**
 * Everything about a restore plan that follows from the two id lists, the arch and the
 * options alone — comparison, placement, read list, phase lists and packing offsets — so a
 * repeated restore of same-shaped state (a snapshot loop, a migration round) only reads,
 * compares and copies values. Built only when the stream has no extras (extras are read one
 * by one and planned per call).
 */
interface PlanShape {
  readonly arch: ArchName;
  readonly options: ResolvedRestoreOptions;
  readonly writeVmScoped: boolean;
  readonly streamIds: readonly RegId[];
  readonly list: readonly RegId[];
  readonly cmp: IdComparison;
  readonly toRead: readonly RegId[];
  /** Offset of each `toRead` id in the read stream, by id. */
  readonly readAt: ReadonlyMap<RegId, number>;
  /** Stream index of each id's value (the last one with duplicates). */
  readonly streamAt: ReadonlyMap<RegId, number>;
  readonly verify: readonly RegId[];
  readonly skippedVmScoped: readonly RegId[];
  readonly ifChanged: readonly RegId[];
  /** Phase lists before "write-if-changed" drops, in phase order. */
  readonly buckets: ReadonlyMap<string, readonly RegId[]>;
  /** Phase layouts by the set of unchanged "write-if-changed" ids (joined stream indices). */
  readonly variants: Map<string, PhaseLayout[]>;
  /** Report entries of the "write-if-changed" ids, made once (frozen). */
  readonly refs: ReadonlyMap<RegId, RegRef>;
}

interface PhaseLayout {
  readonly phase: string;
  readonly ids: readonly RegId[];
  /** Stream index and size of each id's value. */
  readonly from: readonly number[];
  readonly sizes: readonly number[];
  /** Packed length of the phase's values. */
  readonly length: number;
}

const SHAPE_CACHE_SIZE = 8;
const shapes: PlanShape[] = [];

function sameList(a: readonly RegId[], b: readonly RegId[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function cachedShape(
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

function buildShape(
  state: VcpuState,
  list: readonly RegId[],
  arch: ArchName,
  options: ResolvedRestoreOptions,
  writeVmScoped: boolean,
  cmp: IdComparison,
): PlanShape {
  const ordering = orderingFor(arch);
  const buckets = new Map<string, RegId[]>(ordering.phases.map((p) => [p.name, []]));
  const verify: RegId[] = [];
  const skippedVmScoped: RegId[] = [];
  const ifChanged: RegId[] = [];
  for (const id of cmp.matched) {
    const place = placeRegister(ordering, id);
    if (place.action === "verify") verify.push(id);
    else if (place.scope === "vm" && !writeVmScoped) skippedVmScoped.push(id);
    else {
      if (place.action === "write-if-changed") ifChanged.push(id);
      bucketFor(buckets, place.phase, arch).push(id);
    }
  }
  const toRead = [...verify];
  for (const ids of buckets.values()) for (const id of ids) toRead.push(id);
  const readAt = new Map<RegId, number>();
  let at = 0;
  for (const id of toRead) {
    readAt.set(id, at);
    at += sizeOf(id);
  }
  const streamAt = new Map<RegId, number>();
  state.regs.forEach((r, i) => streamAt.set(r.id, i));
  const shape: PlanShape = {
    arch,
    options,
    writeVmScoped,
    streamIds: state.regs.map((r) => r.id),
    list: [...list],
    cmp,
    toRead,
    readAt,
    streamAt,
    verify,
    skippedVmScoped,
    ifChanged,
    buckets,
    variants: new Map(),
    refs: new Map(ifChanged.map((id) => [id, Object.freeze(regRef(id))])),
  };
  if (shapes.length >= SHAPE_CACHE_SIZE) shapes.shift();
  shapes.push(shape);
  return shape;
}

function phaseLayouts(shape: PlanShape, unchanged: ReadonlySet<RegId>): PhaseLayout[] {
  const out: PhaseLayout[] = [];
  for (const [phase, all] of shape.buckets) {
    const ids = unchanged.size === 0 ? all : all.filter((id) => !unchanged.has(id));
    let length = 0;
    for (const id of ids) length += sizeOf(id);
    const from = ids.map((id) => shape.streamAt.get(id) ?? -1);
    const sizes = ids.map(sizeOf);
    if (ids.length > 0) out.push({ phase, ids, from, sizes, length });
  }
  return out;
}

/** The plan for `state` given its cached shape: reads, checks and packs values only. */
function planFromShape(vcpu: Vcpu, state: VcpuState, shape: PlanShape): VcpuPlan {
  const n = state.index;
  const regs = state.regs;
  const bytes = readCurrent(vcpu, shape.toRead, n);
  const currentOf = (id: RegId): Uint8Array | undefined => {
    const start = shape.readAt.get(id);
    return start === undefined ? undefined : bytes.subarray(start, start + sizeOf(id));
  };
  const valueOf = (id: RegId): Uint8Array | undefined => regs[shape.streamAt.get(id) ?? -1]?.value;
  for (const id of shape.verify) checkVerified(id, valueOf(id), currentOf(id), n);
  const unchanged: RegId[] = [];
  let key = "";
  for (const id of shape.ifChanged) {
    const a = valueOf(id);
    const b = currentOf(id);
    if (a !== undefined && b !== undefined && sameBytes(a, b)) {
      unchanged.push(id);
      key += `${shape.streamAt.get(id) ?? -1},`;
    }
  }
  let layouts = shape.variants.get(key);
  if (layouts === undefined) {
    layouts = phaseLayouts(shape, new Set(unchanged));
    shape.variants.set(key, layouts);
  }
  let current: ValueSource | undefined;
  const phases: PhasePlan[] = layouts.map((l) => {
    const only = l.ids.length === 1 ? regs[l.from[0] ?? -1]?.value : undefined;
    let values: Uint8Array;
    if (only?.length === l.length) {
      // One register of the right size (a struct pseudo-register, typically): its stream value
      // is already the packed phase, so it is passed as is (setManyRegs only reads it).
      values = only;
    } else {
      values = new Uint8Array(l.length);
      let at = 0;
      for (let k = 0; k < l.ids.length; k++) {
        const v = regs[l.from[k] ?? -1]?.value;
        if (v !== undefined) copyValue(values, at, v);
        at += l.sizes[k] ?? 0;
      }
    }
    return {
      phase: l.phase,
      ids: l.ids,
      values,
      saved: () => pack(l.ids, (current ??= indexValues(shape.toRead, bytes))),
      tries: [],
    };
  });
  return {
    vcpu,
    streamIndex: n,
    phases,
    comparison: comparisonReport(shape.cmp),
    verified: shape.verify.map(regRef),
    skippedVmScoped: shape.skippedVmScoped.map(regRef),
    skippedUnchanged: unchanged.map((id) => shape.refs.get(id) ?? regRef(id)),
    notWritten: [],
  };
}
