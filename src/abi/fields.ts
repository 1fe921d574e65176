/**
 * Registers whose value is a struct, by field: the one place that maps an id's arch to its
 * field tables (today the x86 pseudo-registers, ./arch/x86/pseudo-fields.ts; every other
 * register is one value and has no fields). Tools print fields through the helpers here so that
 * `--dump-regs`, `inspect` and `diff` show the same text for the same value.
 */
import type { X86Field, X86FieldSpec } from "./arch/x86/pseudo-fields.js";
import { decodeX86PseudoFields, x86PseudoFieldSpecs } from "./arch/x86/pseudo-fields.js";
import type { ArchName, RegId } from "./regid.js";
import { archOf } from "./regid.js";

/** Where one named value sits in a register value (see `X86FieldSpec`). */
export type RegFieldSpec = X86FieldSpec;

/** A field with its value: `bigint` for integers and 80-bit reals, a byte copy for `bytes`. */
export type RegField = X86Field;

interface FieldTables {
  specs(id: RegId): readonly RegFieldSpec[] | undefined;
  decode(id: RegId, value: Uint8Array): RegField[] | undefined;
}

const TABLES: Readonly<Partial<Record<ArchName, FieldTables>>> = {
  x86: { specs: x86PseudoFieldSpecs, decode: decodeX86PseudoFields },
};

/** The field layout of register `id`, or undefined when its value is not a struct. */
export function regFieldSpecs(id: RegId): readonly RegFieldSpec[] | undefined {
  const arch = archOf(id);
  return arch === undefined ? undefined : TABLES[arch]?.specs(id);
}

/**
 * The fields of a register value, in offset order; undefined when the value is not a struct.
 * @throws {RangeError} if `value` does not have the register's size.
 */
export function regFields(id: RegId, value: Uint8Array): RegField[] | undefined {
  const arch = archOf(id);
  return arch === undefined ? undefined : TABLES[arch]?.decode(id, value);
}

/** True for a field worth showing: every named field, and reserved bytes that are not zero. */
export function isShownField(field: RegField): boolean {
  if (!field.reserved) return true;
  return field.value instanceof Uint8Array ? field.value.some((b) => b !== 0) : field.value !== 0n;
}

function hexDigits(value: bigint, bits: number): string {
  return "0x" + value.toString(16).padStart(Math.ceil(bits / 4), "0");
}

function bytesHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/**
 * The number an x87 80-bit extended real stands for (Intel SDM vol. 1 §4.2.2: sign bit 79,
 * 15-bit exponent biased by 16383, 64-bit significand with an explicit integer bit), to double
 * precision.
 */
export function float80ToNumber(raw: bigint): number {
  const negative = ((raw >> 79n) & 1n) === 1n;
  const exponent = Number((raw >> 64n) & 0x7fffn);
  const significand = raw & 0xffff_ffff_ffff_ffffn;
  let value: number;
  if (exponent === 0x7fff) {
    value = (significand & 0x7fff_ffff_ffff_ffffn) === 0n ? Infinity : NaN;
  } else {
    // Split the scaling so that neither factor overflows before the product is formed.
    const shift = exponent - 16383 - 63;
    value = Number(significand) * 2 ** Math.max(shift, -1074) * 2 ** Math.min(shift + 1074, 0);
  }
  return negative ? -value : value;
}

/**
 * A field value for people: integers as `0x` + hex digits for the field's width (with the
 * value's name for enumerated fields), 80-bit reals with their value, byte arrays as hex in memory order (over 16 bytes: a count).
 */
export function fieldText(field: RegField): string {
  const { value } = field;
  if (value instanceof Uint8Array) {
    if (value.length <= 16) return bytesHex(value);
    const nonZero = value.reduce((n, b) => n + (b === 0 ? 0 : 1), 0);
    return `(${value.length} bytes, ${nonZero} non-zero)`;
  }
  const hex = hexDigits(value, field.bits);
  const symbol = field.symbols?.[Number(value)];
  if (symbol !== undefined) return `${hex} (${symbol})`;
  return field.format === "float80" && value !== 0n ? `${hex} (${float80ToNumber(value)})` : hex;
}

/**
 * A field value for JSON: a number for integers of at most 32 bits, `"0x…"` for wider integers
 * and 80-bit reals (64-bit values do not fit a JSON number), hex in memory order for bytes.
 */
export function fieldJson(field: RegField): number | string {
  const { value } = field;
  if (value instanceof Uint8Array) return bytesHex(value);
  if (field.format === "uint" && field.bits <= 32) return Number(value);
  return hexDigits(value, field.bits);
}

/** The fields shown of a register value as a JSON object `{ name: value }` (undefined: no fields). */
export function fieldsJson(
  id: RegId,
  value: Uint8Array,
): Record<string, number | string> | undefined {
  const fields = regFields(id, value);
  if (fields === undefined) return undefined;
  return Object.fromEntries(fields.filter(isShownField).map((f) => [f.name, fieldJson(f)]));
}

/** One line of a field listing: a field, or a table entry's fields on one line. */
export interface FieldRow {
  readonly name: string;
  /** Bytes (`"8"`), a bit range (`"bits 32..47"`) or, for an entry, its byte size. */
  readonly size: string;
  readonly text: string;
}

const ENTRY_FIELD = /^(.+\[\d+\])\.(\w+)$/;

function sizeText(field: RegField): string {
  if (field.derived === true) return "derived";
  return field.lsb === undefined
    ? String(field.size)
    : `bits ${field.lsb}..${field.lsb + field.bits - 1}`;
}

/**
 * The shown fields as lines for people: one per field, except that the fields of one table
 * entry (`entries[3].function`, `.eax`, …) share a line, so CPUID reads one leaf per line.
 */
export function fieldRows(fields: readonly RegField[]): FieldRow[] {
  const rows: FieldRow[] = [];
  const shown = fields.filter(isShownField);
  for (let i = 0; i < shown.length;) {
    const field = shown[i];
    if (field === undefined) break;
    const prefix = ENTRY_FIELD.exec(field.name)?.[1];
    let end = i + 1;
    while (prefix !== undefined && shown[end]?.name.startsWith(prefix + ".") === true) end++;
    if (prefix === undefined || end - i < 2) {
      rows.push({ name: field.name, size: sizeText(field), text: fieldText(field) });
      i++;
      continue;
    }
    const members = shown.slice(i, end);
    const text = members.map((m) => `${m.name.slice(prefix.length + 1)}=${fieldText(m)}`).join(" ");
    const size = members.filter((m) => m.lsb === undefined).reduce((n, m) => n + m.size, 0);
    rows.push({ name: prefix, size: String(size), text });
    i = end;
  }
  return rows;
}
