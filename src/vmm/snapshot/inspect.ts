/**
 * A JSON-able summary of a snapshot for `regvisor inspect FILE [--json]`: header, sections
 * with offsets and sizes, registers by name and size, memory ranges, devices; and its text
 * rendering.
 */
import { decodeReg } from "../../abi/catalog.js";
import { fieldRows, fieldsJson, regFields } from "../../abi/fields.js";
import { formatRegId } from "../../abi/regid.js";
import { valueHex } from "./describe.js";
import { decodeSnapshot, type DecodeOptions } from "./format.js";
import { regionLength, regionPages, zeroPageCount } from "./memory-pages.js";
import {
  type DecodedSnapshot,
  type SectionInfo,
  type Snapshot,
  type SnapshotMeta,
} from "./model.js";
import { SECTION_TYPES } from "./model.js";

/** One register in a summary. */
export interface RegisterSummary {
  readonly id: string;
  /** Catalog name, or null when the catalog does not know the id (carried opaquely). */
  readonly name: string | null;
  readonly class: string | null;
  readonly size: number;
  /** Present with `values: true`. */
  readonly value?: string;
  /** With `values: true`, for struct registers (x86 pseudo-registers): the fields by name. */
  readonly fields?: Readonly<Record<string, number | string>>;
}

/** A snapshot, summarised. */
export interface SnapshotSummary {
  readonly format: { readonly major: number; readonly minor: number };
  readonly arch: string;
  readonly backend: string;
  readonly flags: number;
  readonly totalBytes: number;
  readonly meta: SnapshotMeta;
  readonly sections: readonly SectionInfo[];
  readonly skipped: readonly SectionInfo[];
  readonly vcpus: readonly {
    readonly index: number;
    readonly registerCount: number;
    readonly valueBytes: number;
    readonly unknownCount: number;
    readonly registers: readonly RegisterSummary[];
  }[];
  readonly memory: readonly {
    readonly slot: number;
    readonly gpa: string;
    readonly length: number;
    readonly flags: number;
    readonly encoding: "raw" | "sparse";
    /** Payload bytes in the file. */
    readonly storedBytes: number;
    readonly zeroPages: number;
    readonly pages: number;
  }[];
  readonly devices: readonly { readonly name: string; readonly bytes: number }[];
}

/** Options of `inspectSnapshot()`. */
export interface InspectOptions {
  /** Include register values as hex (default false). */
  readonly values?: boolean;
  readonly decode?: DecodeOptions;
}

/**
 * Summarises a snapshot (bytes are decoded and validated first).
 * @throws {SnapshotFormatError} if the bytes are not a valid snapshot.
 */
export function inspectSnapshot(
  input: Uint8Array | DecodedSnapshot,
  options: InspectOptions = {},
): SnapshotSummary {
  const s = input instanceof Uint8Array ? decodeSnapshot(input, options.decode) : input;
  const memorySections = s.sections.filter((x) => x.type === SECTION_TYPES.MEMORY);
  return {
    format: s.version,
    arch: s.arch,
    backend: s.backend,
    flags: s.flags,
    totalBytes: s.totalBytes,
    meta: s.meta,
    sections: s.sections,
    skipped: s.skipped,
    vcpus: s.vcpus.map((v) => {
      const registers = v.regs.map((r): RegisterSummary => {
        const info = decodeReg(r.id);
        const fields = options.values === true ? fieldsJson(r.id, r.value) : undefined;
        return {
          id: formatRegId(r.id),
          name: info.known ? info.name : null,
          class: info.known ? info.class : null,
          size: r.value.length,
          ...(options.values === true ? { value: valueHex(r.value) } : {}),
          ...(fields === undefined ? {} : { fields }),
        };
      });
      return {
        index: v.index,
        registerCount: v.regs.length,
        valueBytes: v.regs.reduce((n, r) => n + r.value.length, 0),
        unknownCount: registers.filter((r) => r.name === null).length,
        registers,
      };
    }),
    memory: s.memory.map((m, i) => ({
      slot: m.slot,
      gpa: "0x" + m.gpa.toString(16),
      length: regionLength(m),
      flags: m.flags,
      encoding: memorySections[i]?.encoding ?? "raw",
      storedBytes: memorySections[i]?.length ?? 0,
      // From the bitmap and the stored pages: never the declared length byte by byte.
      zeroPages: zeroPageCount(m),
      pages: regionPages(m),
    })),
    devices: s.devices.map((d) => ({ name: d.name, bytes: d.data.length })),
  };
}

/** Field lines under a register (struct registers, when the summary has values). */
function fieldLines(snapshot: Snapshot | undefined, vcpu: number, reg: number): string[] {
  const r = snapshot?.vcpus[vcpu]?.regs[reg];
  const fields = r === undefined ? undefined : regFields(r.id, r.value);
  if (fields === undefined) return [];
  const rows = fieldRows(fields);
  const width = Math.max(...rows.map((f) => f.name.length));
  return rows.map((f) => `      ${f.name.padEnd(width)}  ${f.text}`);
}

/**
 * Text rendering of a summary; `registers: false` prints counts only. With `snapshot` (the one
 * summarised) and values in the summary, struct registers are followed by their fields.
 */
export function renderSummary(
  sum: SnapshotSummary,
  options: { readonly registers?: boolean; readonly snapshot?: Snapshot } = {},
): string {
  const out: string[] = [];
  out.push(
    `regvisor snapshot ${sum.format.major}.${sum.format.minor}: ${sum.arch}, backend ${sum.backend}, ${sum.totalBytes} bytes, ${sum.sections.length} sections`,
  );
  const meta = Object.entries(sum.meta).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  if (meta.length > 0) out.push(`meta: ${meta.join(" ")}`);
  out.push("sections:");
  for (const x of sum.sections) {
    const extra = x.encoding === undefined ? "" : ` ${x.encoding}`;
    const opt = x.optional ? " optional" : "";
    out.push(
      `  #${x.index} ${x.typeName.padEnd(12)} offset ${String(x.offset).padStart(10)}  length ${String(x.length).padStart(10)}${extra}${opt}`,
    );
  }
  for (const x of sum.skipped)
    out.push(`  (skipped unknown optional section #${x.index} type ${x.type})`);
  sum.vcpus.forEach((v, vi) => {
    const unknown = v.unknownCount === 0 ? "" : `, ${v.unknownCount} unknown to the catalog`;
    out.push(
      `vcpu ${v.index}: ${v.registerCount} registers, ${v.valueBytes} value bytes${unknown}`,
    );
    if (options.registers === false) return;
    const width = Math.max(8, ...v.registers.map((r) => (r.name ?? "?").length));
    v.registers.forEach((r, ri) => {
      const fields = r.value === undefined ? [] : fieldLines(options.snapshot, vi, ri);
      const value = r.value === undefined ? "" : fields.length > 0 ? "  by field:" : `  ${r.value}`;
      out.push(
        `  ${(r.name ?? "(unknown)").padEnd(width)}  ${r.id}  ${String(r.size).padStart(5)} B${value}`,
        ...fields,
      );
    });
  });
  for (const m of sum.memory) {
    const stored =
      m.encoding === "sparse"
        ? `sparse, ${m.pages - m.zeroPages} of ${m.pages} pages stored`
        : "raw";
    out.push(
      `memory slot ${m.slot}: gpa ${m.gpa}, ${m.length} bytes, flags 0x${m.flags.toString(16)} (${stored}, ${m.storedBytes} bytes in file)`,
    );
  }
  for (const d of sum.devices) out.push(`device ${JSON.stringify(d.name)}: ${d.bytes} bytes`);
  return out.join("\n") + "\n";
}
