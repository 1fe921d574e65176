/**
 * Flattened device tree (DTB) writer.
 *
 * Format (Devicetree Specification v0.4, chapter 5 "Flattened Devicetree (DTB) Format"), all
 * integers big-endian:
 *
 *   header, 40 bytes: magic 0xd00dfeed, totalsize, off_dt_struct, off_dt_strings,
 *     off_mem_rsvmap, version (17), last_comp_version (16), boot_cpuid_phys,
 *     size_dt_strings, size_dt_struct                                   (ten u32)
 *   memory reservation block (8-byte aligned): { u64 address, u64 size }*, ended by { 0, 0 }
 *   structure block (4-byte aligned), a stream of u32 tokens:
 *     FDT_BEGIN_NODE (1) + NUL-terminated unit name, padded to 4
 *     FDT_PROP (3) + u32 len + u32 nameoff (into the strings block) + value, padded to 4
 *     FDT_END_NODE (2), FDT_NOP (4), and one FDT_END (9) at the very end
 *   strings block: NUL-terminated property names, no alignment
 *
 * Blocks are written in the order the spec recommends: header, reservations, structure,
 * strings. Property names are stored once each. Trees are plain data (`FdtNode`); the reader
 * in ./fdt-read.ts parses a blob back into the same shape.
 */

/** DTB magic (spec §5.2). */
export const FDT_MAGIC = 0xd00dfeed;
/** Version regvisor writes (spec §5.2). */
export const FDT_VERSION = 17;
/** Oldest version the blobs claim compatibility with (`last_comp_version`, spec §5.2). */
export const FDT_LAST_COMP_VERSION = 16;
/** Header size in bytes (ten u32). */
export const FDT_HEADER_SIZE = 40;
/** Structure block tokens (spec §5.4.1). */
export const FDT_TOKEN = { BEGIN_NODE: 1, END_NODE: 2, PROP: 3, NOP: 4, END: 9 } as const;

/** One property: a name and its raw value bytes. */
export interface FdtProperty {
  readonly name: string;
  readonly value: Uint8Array;
}

/** One node: unit name (`""` for the root), properties and children in order. */
export interface FdtNode {
  readonly name: string;
  readonly properties: readonly FdtProperty[];
  readonly children: readonly FdtNode[];
}

/** One entry of the memory reservation block. */
export interface MemoryReservation {
  readonly address: bigint;
  readonly size: bigint;
}

/** Options of `writeFdt()`. */
export interface FdtWriteOptions {
  /** Header `boot_cpuid_phys` (the boot CPU's `reg`); default 0. */
  readonly bootCpuId?: number;
  /** Memory reservation entries; default none. */
  readonly reservations?: readonly MemoryReservation[];
}

/** Builds a node from a name, a `{ name: value }` map of properties and children. */
export function fdtNode(
  name: string,
  properties: Readonly<Record<string, Uint8Array>> = {},
  children: readonly FdtNode[] = [],
): FdtNode {
  return {
    name,
    properties: Object.entries(properties).map(([n, value]) => ({ name: n, value })),
    children,
  };
}

const encoder = new TextEncoder();

/** Property value encoders (spec §2.2.4 "Property Values"). */
export const fdtValue = {
  /** `<empty>`: a boolean property. */
  empty: (): Uint8Array => new Uint8Array(0),
  /** `<u32>` cells, big-endian. */
  u32(...values: readonly number[]): Uint8Array {
    const out = new Uint8Array(4 * values.length);
    const view = new DataView(out.buffer);
    values.forEach((v, i) => {
      if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new RangeError(`not a u32: ${v}`);
      view.setUint32(4 * i, v);
    });
    return out;
  },
  /** `<u64>` values, each as two cells (high, low). */
  u64(...values: readonly bigint[]): Uint8Array {
    const out = new Uint8Array(8 * values.length);
    const view = new DataView(out.buffer);
    values.forEach((v, i) => {
      if (v < 0n || v >= 1n << 64n) throw new RangeError(`not a u64: ${v}`);
      view.setBigUint64(8 * i, v);
    });
    return out;
  },
  /** `<string>`: NUL-terminated. */
  string: (text: string): Uint8Array => fdtValue.strings([text]),
  /** `<stringlist>`: NUL-terminated strings back to back. */
  strings(list: readonly string[]): Uint8Array {
    const parts = list.map((s) => {
      if (s.includes("\0")) throw new RangeError("a device-tree string cannot contain NUL");
      return encoder.encode(`${s}\0`);
    });
    return concat(parts);
  },
} as const;

/** Node names: 1–31 characters from the spec's set, starting with a letter, then `@unit`. */
const NODE_NAME = /^[A-Za-z][A-Za-z0-9,._+-]{0,30}(@[A-Za-z0-9,._+-]+)?$/;
/** Property names: 1–31 characters from the spec's set (§2.2.4.1). */
const PROP_NAME = /^[A-Za-z0-9,._+?#-]{1,31}$/;

/**
 * Serialises a tree (its root's name must be `""`) to a DTB blob.
 * @throws RangeError for a name outside the spec's character set, a duplicate property or
 *   child name, or a reservation / boot CPU id out of range.
 */
export function writeFdt(root: FdtNode, options: FdtWriteOptions = {}): Uint8Array {
  if (root.name !== "") throw new RangeError(`the root node's name must be "", got "${root.name}"`);
  const reservations = options.reservations ?? [];
  const bootCpuId = options.bootCpuId ?? 0;
  if (!Number.isInteger(bootCpuId) || bootCpuId < 0 || bootCpuId > 0xffff_ffff) {
    throw new RangeError(`bootCpuId must be a u32, got ${bootCpuId}`);
  }
  const strings = new StringTable();
  const struct = new Bytes();
  writeNode(struct, strings, root, true);
  struct.u32(FDT_TOKEN.END);
  const rsvSize = 16 * (reservations.length + 1);
  const offRsv = FDT_HEADER_SIZE;
  const offStruct = offRsv + rsvSize;
  const offStrings = offStruct + struct.length;
  const stringBytes = strings.bytes();
  const total = offStrings + stringBytes.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  const header = [
    FDT_MAGIC,
    total,
    offStruct,
    offStrings,
    offRsv,
    FDT_VERSION,
    FDT_LAST_COMP_VERSION,
    bootCpuId,
    stringBytes.length,
    struct.length,
  ];
  header.forEach((v, i) => {
    view.setUint32(4 * i, v);
  });
  reservations.forEach((r, i) => {
    if (r.address < 0n || r.size < 0n || r.address >= 1n << 64n || r.size >= 1n << 64n) {
      throw new RangeError(`memory reservation ${i} is not two u64 values`);
    }
    view.setBigUint64(offRsv + 16 * i, r.address);
    view.setBigUint64(offRsv + 16 * i + 8, r.size);
  });
  out.set(struct.bytes(), offStruct);
  out.set(stringBytes, offStrings);
  return out;
}

function writeNode(out: Bytes, strings: StringTable, node: FdtNode, isRoot: boolean): void {
  if (!isRoot && !NODE_NAME.test(node.name)) {
    throw new RangeError(`invalid device-tree node name "${node.name}"`);
  }
  out.u32(FDT_TOKEN.BEGIN_NODE);
  out.bytesPadded(encoder.encode(`${node.name}\0`));
  const seen = new Set<string>();
  for (const p of node.properties) {
    if (!PROP_NAME.test(p.name))
      throw new RangeError(`invalid property name "${p.name}" in "${node.name}"`);
    if (seen.has(p.name)) throw new RangeError(`duplicate property "${p.name}" in "${node.name}"`);
    seen.add(p.name);
    out.u32(FDT_TOKEN.PROP);
    out.u32(p.value.length);
    out.u32(strings.offsetOf(p.name));
    out.bytesPadded(p.value);
  }
  const names = new Set<string>();
  for (const child of node.children) {
    if (names.has(child.name))
      throw new RangeError(`duplicate node "${child.name}" in "${node.name}"`);
    names.add(child.name);
    writeNode(out, strings, child, false);
  }
  out.u32(FDT_TOKEN.END_NODE);
}

/** A growable big-endian byte buffer. */
class Bytes {
  private buf = new Uint8Array(256);
  length = 0;

  u32(value: number): void {
    this.reserve(4);
    new DataView(this.buf.buffer).setUint32(this.length, value);
    this.length += 4;
  }

  /** Appends bytes, then zeros up to the next multiple of 4. */
  bytesPadded(bytes: Uint8Array): void {
    const padded = (bytes.length + 3) & ~3;
    this.reserve(padded);
    this.buf.set(bytes, this.length);
    this.buf.fill(0, this.length + bytes.length, this.length + padded);
    this.length += padded;
  }

  bytes(): Uint8Array {
    return this.buf.slice(0, this.length);
  }

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
}

/** The strings block: each property name once, in first-use order. */
class StringTable {
  private readonly offsets = new Map<string, number>();
  private readonly parts: Uint8Array[] = [];
  private size = 0;

  offsetOf(name: string): number {
    const known = this.offsets.get(name);
    if (known !== undefined) return known;
    const bytes = encoder.encode(`${name}\0`);
    const offset = this.size;
    this.offsets.set(name, offset);
    this.parts.push(bytes);
    this.size += bytes.length;
    return offset;
  }

  bytes(): Uint8Array {
    return concat(this.parts);
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
