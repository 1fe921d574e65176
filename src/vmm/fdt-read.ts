/**
 * Flattened device tree (DTB) reader, for untrusted blobs.
 *
 * Parses the format described at the top of ./fdt.ts (Devicetree Specification v0.4, ch. 5)
 * back into `FdtNode` trees. Every header offset and size is checked against `totalsize` and
 * the buffer, every token, name and property value against its block, nesting is capped at
 * `MAX_FDT_DEPTH`; only `FdtError` (or `RangeError`) escapes. Values are copied, so the
 * tree does not alias the blob.
 */
import { RegvisorError } from "../errors.js";
import {
  FDT_HEADER_SIZE,
  FDT_MAGIC,
  FDT_TOKEN,
  FDT_VERSION,
  type FdtNode,
  type FdtProperty,
  type MemoryReservation,
} from "./fdt.js";

/** Stable codes of `FdtError`. */
export type FdtErrorCode =
  "FDT_TRUNCATED" | "FDT_BAD_MAGIC" | "FDT_BAD_VERSION" | "FDT_BAD_LAYOUT" | "FDT_BAD_STRUCTURE";

/** A device tree blob could not be parsed. */
export class FdtError extends RegvisorError {
  declare readonly code: FdtErrorCode;

  constructor(code: FdtErrorCode, message: string) {
    super(code, `Cannot read device tree: ${message}`);
  }
}

/** Nodes nested deeper than this are refused (real trees are < 10 deep). */
export const MAX_FDT_DEPTH = 64;

/** A parsed blob. */
export interface Fdt {
  readonly version: number;
  readonly lastCompVersion: number;
  readonly bootCpuId: number;
  readonly reservations: readonly MemoryReservation[];
  readonly root: FdtNode;
}

const decoder = new TextDecoder("utf-8");

/**
 * Parses a DTB blob (format version 16 or 17 and compatible successors).
 * @throws FdtError for anything malformed.
 */
export function readFdt(blob: Uint8Array): Fdt {
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  if (blob.length >= 4 && view.getUint32(0) !== FDT_MAGIC) fail("FDT_BAD_MAGIC", "bad magic");
  if (blob.length < FDT_HEADER_SIZE)
    fail("FDT_TRUNCATED", `${blob.length} bytes, shorter than the header`);
  const h = (i: number): number => view.getUint32(4 * i);
  const [total, offStruct, offStrings, offRsv, version, lastComp, bootCpuId, sizeStrings] = [
    h(1),
    h(2),
    h(3),
    h(4),
    h(5),
    h(6),
    h(7),
    h(8),
  ] as [number, number, number, number, number, number, number, number];
  if (version < 16 || lastComp > FDT_VERSION) {
    fail("FDT_BAD_VERSION", `version ${version} (compatible with ${lastComp}) is not readable`);
  }
  if (total > blob.length)
    fail("FDT_TRUNCATED", `totalsize ${total} but only ${blob.length} bytes`);
  if (total < FDT_HEADER_SIZE)
    fail("FDT_BAD_LAYOUT", `totalsize ${total} is below the header size`);
  // Version 16 has no size_dt_struct; the structure block then runs to the end of the blob.
  const sizeStruct = version >= 17 ? h(9) : total - offStruct;
  checkBlock("structure", offStruct, sizeStruct, total, 4);
  checkBlock("strings", offStrings, sizeStrings, total, 1);
  checkBlock("memory reservation", offRsv, 16, total, 8);
  const reservations = readReservations(view, offRsv, total);
  const structView = new DataView(blob.buffer, blob.byteOffset + offStruct, sizeStruct);
  const strings = blob.subarray(offStrings, offStrings + sizeStrings);
  const root = new StructParser(structView, strings).parse();
  return { version, lastCompVersion: lastComp, bootCpuId, reservations, root };
}

function checkBlock(
  name: string,
  offset: number,
  size: number,
  total: number,
  align: number,
): void {
  if (offset < FDT_HEADER_SIZE || offset % align !== 0 || offset + size > total) {
    fail("FDT_BAD_LAYOUT", `${name} block at ${offset} (+${size}) is misplaced in ${total} bytes`);
  }
}

function readReservations(view: DataView, offset: number, total: number): MemoryReservation[] {
  const out: MemoryReservation[] = [];
  for (let at = offset; ; at += 16) {
    if (at + 16 > total) fail("FDT_TRUNCATED", "memory reservation block has no terminator");
    const address = view.getBigUint64(at);
    const size = view.getBigUint64(at + 8);
    if (address === 0n && size === 0n) return out;
    out.push({ address, size });
  }
}

/** Walks the structure block token by token. */
class StructParser {
  private at = 0;

  constructor(
    private readonly view: DataView,
    private readonly strings: Uint8Array,
  ) {}

  parse(): FdtNode {
    if (this.nextToken() !== FDT_TOKEN.BEGIN_NODE) {
      fail("FDT_BAD_STRUCTURE", "the structure block does not start with a node");
    }
    const root = this.node(0);
    if (this.nextToken() !== FDT_TOKEN.END) {
      fail("FDT_BAD_STRUCTURE", "something other than FDT_END follows the root node");
    }
    return root;
  }

  /** Reads the next token, skipping FDT_NOP. */
  private nextToken(): number {
    for (;;) {
      if (this.at + 4 > this.view.byteLength)
        fail("FDT_TRUNCATED", "structure block ends mid-stream");
      const token = this.view.getUint32(this.at);
      this.at += 4;
      if (token !== FDT_TOKEN.NOP) return token;
    }
  }

  /** Parses a node whose FDT_BEGIN_NODE was just read. */
  private node(depth: number): FdtNode {
    if (depth > MAX_FDT_DEPTH)
      fail("FDT_BAD_STRUCTURE", `nodes nested deeper than ${MAX_FDT_DEPTH}`);
    const bytes = new Uint8Array(this.view.buffer, this.view.byteOffset, this.view.byteLength);
    const nul = bytes.indexOf(0, this.at);
    if (nul < 0) fail("FDT_TRUNCATED", "node name runs off the structure block");
    const name = decoder.decode(bytes.subarray(this.at, nul));
    this.at = align4(nul + 1);
    const properties: FdtProperty[] = [];
    const children: FdtNode[] = [];
    for (;;) {
      const token = this.nextToken();
      if (token === FDT_TOKEN.END_NODE) return { name, properties, children };
      if (token === FDT_TOKEN.BEGIN_NODE) {
        children.push(this.node(depth + 1));
      } else if (token === FDT_TOKEN.PROP) {
        if (children.length > 0)
          fail("FDT_BAD_STRUCTURE", `property after a child node in "${name}"`);
        properties.push(this.property(bytes));
      } else {
        fail(
          "FDT_BAD_STRUCTURE",
          `unexpected token ${token} at offset ${this.at - 4} in "${name}"`,
        );
      }
    }
  }

  private property(bytes: Uint8Array): FdtProperty {
    if (this.at + 8 > this.view.byteLength)
      fail("FDT_TRUNCATED", "property header runs off the block");
    const len = this.view.getUint32(this.at);
    const nameOff = this.view.getUint32(this.at + 4);
    this.at += 8;
    if (len > this.view.byteLength - this.at)
      fail("FDT_TRUNCATED", `property value of ${len} bytes runs off the block`);
    const value = bytes.slice(this.at, this.at + len);
    this.at = align4(this.at + len);
    if (nameOff >= this.strings.length)
      fail("FDT_BAD_STRUCTURE", `property name offset ${nameOff} outside the strings block`);
    const nul = this.strings.indexOf(0, nameOff);
    if (nul < 0) fail("FDT_BAD_STRUCTURE", "property name runs off the strings block");
    return { name: decoder.decode(this.strings.subarray(nameOff, nul)), value };
  }
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

function fail(code: FdtErrorCode, message: string): never {
  throw new FdtError(code, message);
}

/** The node at a `/`-separated path (`"/"` is the root; `"/cpus/cpu@0"`), or `undefined`. */
export function findNode(root: FdtNode, path: string): FdtNode | undefined {
  let node: FdtNode | undefined = root;
  for (const part of path.split("/").filter((p) => p !== "")) {
    node = node?.children.find((c) => c.name === part);
  }
  return node;
}

/** The raw value of a property, or `undefined`. */
export function propValue(node: FdtNode, name: string): Uint8Array | undefined {
  return node.properties.find((p) => p.name === name)?.value;
}

/** A `<stringlist>` property as strings, or `undefined` if absent or not NUL-terminated. */
export function propStrings(node: FdtNode, name: string): string[] | undefined {
  const value = propValue(node, name);
  if (value === undefined || value.length === 0 || value[value.length - 1] !== 0) return undefined;
  return decoder.decode(value.subarray(0, value.length - 1)).split("\0");
}

/** A property's big-endian u32 cells, or `undefined` if absent or not a multiple of 4 bytes. */
export function propCells(node: FdtNode, name: string): number[] | undefined {
  const value = propValue(node, name);
  if (value === undefined || value.length % 4 !== 0) return undefined;
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  return Array.from({ length: value.length / 4 }, (_, i) => view.getUint32(4 * i));
}
