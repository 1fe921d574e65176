/**
 * C struct layouts as data. `struct()` places members by the C rules of the LP64 ABIs KVM
 * uses (x86-64, arm64, riscv64, s390x): each member at the next multiple of its natural
 * alignment (u8 1, u16 2, u32 4, u64 8, char arrays 1, a nested struct its own alignment),
 * the struct aligned to its widest member and its size rounded up to that alignment. A member
 * may instead give an explicit `at` offset, which is how unions and overlays are written.
 *
 * Layouts carry no I/O; codecs (./x86-structs.ts) and the KVM backend read offsets from them.
 * Every size and offset is pinned against docs/kvm-register-abi.md by test/abi/kvm/layouts.test.ts.
 */

/** A fixed-width little-endian unsigned integer type. */
export type Scalar = "u8" | "u16" | "u32" | "u64";

/** Byte size of each scalar type. */
export const SCALAR_SIZE: Readonly<Record<Scalar, number>> = { u8: 1, u16: 2, u32: 4, u64: 8 };

/** One field of a layout. */
export interface Field {
  /** Byte offset from the start of the enclosing struct. */
  readonly offset: number;
  /** Total byte size (element size × count for arrays). */
  readonly size: number;
  /** `"u8"`…`"u64"`, `"bytes"` (an opaque char array) or the name of a nested struct. */
  readonly type: string;
  /** Element count, present for arrays of scalars or structs (0 for a flexible array). */
  readonly count?: number;
  /** The nested layout when `type` names a struct. */
  readonly layout?: Layout;
}

/** A C struct: name, size, alignment and fields by name. */
export interface Layout<K extends string = string> {
  readonly name: string;
  readonly size: number;
  readonly align: number;
  readonly fields: Readonly<Record<K, Field>>;
}

/** The element type of a member: a scalar, an opaque byte array, or a nested struct. */
export type ElemType = Scalar | "bytes" | Layout;

/**
 * A member: `[name, type]`, `[name, type, count]` (for `"bytes"` the count is the byte length;
 * 0 is a flexible array), or `{ name, type, count?, at }` to place it at an explicit offset.
 */
export type Member =
  | readonly [name: string, type: ElemType, count?: number]
  | {
      readonly name: string;
      readonly type: ElemType;
      readonly count?: number;
      readonly at: number;
    };

type MemberName<M> = M extends readonly [infer N extends string, ...unknown[]]
  ? N
  : M extends { readonly name: infer N extends string }
    ? N
    : never;

function elemInfo(type: ElemType): { size: number; align: number; name: string } {
  if (typeof type !== "string") return { size: type.size, align: type.align, name: type.name };
  if (type === "bytes") return { size: 1, align: 1, name: "bytes" };
  return { size: SCALAR_SIZE[type], align: SCALAR_SIZE[type], name: type };
}

type TupleMember = Extract<Member, readonly unknown[]>;
type PlacedMember = Exclude<Member, readonly unknown[]>;

function isTuple(member: Member): member is TupleMember {
  return Array.isArray(member);
}

function normalize(member: Member): {
  name: string;
  type: ElemType;
  count: number | undefined;
  at: number | undefined;
} {
  if (isTuple(member)) return { name: member[0], type: member[1], count: member[2], at: undefined };
  return { name: member.name, type: member.type, count: member.count, at: member.at };
}

function alignUp(value: number, align: number): number {
  return Math.ceil(value / align) * align;
}

function makeField(type: ElemType, offset: number, count: number | undefined): Field {
  const elem = elemInfo(type);
  const n = count ?? 1;
  return {
    offset,
    size: elem.size * n,
    type: elem.name,
    ...(count !== undefined && type !== "bytes" ? { count } : {}),
    ...(typeof type === "string" ? {} : { layout: type }),
  };
}

/**
 * Lays out a C struct from its members in declaration order.
 * @throws {Error} on a duplicate member name or a misaligned explicit offset (a table bug,
 *   caught at module load).
 */
export function struct<const M extends readonly Member[]>(
  name: string,
  members: M,
): Layout<MemberName<M[number]>> {
  const fields: Record<string, Field> = {};
  let cursor = 0;
  let align = 1;
  for (const member of members) {
    const { name: mName, type, count, at } = normalize(member);
    const elem = elemInfo(type);
    if (mName in fields) throw new Error(`struct ${name}: duplicate member ${mName}`);
    if (at !== undefined && at % elem.align !== 0) {
      throw new Error(`struct ${name}: member ${mName} at ${at} is not ${elem.align}-aligned`);
    }
    const offset = at ?? alignUp(cursor, elem.align);
    const field = makeField(type, offset, count);
    fields[mName] = field;
    cursor = Math.max(cursor, offset + field.size);
    align = Math.max(align, elem.align);
  }
  // The record has exactly one entry per member name, which is what the type says.
  return Object.freeze({
    name,
    size: alignUp(cursor, align),
    align,
    fields: Object.freeze(fields) as Record<MemberName<M[number]>, Field>,
  });
}

/**
 * A C union: every member at offset 0, size = widest member rounded to the alignment.
 * @throws {Error} on a duplicate member name.
 */
export function union<const M extends readonly Member[]>(
  name: string,
  members: M,
): Layout<MemberName<M[number]>> {
  const placed = members.map((m): PlacedMember => {
    const { name: n, type: t, count: c } = normalize(m);
    return c === undefined ? { name: n, type: t, at: 0 } : { name: n, type: t, count: c, at: 0 };
  });
  // Same member names as `members`, only with `at: 0` added.
  return struct(name, placed);
}

/**
 * Absolute offset of a dotted field path (`"exception.error_code"`, `"xcrs[1].value"`) in
 * `layout`, plus `base`.
 * @throws {RangeError} if the path names no field or an index is out of range.
 */
export function offsetOf(layout: Layout, path: string, base = 0): number {
  let current: Layout | undefined = layout;
  let offset = base;
  for (const part of path.split(".")) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$/.exec(part);
    const field: Field | undefined =
      match?.[1] === undefined ? undefined : current?.fields[match[1]];
    if (match === null || field === undefined) {
      throw new RangeError(`${layout.name} has no field "${path}"`);
    }
    offset += field.offset;
    if (match[2] !== undefined) {
      const index = Number(match[2]);
      const count = field.count ?? (field.type === "bytes" ? field.size : 1);
      if (index >= count)
        throw new RangeError(`${layout.name}.${path}: index ${index} >= ${count}`);
      offset += index * (field.size / count);
    }
    current = field.layout;
  }
  return offset;
}

/** Field offsets of `layout` shifted by `base`, e.g. an exit payload's absolute offsets in kvm_run. */
export function absoluteOffsets<K extends string>(
  layout: Layout<K>,
  base: number,
): Readonly<Record<K, number>> {
  const out: Partial<Record<K, number>> = {};
  for (const key of Object.keys(layout.fields) as K[]) out[key] = layout.fields[key].offset + base;
  // Every key of layout.fields was filled above.
  return Object.freeze(out as Record<K, number>);
}
