/**
 * GDB registers over the generic register interface: each GDB register is a whole vCPU register
 * (by its KVM id), a bit field of one (RISC-V `fflags`/`frm` inside `fcsr`), or a constant
 * (RISC-V `zero`). An arch's planner (src/vmm/arch/<arch>/gdb.ts) turns the vCPU's `regList()`
 * into a `GdbPlan`; this file turns the plan into a target description (GDB manual, "Target
 * Description Format") and moves values between the register stream and GDB's hex.
 *
 * The `g` packet carries the first `gCount` registers in regnum order (GDB fetches the rest with
 * `p`, as its remote.c does for registers beyond the `g` reply's length), all read with one
 * `getManyRegs` batch and written with one `setManyRegs`.
 */
import { regSize, type RegId } from "../../abi/regid.js";
import { decodeLE, encodeLE } from "../../abi/value.js";

/** Where a GDB register's value lives. */
export type GdbSource =
  /**
   * Bits [shift, shift + width) of vCPU register `id`, zero-extended to the GDB register's
   * bitsize (the whole register when shift is 0 and width is its size in bits).
   */
  | { readonly id: RegId; readonly shift: number; readonly width: number }
  /** Always this value; writes are ignored (RISC-V x0). */
  | { readonly constant: bigint }
  /**
   * A value computed from register `id` by the arch (x86's full x87 tag word from the abridged
   * one): `read` gives it, `write` returns the register's new bytes.
   */
  | {
      readonly id: RegId;
      readonly read: (value: Uint8Array) => bigint;
      readonly write: (value: Uint8Array, to: bigint) => Uint8Array;
    };

/** One register in the target description. */
export interface GdbReg {
  readonly name: string;
  readonly bitsize: number;
  /** Target-description type: "int", "code_ptr", "data_ptr", "ieee_double", "uint128", … */
  readonly type: string;
  readonly regnum: number;
  readonly feature: string;
  readonly group?: string;
  readonly source: GdbSource;
}

/** An arch's registers as GDB sees them, in regnum order. */
export interface GdbPlan {
  /** The `<architecture>` element, e.g. "riscv:rv64". */
  readonly architecture: string;
  readonly registers: readonly GdbReg[];
  /** The first `gCount` registers form the `g` packet. */
  readonly gCount: number;
  /** Regnums of the program counter and stack pointer (sent in every `T` stop reply). */
  readonly pcRegnum: number;
  readonly spRegnum: number;
}

/** Turns a vCPU's register list into GDB registers (one per arch, same name in each arch folder). */
export type GdbPlanner = (ids: readonly RegId[]) => GdbPlan;

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The target description XML of a plan (features in first-appearance order). */
export function targetXml(plan: GdbPlan): string {
  const features = new Map<string, GdbReg[]>();
  for (const reg of plan.registers) {
    const list = features.get(reg.feature) ?? [];
    list.push(reg);
    features.set(reg.feature, list);
  }
  const parts = [
    '<?xml version="1.0"?>',
    '<!DOCTYPE target SYSTEM "gdb-target.dtd">',
    '<target version="1.0">',
    `<architecture>${escapeXml(plan.architecture)}</architecture>`,
  ];
  for (const [name, regs] of features) {
    parts.push(`<feature name="${escapeXml(name)}">`);
    for (const r of regs) {
      const group = r.group === undefined ? "" : ` group="${escapeXml(r.group)}"`;
      parts.push(
        `<reg name="${escapeXml(r.name)}" bitsize="${r.bitsize}" type="${escapeXml(r.type)}" regnum="${r.regnum}"${group}/>`,
      );
    }
    parts.push("</feature>");
  }
  parts.push("</target>");
  return parts.join("\n") + "\n";
}

/** The distinct vCPU registers `regs` read, in first-use order. */
export function sourceIds(regs: readonly GdbReg[]): RegId[] {
  const seen = new Set<RegId>();
  for (const r of regs) if ("id" in r.source) seen.add(r.source.id);
  return [...seen];
}

/** Offsets of each id in a packed `getManyRegs(ids)` stream. */
export function streamOffsets(ids: readonly RegId[]): Map<RegId, number> {
  const at = new Map<RegId, number>();
  let offset = 0;
  for (const id of ids) {
    at.set(id, offset);
    offset += regSize(id);
  }
  return at;
}

/** The bytes a bit field spans within its register, and its shift within them. */
function fieldBytes(source: { shift: number; width: number }) {
  const first = source.shift >> 3;
  const bit = source.shift & 7;
  return { first, span: Math.ceil((bit + source.width) / 8), bit: BigInt(bit) };
}

function isWhole(bitsize: number, source: { shift: number; width: number }, size: number) {
  return source.shift === 0 && source.width === size * 8 && bitsize === size * 8;
}

/** GDB's bytes (little-endian, bitsize/8) of `reg` from a packed stream. */
export function extractReg(
  reg: GdbReg,
  stream: Uint8Array,
  offsets: ReadonlyMap<RegId, number>,
): Uint8Array {
  const out = new Uint8Array(reg.bitsize / 8);
  if ("constant" in reg.source) {
    encodeLE(reg.source.constant, out, 0, out.length);
    return out;
  }
  const at = offsets.get(reg.source.id) ?? 0;
  const size = regSize(reg.source.id);
  if ("read" in reg.source) {
    encodeLE(reg.source.read(stream.subarray(at, at + size)), out, 0, out.length);
    return out;
  }
  if (isWhole(reg.bitsize, reg.source, size)) {
    out.set(stream.subarray(at, at + size));
    return out;
  }
  // Only the bytes the field spans are read: x86 fields sit inside 4 KiB XSAVE values.
  const { first, span, bit } = fieldBytes(reg.source);
  const mask = (1n << BigInt(reg.source.width)) - 1n;
  encodeLE((decodeLE(stream, at + first, span) >> bit) & mask, out, 0, out.length);
  return out;
}

/** Stores GDB's bytes of `reg` into a packed stream (read-modify-write for bit fields). */
export function insertReg(
  reg: GdbReg,
  value: Uint8Array,
  stream: Uint8Array,
  offsets: ReadonlyMap<RegId, number>,
): void {
  if ("constant" in reg.source) return;
  const at = offsets.get(reg.source.id) ?? 0;
  const size = regSize(reg.source.id);
  if ("write" in reg.source) {
    stream.set(reg.source.write(stream.slice(at, at + size), decodeLE(value, 0, value.length)), at);
    return;
  }
  if (isWhole(reg.bitsize, reg.source, size)) {
    stream.set(value.subarray(0, size), at);
    return;
  }
  const { first, span, bit } = fieldBytes(reg.source);
  const mask = ((1n << BigInt(reg.source.width)) - 1n) << bit;
  const old = decodeLE(stream, at + first, span);
  const field = (decodeLE(value, 0, value.length) << bit) & mask;
  encodeLE((old & ~mask) | field, stream, at + first, span);
}
