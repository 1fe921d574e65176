/**
 * What both restore planners share (the general one in plan.ts and the cached-shape one in
 * plan-shape.ts): comparing id lists, reading the destination's current values, checking a
 * read-only register, and packing values in MANY_REGS order.
 */
import type { ArchName, RegId } from "../../abi/regid.js";
import type { Vcpu } from "../../backends/vcpu.js";
import { regRef, refText, sameBytes, sizeOf, valueHex } from "./describe.js";
import { RestoreError, type RegComparison } from "./errors.js";
import { effectRolesOf, orderingFor, placeRegister } from "./ordering.js";

/** The id with its size field cleared: equal keys = same register, perhaps another size. */
const sizeless = (id: RegId): bigint => id & ~(0xfn << 52n);

/** How a stream's ids relate to a destination's list. */
export interface IdComparison {
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

/** Where the matched registers of a restore go, by the arch's ordering rules. */
export interface Placement {
  /** Phase name → ids to write there, in the ordering's phase order. */
  readonly buckets: Map<string, RegId[]>;
  /** Registers that are compared, never written. */
  readonly verify: RegId[];
  /** VM-scoped registers left alone (another vCPU of the VM writes them). */
  readonly skippedVmScoped: RegId[];
  /** Registers written only when the destination's value differs. */
  readonly ifChanged: RegId[];
  /** What the plan reads from the destination: `verify`, then every bucket in order. */
  readonly toRead: RegId[];
}

/** Places each of `matched` in a phase, or among the verified or skipped registers. */
export function placeMatched(
  matched: readonly RegId[],
  arch: ArchName,
  writeVmScoped: boolean,
): Placement {
  const ordering = orderingFor(arch);
  const buckets = new Map<string, RegId[]>(ordering.phases.map((p) => [p.name, []]));
  const verify: RegId[] = [];
  const skippedVmScoped: RegId[] = [];
  const ifChanged: RegId[] = [];
  for (const id of matched) {
    const place = placeRegister(ordering, id);
    if (place.action === "verify") verify.push(id);
    else if (place.scope === "vm" && !writeVmScoped) skippedVmScoped.push(id);
    else {
      if (place.action === "write-if-changed") ifChanged.push(id);
      const bucket = buckets.get(place.phase);
      // Ordering data naming a phase it does not list would drop registers silently.
      if (bucket === undefined) throw new Error(`${arch} ordering: no phase "${place.phase}"`);
      bucket.push(id);
    }
  }
  const toRead = [...verify];
  for (const ids of buckets.values()) for (const id of ids) toRead.push(id);
  return { buckets, verify, skippedVmScoped, ifChanged, toRead };
}

/** Destination registers that one side effect (ordering.ts) may change. */
export interface EffectTargets {
  /** Index of the effect in the arch ordering's `effects`. */
  readonly effect: number;
  readonly ids: readonly RegId[];
}

/**
 * The registers of the destination's `list` that each side effect of the arch's ordering may
 * change (read-only ones left out: nothing writes them), one entry per effect that has any.
 */
export function effectTargets(arch: ArchName, list: readonly RegId[]): EffectTargets[] {
  const ordering = orderingFor(arch);
  const effects = ordering.effects ?? [];
  if (effects.length === 0) return [];
  const ids = effects.map((): RegId[] => []);
  for (const id of list) {
    const found = effectRolesOf(ordering, id).changedBy;
    if (found.length === 0 || placeRegister(ordering, id).action === "verify") continue;
    for (const k of found) ids[k]?.push(id);
  }
  const out: EffectTargets[] = [];
  ids.forEach((targets, effect) => {
    if (targets.length > 0) out.push({ effect, ids: targets });
  });
  return out;
}

/** `toRead` followed by the effect targets it lacks: a rollback needs their saved values. */
export function withTargets(toRead: readonly RegId[], targets: readonly EffectTargets[]): RegId[] {
  const out = [...toRead];
  if (targets.length === 0) return out;
  const seen = new Set(out);
  for (const t of targets) {
    for (const id of t.ids) {
      if (seen.has(id)) continue;
      seen.add(id);
      out.push(id);
    }
  }
  return out;
}

/** A vCPU that can read MANY_REGS into the caller's buffer (the KVM backend). */
type ReadsInto = Vcpu & { getManyRegsInto(ids: readonly RegId[], out: Uint8Array): void };

/** True when the vCPU can read a stream into a caller's buffer (the KVM backend can). */
export function readsInto(vcpu: Vcpu): vcpu is ReadsInto {
  return "getManyRegsInto" in vcpu && typeof vcpu.getManyRegsInto === "function";
}

// Buffers a ReadBuffers keeps for the next restore, at most.
const KEPT_BUFFERS = 16;

/**
 * Buffers for the planning reads of a restore, reused by the next one. A restore reads every
 * register of the destination before it writes (verify, rollback), and a fresh buffer per
 * read — 24 KiB on x86 — cost more than the copies: an off-heap allocation each, and new
 * memory to fault in. `take()` hands buffers out; `reset()` takes them all back, which the
 * restore does once its plans are applied or abandoned, so no plan outlives its buffers.
 */
export class ReadBuffers {
  readonly #free = new Map<number, Uint8Array[]>();
  #kept = 0;
  #taken: Uint8Array[] = [];

  /** A buffer of exactly `length` bytes, contents unspecified, until `reset()`. */
  take(length: number): Uint8Array {
    const reused = this.#free.get(length)?.pop();
    if (reused !== undefined) this.#kept--;
    const buffer = reused ?? new Uint8Array(length);
    this.#taken.push(buffer);
    return buffer;
  }

  /** Takes back every buffer handed out. */
  reset(): void {
    for (const buffer of this.#taken) {
      if (this.#kept >= KEPT_BUFFERS) break;
      const list = this.#free.get(buffer.length);
      if (list === undefined) this.#free.set(buffer.length, [buffer]);
      else list.push(buffer);
      this.#kept++;
    }
    this.#taken = [];
  }
}

/**
 * The destination's current values of `ids`, packed (`expected` bytes, when the caller knows),
 * in a buffer from `buffers` when the vCPU can read into one.
 * @throws {RestoreError} RESTORE_READ if the read fails or returns the wrong length.
 */
export function readCurrent(
  vcpu: Vcpu,
  ids: readonly RegId[],
  streamIndex: number,
  expected = packedLength(ids),
  buffers?: ReadBuffers,
): Uint8Array {
  let bytes: Uint8Array;
  try {
    if (buffers !== undefined && readsInto(vcpu)) {
      bytes = buffers.take(expected);
      vcpu.getManyRegsInto(ids, bytes);
    } else bytes = vcpu.getManyRegs(ids);
  } catch (cause) {
    throw new RestoreError(
      "RESTORE_READ",
      `Cannot restore vCPU ${streamIndex}: reading the destination's current values failed, nothing was written`,
      { vcpu: streamIndex },
      { cause },
    );
  }
  if (bytes.length !== expected) {
    throw new RestoreError(
      "RESTORE_READ",
      `Cannot restore vCPU ${streamIndex}: the destination returned ${bytes.length} bytes for ${ids.length} registers, expected ${expected}; nothing was written`,
      { vcpu: streamIndex },
    );
  }
  return bytes;
}

/** Bytes of `ids`' values packed. */
export function packedLength(ids: readonly RegId[]): number {
  let total = 0;
  for (const id of ids) total += sizeOf(id);
  return total;
}

/**
 * Refuses a read-only register whose stream value differs from the destination's.
 * @throws {RestoreError} RESTORE_VERIFY.
 */
export function checkVerified(
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

/** Anything that gives a register's value by id (a Map, or an indexed packed stream). */
export interface ValueSource {
  get(id: RegId): Uint8Array | undefined;
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
  const out = new Uint8Array(packedLength(ids));
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
