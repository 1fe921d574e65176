/**
 * Register-level differences between two snapshots, or between a snapshot's vCPU state and
 * a live vCPU. Results are plain JSON (ids and values as hex strings) for `regvisor diff
 * --json`; `renderDiff()` prints them for people.
 */
import { fieldText, regFields, type RegField } from "../../abi/fields.js";
import type { RegId } from "../../abi/regid.js";
import type { Vcpu } from "../../backends/vcpu.js";
import { differingRanges, refText, regRef, sameBytes, valueHex } from "./describe.js";
import type { RegRef } from "./errors.js";
import { changedPageCount, regionLength } from "./memory-pages.js";
import { type MemoryRegion, type RegValue, type Snapshot, type VcpuState } from "./model.js";
import { captureVcpu } from "./restore.js";

/** A register on one side only, with its value. */
export interface RegPresence extends RegRef {
  readonly value: string;
}

/** A register whose value differs. */
export interface RegChange extends RegRef {
  readonly old: string;
  readonly new: string;
  /** For values over 16 bytes: the differing byte ranges `[start, end)`. */
  readonly ranges?: readonly (readonly [number, number])[];
  /** For struct registers (x86 pseudo-registers): the fields that changed, by name. */
  readonly fields?: readonly FieldChange[];
}

/** One changed field of a struct register, values as `fieldText()` prints them. */
export interface FieldChange {
  readonly name: string;
  readonly old: string;
  readonly new: string;
}

function sameField(a: RegField, b: RegField): boolean {
  if (a.value instanceof Uint8Array || b.value instanceof Uint8Array) {
    return (
      a.value instanceof Uint8Array && b.value instanceof Uint8Array && sameBytes(a.value, b.value)
    );
  }
  return a.value === b.value;
}

/**
 * The fields that differ between two values of one struct register, compared position by
 * position (reserved bytes included, so every changed byte is named); undefined when the
 * register has no fields or the sizes differ.
 */
export function changedFields(id: RegId, a: Uint8Array, b: Uint8Array): FieldChange[] | undefined {
  if (a.length !== b.length) return undefined;
  const before = regFields(id, a);
  const after = regFields(id, b);
  if (before === undefined || after === undefined) return undefined;
  return after.flatMap((field, i) => {
    const old = before[i];
    if (old === undefined || sameField(old, field)) return [];
    return [{ name: field.name, old: fieldText(old), new: fieldText(field) }];
  });
}

/** Differences of one vCPU: `added` = only in B, `removed` = only in A. */
export interface VcpuDiff {
  readonly vcpu: number;
  readonly added: readonly RegPresence[];
  readonly removed: readonly RegPresence[];
  readonly changed: readonly RegChange[];
  readonly unchanged: number;
}

/** A memory slot that differs. */
export interface MemoryDiff {
  readonly slot: number;
  readonly status: "added" | "removed" | "moved" | "changed";
  /** `0x…` guest-physical address (B's, or A's when removed). */
  readonly gpa: string;
  readonly length: number;
  /** `changed`: 4 KiB pages whose bytes differ. */
  readonly changedPages?: number;
}

/** Differences between two snapshots. */
export interface SnapshotDiff {
  /** True when arch, backend, flags, registers, memory and devices are all equal (META is not compared). */
  readonly identical: boolean;
  readonly header: readonly { readonly field: string; readonly a: string; readonly b: string }[];
  readonly vcpus: readonly VcpuDiff[];
  readonly vcpusOnlyInA: readonly number[];
  readonly vcpusOnlyInB: readonly number[];
  readonly memory: readonly MemoryDiff[];
  readonly devices: readonly {
    readonly name: string;
    readonly status: "added" | "removed" | "changed";
  }[];
}

const presence = (r: RegValue): RegPresence => ({ ...regRef(r.id), value: valueHex(r.value) });

/** Differences between two register sets (A = before, B = after). */
export function diffRegs(a: readonly RegValue[], b: readonly RegValue[], vcpu = 0): VcpuDiff {
  const inB = new Map<RegId, Uint8Array>(b.map((r) => [r.id, r.value]));
  const inA = new Set<RegId>(a.map((r) => r.id));
  const changed: RegChange[] = [];
  const removed: RegPresence[] = [];
  let unchanged = 0;
  for (const r of a) {
    const other = inB.get(r.id);
    if (other === undefined) removed.push(presence(r));
    else if (sameBytes(r.value, other)) unchanged++;
    else {
      const ranges = r.value.length > 16 ? { ranges: differingRanges(r.value, other) } : {};
      const fields = changedFields(r.id, r.value, other);
      changed.push({
        ...regRef(r.id),
        old: valueHex(r.value),
        new: valueHex(other),
        ...ranges,
        ...(fields === undefined ? {} : { fields }),
      });
    }
  }
  const added = b.filter((r) => !inA.has(r.id)).map(presence);
  return { vcpu, added, removed, changed, unchanged };
}

/** Differences between a saved vCPU state (A) and a live vCPU now (B). */
export function diffLive(state: VcpuState, vcpu: Vcpu): VcpuDiff {
  return diffRegs(state.regs, captureVcpu(vcpu).regs, state.index);
}

const gpaHex = (gpa: bigint): string => "0x" + gpa.toString(16);

function diffMemory(a: readonly MemoryRegion[], b: readonly MemoryRegion[]): MemoryDiff[] {
  const out: MemoryDiff[] = [];
  const bySlot = new Map(b.map((m) => [m.slot, m]));
  const aSlots = new Set(a.map((m) => m.slot));
  for (const m of a) {
    const o = bySlot.get(m.slot);
    const base = {
      slot: m.slot,
      gpa: gpaHex(o?.gpa ?? m.gpa),
      length: regionLength(o ?? m),
    };
    if (o === undefined) out.push({ ...base, status: "removed" });
    else if (o.gpa !== m.gpa || regionLength(o) !== regionLength(m) || o.flags !== m.flags)
      out.push({ ...base, status: "moved" });
    else {
      // Only the pages either file holds: absent pages are zero on that side.
      const pages = changedPageCount(m, o);
      if (pages > 0) out.push({ ...base, status: "changed", changedPages: pages });
    }
  }
  for (const m of b)
    if (!aSlots.has(m.slot))
      out.push({ slot: m.slot, status: "added", gpa: gpaHex(m.gpa), length: regionLength(m) });
  return out;
}

/** Differences between snapshots A and B. */
export function diffSnapshots(a: Snapshot, b: Snapshot): SnapshotDiff {
  const header = (["arch", "backend", "flags"] as const)
    .filter((f) => a[f] !== b[f])
    .map((field) => ({ field, a: String(a[field]), b: String(b[field]) }));
  const bVcpus = new Map(b.vcpus.map((v) => [v.index, v]));
  const aIndices = new Set(a.vcpus.map((v) => v.index));
  const vcpus: VcpuDiff[] = [];
  for (const v of a.vcpus) {
    const o = bVcpus.get(v.index);
    if (o !== undefined) vcpus.push(diffRegs(v.regs, o.regs, v.index));
  }
  const bDevices = new Map(b.devices.map((d) => [d.name, d.data]));
  const aDevices = new Set(a.devices.map((d) => d.name));
  const devices: { name: string; status: "added" | "removed" | "changed" }[] = [];
  for (const d of a.devices) {
    const o = bDevices.get(d.name);
    if (o === undefined) devices.push({ name: d.name, status: "removed" });
    else if (!sameBytes(d.data, o)) devices.push({ name: d.name, status: "changed" });
  }
  for (const d of b.devices)
    if (!aDevices.has(d.name)) devices.push({ name: d.name, status: "added" });
  const vcpusOnlyInA = a.vcpus.filter((v) => !bVcpus.has(v.index)).map((v) => v.index);
  const vcpusOnlyInB = b.vcpus.filter((v) => !aIndices.has(v.index)).map((v) => v.index);
  const memory = diffMemory(a.memory, b.memory);
  const regsEqual = vcpus.every((v) => v.added.length + v.removed.length + v.changed.length === 0);
  const identical =
    header.length === 0 &&
    regsEqual &&
    vcpusOnlyInA.length === 0 &&
    vcpusOnlyInB.length === 0 &&
    memory.length === 0 &&
    devices.length === 0;
  return { identical, header, vcpus, vcpusOnlyInA, vcpusOnlyInB, memory, devices };
}

/** Human rendering of a diff, one difference per line. */
export function renderDiff(d: SnapshotDiff): string {
  if (d.identical) return "snapshots are identical (META not compared)\n";
  const lines: string[] = [];
  for (const h of d.header) lines.push(`header ${h.field}: ${h.a} -> ${h.b}`);
  for (const i of d.vcpusOnlyInA) lines.push(`vcpu ${i}: only in A`);
  for (const i of d.vcpusOnlyInB) lines.push(`vcpu ${i}: only in B`);
  for (const v of d.vcpus) {
    for (const r of v.removed) lines.push(`vcpu ${v.vcpu} - ${refText(r)} = ${r.value}`);
    for (const r of v.added) lines.push(`vcpu ${v.vcpu} + ${refText(r)} = ${r.value}`);
    for (const c of v.changed) {
      if (c.fields !== undefined) {
        const name = c.name ?? c.id;
        for (const f of c.fields)
          lines.push(`vcpu ${v.vcpu} ~ ${name}.${f.name}: ${f.old} -> ${f.new}`);
        continue;
      }
      const where =
        c.ranges === undefined
          ? ""
          : ` (bytes ${c.ranges.map(([s, e]) => `${s}..${e - 1}`).join(", ")})`;
      lines.push(`vcpu ${v.vcpu} ~ ${refText(c)}${where}: ${c.old} -> ${c.new}`);
    }
  }
  for (const m of d.memory) {
    const pages = m.changedPages === undefined ? "" : `, ${m.changedPages} pages differ`;
    lines.push(`memory slot ${m.slot} at ${m.gpa} (${m.length} bytes): ${m.status}${pages}`);
  }
  for (const dev of d.devices) lines.push(`device ${dev.name}: ${dev.status}`);
  return lines.join("\n") + "\n";
}
