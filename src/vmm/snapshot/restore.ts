/**
 * Restore: decode and validate everything first (format, vCPU set, register comparison,
 * options, read-only values), then write phase by phase in the arch's order (ordering.ts),
 * one `setManyRegs` batch per phase. If any write fails, everything already written — on
 * every vCPU of the restore — is written back from the values read during planning, in the
 * restore's own order (the ordering data is the order in which a consistent state can be
 * written, and the saved state is one), followed by the registers those writes changed as a
 * side effect (ordering.ts `effects`, e.g. sstatus after an ISA change); a `RestoreError`
 * names the register and the cause: the destination is left exactly as it was.
 *
 * Guest memory and device state are the VMM's to restore (they do not live behind `Vcpu`).
 */
import type { ArchName, RegId } from "../../abi/regid.js";
import type { Vcpu } from "../../backends/vcpu.js";
import { regRef, refText, sameBytes, sizeOf } from "./describe.js";
import { RestoreError, type RegComparison, type RegRef } from "./errors.js";
import { decodeSnapshot, type DecodeOptions } from "./format.js";
import { effectRolesOf, orderingFor } from "./ordering.js";
import type { RegValue, Snapshot, VcpuState } from "./model.js";
import { ReadBuffers, packedLength, readsInto } from "./plan-common.js";
import {
  planVcpuRestore,
  resolveRestoreOptions,
  type PhasePlan,
  type RestoreOptions,
  type TryWrite,
  type VcpuPlan,
} from "./plan.js";

/** What happened to one vCPU (JSON-able). */
export interface VcpuRestoreReport {
  /** vCPU index in the snapshot. */
  readonly vcpu: number;
  readonly comparison: RegComparison;
  readonly phases: readonly { readonly phase: string; readonly registers: number }[];
  /** Registers written (batches plus successful tries). */
  readonly written: number;
  /** Read-only registers found equal and not written. */
  readonly verified: readonly RegRef[];
  /** VM-wide registers left to the first vCPU. */
  readonly skippedVmScoped: readonly RegRef[];
  /** Registers written only when changed (ordering action "write-if-changed") found equal. */
  readonly skippedUnchanged: readonly RegRef[];
  /** Extras not written, and tried extras the destination refused. */
  readonly notWritten: readonly { readonly register: RegRef; readonly reason: string }[];
}

/** Result of a restore (JSON-able). */
export interface RestoreReport {
  readonly vcpus: readonly VcpuRestoreReport[];
}

/**
 * What has been written, in order, for rollback: each write (a phase batch, or a tried
 * register) and the plan it belongs to, in two parallel arrays, so recording a write — ten
 * or more per vCPU — allocates no entry object.
 */
class Journal {
  readonly plans: VcpuPlan[] = [];
  readonly writes: (PhasePlan | TryWrite)[] = [];

  add(plan: VcpuPlan, write: PhasePlan | TryWrite): void {
    this.plans.push(plan);
    this.writes.push(write);
  }

  /** Registers written so far. */
  registers(): number {
    let n = 0;
    for (const w of this.writes) n += "ids" in w ? w.ids.length : 1;
    return n;
  }
}

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** The register a failed batch names: its `index` into the batch, or its `regId`. */
function failedRegister(cause: unknown, ids: readonly RegId[]): RegId | undefined {
  if (typeof cause !== "object" || cause === null) return undefined;
  const { index, regId } = cause as { index?: unknown; regId?: unknown };
  if (typeof index === "number" && Number.isInteger(index) && index >= 0 && index < ids.length)
    return ids[index];
  if (typeof regId === "bigint") return ids.find((id) => id === regId);
  return undefined;
}

/**
 * Writes `saved` back to `ids` in one batch or, if the batch is refused, register by register;
 * adds what could not be written back to `failures`.
 */
function writeBack(
  plan: VcpuPlan,
  ids: readonly RegId[],
  saved: Uint8Array,
  failures: string[],
): void {
  try {
    plan.vcpu.setManyRegs(ids, saved);
    return;
  } catch {
    // The batch is all-or-nothing, so nothing of it landed; retry register by register.
  }
  let at = 0;
  for (const id of ids) {
    const size = sizeOf(id);
    try {
      plan.vcpu.setOneReg(id, saved.slice(at, at + size));
    } catch (e) {
      failures.push(`vCPU ${plan.streamIndex} ${refText(regRef(id))}: ${messageOf(e)}`);
    }
    at += size;
  }
}

/**
 * Writes back the registers that undoing `written` on `plan` changed as a side effect: those
 * whose value now differs from the saved one (a register that refuses writes may refuse even
 * its own value), or all of them if they cannot be read.
 */
function undoEffects(plan: VcpuPlan, written: ReadonlySet<RegId>, failures: string[]): void {
  if (plan.effects.length === 0) return;
  const ordering = orderingFor(plan.vcpu.arch);
  const caused = new Set<number>();
  for (const id of written) for (const k of effectRolesOf(ordering, id).causes) caused.add(k);
  const targets = new Set<RegId>();
  for (const t of plan.effects) if (caused.has(t.effect)) for (const id of t.ids) targets.add(id);
  if (targets.size === 0) return;
  const ids = [...targets];
  const saved = plan.savedValues(ids);
  let now: Uint8Array | undefined;
  try {
    now = plan.vcpu.getManyRegs(ids);
  } catch {
    now = undefined;
  }
  const changed: RegId[] = [];
  let at = 0;
  for (const id of ids) {
    const size = sizeOf(id);
    const same =
      now !== undefined && sameBytes(now.subarray(at, at + size), saved.subarray(at, at + size));
    if (!same) changed.push(id);
    at += size;
  }
  if (changed.length > 0) writeBack(plan, changed, plan.savedValues(changed), failures);
}

/**
 * Writes the journal back in the order it was written — each vCPU's phases in the arch's
 * order, then the registers their side effects changed — and returns what could not be
 * restored. Reverse order is wrong here: undoing an ISA_EXT write after sstatus was written
 * back reset sstatus.FS again.
 */
function rollBack(journal: Journal): string[] {
  const failures: string[] = [];
  const { plans, writes } = journal;
  let written = new Set<RegId>();
  for (let k = 0; k < writes.length; k++) {
    const write = writes[k];
    const plan = plans[k];
    if (write === undefined || plan === undefined) continue;
    const ids = "ids" in write ? write.ids : [write.id];
    writeBack(plan, ids, "ids" in write ? write.saved() : write.saved, failures);
    for (const id of ids) written.add(id);
    // A plan's writes are consecutive in the journal: its side effects go after the last one.
    if (plans[k + 1] !== plan) {
      undoEffects(plan, written, failures);
      written = new Set();
    }
  }
  return failures;
}

function writeFailed(
  plan: VcpuPlan,
  phase: string,
  ids: readonly RegId[],
  cause: unknown,
  journal: Journal,
): RestoreError {
  const failures = rollBack(journal);
  const id = failedRegister(cause, ids);
  const register = id === undefined ? undefined : regRef(id);
  const what =
    register === undefined
      ? `phase "${phase}" (${ids.length} registers)`
      : `${refText(register)} in phase "${phase}"`;
  const undone = journal.registers();
  const details = {
    vcpu: plan.streamIndex,
    phase,
    ...(register === undefined ? {} : { register }),
  };
  if (failures.length > 0) {
    return new RestoreError(
      "RESTORE_ROLLBACK",
      `Cannot restore vCPU ${plan.streamIndex}: writing ${what} failed (${messageOf(cause)}), and rolling back failed for ${failures.length} registers — the destination is inconsistent: ${failures.slice(0, 4).join("; ")}`,
      { ...details, rollbackFailures: failures },
      { cause },
    );
  }
  return new RestoreError(
    "RESTORE_WRITE",
    `Cannot restore vCPU ${plan.streamIndex}: writing ${what} failed (${messageOf(cause)}); the ${undone} registers already written were rolled back, the destination is as it was`,
    details,
    { cause },
  );
}

/** Registers per phase, as the report lists them. */
function phaseReport(phases: readonly PhasePlan[]): VcpuRestoreReport["phases"] {
  return phases.map((p) => ({ phase: p.phase, registers: p.ids.length + p.tries.length }));
}

/** Applies plans in order; on failure rolls back every vCPU and throws. */
function applyPlans(plans: readonly VcpuPlan[]): RestoreReport {
  const journal = new Journal();
  const reports: VcpuRestoreReport[] = [];
  for (const plan of plans) {
    const refused: { register: RegRef; reason: string }[] = [];
    let written = 0;
    for (const phase of plan.phases) {
      if (phase.ids.length > 0) {
        try {
          plan.vcpu.setManyRegs(phase.ids, phase.values);
        } catch (cause) {
          throw writeFailed(plan, phase.phase, phase.ids, cause, journal);
        }
        journal.add(plan, phase);
        written += phase.ids.length;
      }
      // Phases nearly never have tries; for-of over a shaped plan's frozen empty list still
      // allocated an iterator per phase.
      if (phase.tries.length === 0) continue;
      for (const t of phase.tries) {
        try {
          plan.vcpu.setOneReg(t.id, t.value);
        } catch (e) {
          // A refused single write changed nothing; "try" reports it and goes on.
          refused.push({
            register: regRef(t.id),
            reason: `refused by the destination: ${messageOf(e)}`,
          });
          continue;
        }
        journal.add(plan, t);
        written++;
      }
    }
    reports.push({
      vcpu: plan.streamIndex,
      comparison: plan.comparison,
      phases: plan.phaseReport ?? phaseReport(plan.phases),
      written,
      verified: plan.verified,
      skippedVmScoped: plan.skippedVmScoped,
      skippedUnchanged: plan.skippedUnchanged,
      // The plan's list as is when nothing was refused (a shaped plan's is a frozen, shared one).
      notWritten: refused.length === 0 ? plan.notWritten : [...plan.notWritten, ...refused],
    });
  }
  return { vcpus: reports };
}

/**
 * Restores one vCPU's registers from `state` (a `VcpuState` of an `arch` snapshot).
 * @throws {RestoreError} refused before writing, or failed and rolled back (see its code).
 * @throws {TypeError} on bad options.
 */
export function restoreVcpu(
  vcpu: Vcpu,
  state: VcpuState,
  arch: ArchName,
  options: RestoreOptions = {},
): VcpuRestoreReport {
  const resolved = resolveRestoreOptions(options);
  const report = withReadBuffers((buffers) =>
    applyPlans([planVcpuRestore(vcpu, state, arch, resolved, true, buffers)]),
  ).vcpus[0];
  if (report === undefined) throw new Error("restoreVcpu: no report for the single plan");
  return report;
}

// The planning-read buffers of the restore in progress, kept for the next one.
const sharedBuffers = new ReadBuffers();
let sharedBusy = false;

/**
 * Runs a restore with read buffers that are reset when it returns or throws, after which none
 * of its plans is used again. A restore started inside another (from an ioctl hook) gets
 * buffers of its own.
 */
function withReadBuffers<T>(restore: (buffers: ReadBuffers) => T): T {
  if (sharedBusy) return restore(new ReadBuffers());
  sharedBusy = true;
  try {
    return restore(sharedBuffers);
  } finally {
    sharedBuffers.reset();
    sharedBusy = false;
  }
}

/** Options of `restoreSnapshot()`. */
export interface RestoreSnapshotOptions extends RestoreOptions {
  /** Decoder options when the snapshot is given as bytes. */
  readonly decode?: DecodeOptions;
}

/**
 * Restores every vCPU of a snapshot (bytes are decoded and validated first) into the
 * destination vCPUs, matched by `index`. All vCPUs are planned before the first write; a
 * failure on any of them rolls back all of them. VM-wide registers go through the
 * lowest-index vCPU only.
 * @throws {SnapshotFormatError} if the bytes are not a valid snapshot (nothing written).
 * @throws {RestoreError} refused before writing, or failed and rolled back.
 */
export function restoreSnapshot(
  vcpus: readonly Vcpu[],
  snapshot: Snapshot | Uint8Array,
  options: RestoreSnapshotOptions = {},
): RestoreReport {
  const resolved = resolveRestoreOptions(options);
  const snap = snapshot instanceof Uint8Array ? decodeSnapshot(snapshot, options.decode) : snapshot;
  const states = new Map(snap.vcpus.map((v) => [v.index, v]));
  const dests = new Map<number, Vcpu>();
  for (const v of vcpus) {
    if (dests.has(v.index)) throw new RangeError(`Two destination vCPUs have index ${v.index}`);
    dests.set(v.index, v);
  }
  const noDest = [...states.keys()].filter((i) => !dests.has(i));
  const noState = [...dests.keys()].filter((i) => !states.has(i));
  if (noDest.length > 0 || noState.length > 0) {
    throw new RestoreError(
      "RESTORE_VCPUS",
      `Cannot restore: the snapshot has vCPUs [${[...states.keys()].join(", ")}], the destination [${[...dests.keys()].join(", ")}]`,
    );
  }
  const order = [...dests.keys()].sort((a, b) => a - b);
  return withReadBuffers((buffers) => {
    const plans = order.map((index, n) => {
      const dest = dests.get(index);
      const state = states.get(index);
      if (dest === undefined || state === undefined)
        throw new Error("restoreSnapshot: vCPU maps out of sync");
      return planVcpuRestore(dest, state, snap.arch, resolved, n === 0, buffers);
    });
    return applyPlans(plans);
  });
}

/**
 * A buffer `captureVcpu()` reuses from one capture to the next, for loops that capture again
 * and again (snapshot series, migration rounds, the benchmarks). Without one, each capture
 * allocates the whole state anew — ~24 KiB on x86, most of it CPUID's fixed-size value, plus
 * a view and an entry object per register — which the garbage collector releases only at its
 * next pass, so every capture also writes to memory that is cold in the cache.
 *
 * The state a capture returns holds views into this buffer, and when the register list has
 * not changed the next capture hands out the same `regs` array and entries again, with the
 * new values in the same views: the next capture into the same buffer overwrites the last
 * state. Encode, compare or copy a state before capturing into its buffer again. Backends
 * that cannot read into a caller's buffer (the soft backend) allocate anyway.
 */
export class CaptureBuffer {
  #bytes = new Uint8Array(0);
  // The last state's ids, its regs array as handed out, and a private copy of its entries,
  // to hand them out again only if neither the list nor the caller changed them.
  #ids: readonly RegId[] = [];
  #regs: RegValue[] = [];
  #entries: RegValue[] = [];
  #views: Uint8Array[] = [];

  /** Its first `length` bytes, after growing it if it is shorter (contents unspecified). */
  take(length: number): Uint8Array {
    if (!Number.isInteger(length) || length < 0) {
      throw new RangeError(`CaptureBuffer.take: bad length ${length}`);
    }
    if (this.#bytes.length < length) {
      this.#bytes = new Uint8Array(length);
      this.#forget();
    }
    return this.#bytes.length === length ? this.#bytes : this.#bytes.subarray(0, length);
  }

  /**
   * @internal The last state's entries when `ids` are the last capture's ids and every entry
   * is still the one handed out, with its id and its view of this buffer, else undefined.
   */
  reusable(ids: readonly RegId[]): RegValue[] | undefined {
    const last = this.#ids;
    const regs = this.#regs;
    const entries = this.#entries;
    const views = this.#views;
    if (ids.length !== last.length || regs.length !== last.length) return undefined;
    for (let i = 0; i < ids.length; i++) {
      const entry = entries[i];
      if (entry === undefined || regs[i] !== entry || ids[i] !== last[i]) return undefined;
      if (entry.id !== last[i] || entry.value !== views[i]) return undefined;
    }
    return regs;
  }

  /** @internal Remembers the state just built over this buffer. */
  remember(ids: readonly RegId[], regs: RegValue[]): void {
    this.#ids = [...ids];
    this.#regs = regs;
    this.#entries = [...regs];
    this.#views = regs.map((r) => r.value);
  }

  #forget(): void {
    this.#ids = [];
    this.#regs = [];
    this.#entries = [];
    this.#views = [];
  }
}

/** Options of `captureVcpu()`. */
export interface CaptureVcpuOptions {
  /** Read into this reused buffer instead of a new one (see `CaptureBuffer`). */
  readonly into?: CaptureBuffer;
}

/**
 * Reads a vCPU's whole state the way a snapshot carries it: `regList()`, then one batch. The
 * values are disjoint views into the batch's buffer — by default a new one that
 * `getManyRegs()` hands to its caller, so nothing else references it (a copy per register
 * cost more than the kernel calls that filled them: every Uint8Array over 64 bytes is an
 * off-heap allocation of its own, and x86 has eight of them); with `options.into`, that
 * reused buffer. Read a value's bytes through its `byteOffset`, as with any view.
 */
export function captureVcpu(vcpu: Vcpu, options: CaptureVcpuOptions = {}): VcpuState {
  const ids = vcpu.regList();
  const into = options.into;
  if (into === undefined || !readsInto(vcpu)) {
    return { index: vcpu.index, regs: viewsOf(ids, vcpu.getManyRegs(ids)) };
  }
  const bytes = into.take(packedLength(ids));
  vcpu.getManyRegsInto(ids, bytes);
  let regs = into.reusable(ids);
  if (regs === undefined) {
    regs = viewsOf(ids, bytes);
    into.remember(ids, regs);
  }
  return { index: vcpu.index, regs };
}

/** The entries of a capture: a view of `bytes` per id, back to back. */
function viewsOf(ids: readonly RegId[], bytes: Uint8Array): RegValue[] {
  const { buffer, byteOffset } = bytes;
  const regs: RegValue[] = [];
  let at = 0;
  for (const id of ids) {
    const size = sizeOf(id);
    // A short stream (a backend bug) gives short values, as slice() always did.
    const value =
      at + size <= bytes.length
        ? new Uint8Array(buffer, byteOffset + at, size)
        : bytes.slice(at, at + size);
    regs.push({ id, value });
    at += size;
  }
  return regs;
}
