/**
 * Structural decoding of arm64 ids that have no table row, and the generic names for them.
 *
 * | id (arch byte 0x60) | result |
 * | --- | --- |
 * | any bit of 51..28 set | `undefined` (KVM: EINVAL / no group) |
 * | SYSREG group, U64 | `ARM64_SYS_REG(op0,op1,crn,crm,op2)`; every 16-bit index is an encoding (op0 0/1 are instruction space, never registers, but still get the exact name so every such id stays reversible) |
 * | SYSREG group, any other size | `undefined` (KVM: ENOENT) |
 * | FW group, U64 | `FW(0x<hex>)`, e.g. `FW(0x4)` |
 * | FW_FEAT_BMAP group, U64 | `FW_FEAT_BMAP(<decimal>)`, e.g. `FW_FEAT_BMAP(4)` |
 * | FW / FW_FEAT_BMAP at another size | `undefined` (KVM: ENOENT) |
 * | SVE Z/P/FFR at its own size, slice ≠ 0 | `Z3[1]`, `P2[3]`, `FFR[1]` (slice 0 is a row) |
 * | SVE at a wrong size, or an index that is no Z/P/FFR/VLS | `undefined` |
 * | CORE group, not a row | `undefined`: an offset that is not a field start (or a field at the wrong size) names nothing, and guessing would mislead |
 * | DEMUX group, not a row | `undefined`: CSSELR ≥ 14, another demux id or a size ≠ U32 is always ENOENT |
 * | any other group (0x12, …) | `undefined` |
 *
 * `lookup()` accepts every generic name above (case-insensitive, spaces allowed after commas),
 * and also the generic form of a named id (`ARM64_SYS_REG(3,0,0,0,0)` is MIDR_EL1,
 * `ARM64_SYS_REG(3,3,14,0,2)` is TIMER_CVAL, `Z3[0]` is Z3).
 */
import type { RegId } from "../../regid.js";
import { regSize } from "../../regid.js";
import type { RowSpec } from "../table.js";
import type { SysRegEncoding } from "./encoding.js";
import {
  ARM64_GROUP,
  ARM64_SVE_INDEX,
  ARM64_SVE_MAX_SLICES,
  ARM64_SVE_SIZE,
  arm64Id,
  arm64Parts,
  sysRegFields,
  sysRegFits,
  sysRegId,
} from "./encoding.js";
import type { SveKind } from "./pseudo.js";
import { bmapRow, fwRow, sveRow } from "./pseudo.js";

/** Generic name of a sysreg encoding. */
export function sysRegGenericName(enc: SysRegEncoding): string {
  return `ARM64_SYS_REG(${enc.op0},${enc.op1},${enc.crn},${enc.crm},${enc.op2})`;
}

/** The Z/P/FFR register an SVE-group index addresses, before any size check. */
function sveTarget(index: number): { kind: SveKind; n: number; slice: number } | undefined {
  const slice = index & (ARM64_SVE_MAX_SLICES - 1);
  if (index < ARM64_SVE_INDEX.P) return { kind: "z", n: index >> 5, slice };
  if (index < ARM64_SVE_INDEX.FFR) return { kind: "p", n: (index - ARM64_SVE_INDEX.P) >> 5, slice };
  if (index < ARM64_SVE_INDEX.FFR + ARM64_SVE_MAX_SLICES) return { kind: "ffr", n: 0, slice };
  return undefined;
}

function decodeSve(index: number, size: number): RowSpec | undefined {
  const target = sveTarget(index);
  if (target === undefined) return undefined;
  const want = target.kind === "z" ? ARM64_SVE_SIZE.Z : ARM64_SVE_SIZE.P;
  return size === want ? sveRow(target.kind, target.n, target.slice) : undefined;
}

/** Generic decoding for ids with no table row (see the module comment). */
export function decodeArm64Generic(id: RegId): RowSpec | undefined {
  const parts = arm64Parts(id);
  if (parts === undefined) return undefined;
  const size = regSize(id);
  switch (parts.group) {
    case ARM64_GROUP.SYSREG: {
      if (size !== 8) return undefined;
      const enc = sysRegFields(parts.index);
      return { id, name: sysRegGenericName(enc), class: "sysreg", fields: { ...enc } };
    }
    case ARM64_GROUP.FW:
      return size === 8 ? fwRow(parts.index, `FW(0x${parts.index.toString(16)})`) : undefined;
    case ARM64_GROUP.FW_FEAT_BMAP:
      return size === 8 ? bmapRow(parts.index, `FW_FEAT_BMAP(${parts.index})`) : undefined;
    case ARM64_GROUP.SVE:
      return decodeSve(parts.index, size);
    default:
      return undefined;
  }
}

/** A decimal or `0x` hex number of at most 6 digits (every field here is ≤ 16 bits). */
function parseNumber(text: string): number | undefined {
  if (/^[0-9]{1,6}$/.test(text)) return Number(text);
  if (/^0x[0-9a-f]{1,6}$/i.test(text)) return Number.parseInt(text.slice(2), 16);
  return undefined;
}

const SYS_REG_RE = /^ARM64_SYS_REG\(([^)]*)\)$/i;
const FW_RE = /^(FW|FW_FEAT_BMAP)\(\s*([0-9a-fx]+)\s*\)$/i;
const SVE_RE = /^(?:([ZP])([0-9]{1,2})|(FFR))\[\s*([0-9]{1,2})\s*\]$/i;

function parseSysReg(args: string): bigint | undefined {
  const nums = args.split(",").map((part) => parseNumber(part.trim()));
  if (nums.length !== 5) return undefined;
  const [op0, op1, crn, crm, op2] = nums;
  if (op0 === undefined || op1 === undefined || crn === undefined) return undefined;
  if (crm === undefined || op2 === undefined) return undefined;
  const enc: SysRegEncoding = { op0, op1, crn, crm, op2 };
  return sysRegFits(enc) ? sysRegId(enc) : undefined;
}

function parseFw(kind: string, numText: string): bigint | undefined {
  const number = parseNumber(numText);
  if (number === undefined || number > 0xffff) return undefined;
  const group = kind.toUpperCase() === "FW" ? ARM64_GROUP.FW : ARM64_GROUP.FW_FEAT_BMAP;
  return arm64Id(group, 8, number);
}

function parseSve(match: RegExpExecArray): bigint | undefined {
  const [, letter, nText, ffr, sliceText] = match;
  const slice = Number(sliceText);
  if (slice >= ARM64_SVE_MAX_SLICES) return undefined;
  if (ffr !== undefined) return sveRow("ffr", 0, slice).id;
  const kind: SveKind = letter?.toLowerCase() === "z" ? "z" : "p";
  const n = Number(nText);
  if (n >= (kind === "z" ? 32 : 16)) return undefined;
  return sveRow(kind, n, slice).id;
}

/** Parses a generic name back to its id; `undefined` when `name` is not one. */
export function parseArm64GenericName(name: string): bigint | undefined {
  const sys = SYS_REG_RE.exec(name);
  if (sys !== null) return parseSysReg(sys[1] ?? "");
  const fw = FW_RE.exec(name);
  if (fw !== null) return parseFw(fw[1] ?? "", fw[2] ?? "");
  const sve = SVE_RE.exec(name);
  if (sve !== null) return parseSve(sve);
  return undefined;
}
