/**
 * Layout-driven little-endian codec: turns the bytes of any `Layout` into a plain object and
 * back. u8/u16/u32 fields decode to `number`, u64 to `bigint`, `"bytes"` fields to a copied
 * `Uint8Array`, arrays to JS arrays and nested structs to nested objects. Every byte of the
 * struct belongs to some field (padding members included), so decode → encode is byte-exact.
 *
 * Overlapping members (unions written with an explicit `at`) are all decoded; on encode they
 * are written in declaration order, so the last one wins. KVM structs are little-endian on
 * every host regvisor supports (x86-64, arm64 LE, riscv64).
 */
import type { Field, Layout } from "./layout.js";
import { SCALAR_SIZE } from "./layout.js";

/** A decoded field value. */
export type FieldValue = number | bigint | Uint8Array | readonly FieldValue[] | StructValue;

/** A decoded struct: field name → value. */
export interface StructValue {
  readonly [field: string]: FieldValue;
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function checkRoom(layout: Layout, bytes: Uint8Array, offset: number): void {
  if (!Number.isInteger(offset) || offset < 0 || offset + layout.size > bytes.byteLength) {
    throw new RangeError(
      `${layout.name} needs ${layout.size} bytes at offset ${offset}, buffer has ${bytes.byteLength}`,
    );
  }
}

function readElem(view: DataView, at: number, field: Field): FieldValue {
  switch (field.type) {
    case "u8":
      return view.getUint8(at);
    case "u16":
      return view.getUint16(at, true);
    case "u32":
      return view.getUint32(at, true);
    case "u64":
      return view.getBigUint64(at, true);
    default:
      if (field.layout === undefined) throw new Error(`field type ${field.type} has no layout`);
      return readStruct(field.layout, view, at);
  }
}

function readStruct(layout: Layout, view: DataView, base: number): StructValue {
  const out: Record<string, FieldValue> = {};
  for (const [name, field] of Object.entries(layout.fields)) {
    const at = base + field.offset;
    if (field.type === "bytes") {
      out[name] = new Uint8Array(view.buffer, view.byteOffset + at, field.size).slice();
    } else if (field.count === undefined) {
      out[name] = readElem(view, at, field);
    } else {
      const stride = field.count === 0 ? 0 : field.size / field.count;
      out[name] = Array.from({ length: field.count }, (_, i) =>
        readElem(view, at + i * stride, field),
      );
    }
  }
  return out;
}

/**
 * Decodes `layout.size` bytes of `bytes` starting at `offset`.
 * @throws {RangeError} if the buffer is too short.
 */
export function decodeLayout(layout: Layout, bytes: Uint8Array, offset = 0): StructValue {
  checkRoom(layout, bytes, offset);
  return readStruct(layout, viewOf(bytes), offset);
}

function writeScalar(
  view: DataView,
  at: number,
  type: string,
  value: FieldValue,
  path: string,
): void {
  if (type === "u64") {
    if (typeof value !== "bigint") throw new TypeError(`${path} must be a bigint`);
    if (value < 0n || value >= 1n << 64n) throw new RangeError(`${path} does not fit in u64`);
    view.setBigUint64(at, value, true);
    return;
  }
  if (typeof value !== "number") throw new TypeError(`${path} must be a number`);
  const bits = 8 * scalarSize(type);
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** bits) {
    throw new RangeError(`${path} = ${value} does not fit in u${bits}`);
  }
  if (bits === 8) view.setUint8(at, value);
  else if (bits === 16) view.setUint16(at, value, true);
  else view.setUint32(at, value, true);
}

function scalarSize(type: string): number {
  if (type === "u8" || type === "u16" || type === "u32") return SCALAR_SIZE[type];
  throw new Error(`field type ${type} is not a scalar`);
}

function isStructValue(value: FieldValue | undefined): value is StructValue {
  return typeof value === "object" && !(value instanceof Uint8Array) && !Array.isArray(value);
}

function writeElem(
  view: DataView,
  at: number,
  field: Field,
  value: FieldValue,
  path: string,
): void {
  if (field.layout === undefined) {
    writeScalar(view, at, field.type, value, path);
    return;
  }
  if (!isStructValue(value)) throw new TypeError(`${path} must be a ${field.type} object`);
  writeStruct(field.layout, value, view, at, path);
}

function writeStruct(
  layout: Layout,
  value: StructValue,
  view: DataView,
  base: number,
  path: string,
): void {
  for (const [name, field] of Object.entries(layout.fields)) {
    const at = base + field.offset;
    const v = value[name];
    const p = `${path}.${name}`;
    if (v === undefined) throw new TypeError(`${p} is missing`);
    if (field.type === "bytes") {
      if (!(v instanceof Uint8Array)) throw new TypeError(`${p} must be a Uint8Array`);
      if (v.length !== field.size)
        throw new RangeError(`${p} must be ${field.size} bytes, got ${v.length}`);
      new Uint8Array(view.buffer, view.byteOffset + at, field.size).set(v);
    } else if (field.count === undefined) {
      writeElem(view, at, field, v, p);
    } else {
      if (!Array.isArray(v)) throw new TypeError(`${p} must be an array`);
      const items: readonly FieldValue[] = v;
      if (items.length !== field.count) {
        throw new RangeError(`${p} must have ${field.count} elements, got ${items.length}`);
      }
      const stride = field.count === 0 ? 0 : field.size / field.count;
      items.forEach((item, i) => {
        writeElem(view, at + i * stride, field, item, `${p}[${i}]`);
      });
    }
  }
}

/**
 * Encodes `value` into `out` at `offset` (a new zeroed buffer of `layout.size` by default).
 * @throws {TypeError} if a field is missing or has the wrong JS type.
 * @throws {RangeError} if a number does not fit its field, an array or byte field has the
 *   wrong length, or `out` is too short.
 */
export function encodeLayout(
  layout: Layout,
  value: StructValue,
  out: Uint8Array = new Uint8Array(layout.size),
  offset = 0,
): Uint8Array {
  checkRoom(layout, out, offset);
  writeStruct(layout, value, viewOf(out), offset, layout.name);
  return out;
}
