/**
 * Structural decoding of 32-bit ARM ids that have no table row, and their generic names.
 *
 * | id (arch byte 0x40) | result |
 * | --- | --- |
 * | any bit of 51..28 set (including the secure bit 28) | `undefined` |
 * | CP15, U32, bit 15 clear | `CP15(crn,opc1,crm,opc2)`, e.g. `CP15(1,0,0,0)` is SCTLR |
 * | CP15, U64, only CRm/Opc1 bits set | `CP15_64(opc1,crm)`, e.g. `CP15_64(0,2)` is TTBR0_64 |
 * | CP15 at another size or with stray index bits | `undefined` (index_to_params refuses it) |
 * | FW, U64 | `FW(0x<hex>)` |
 * | CORE / VFP / DEMUX not in the table | `undefined`: every valid one is a row |
 * | any other coproc (CP14, …) | `undefined`: KVM/arm exposed only CP15 through ONE_REG |
 *
 * The argument order of `CP15(...)` is CRn, Opc1, CRm, Opc2 (the order KVM's coproc tables
 * sort by is CRn, CRm, Opc1, Opc2; the MRC mnemonic order is Opc1, CRn, CRm, Opc2).
 */
import type { RegId } from "../../regid.js";
import { regSize } from "../../regid.js";
import type { RowSpec } from "../table.js";
import type { Cp15Encoding } from "./encoding.js";
import {
  ARM_COPROC,
  armId,
  armParts,
  cp15Fields,
  cp15Fits,
  cp15Fits64,
  cp15Id,
  cp15Id64,
} from "./encoding.js";
import { cp15Row, cp15Row64 } from "./cp15.js";
import { armFwRow } from "./pseudo.js";

/** Index bits a 64-bit CP15 id may use: CRm (10..7) and Opc1 (6..3). */
const CP15_64_INDEX_MASK = 0x7f8;

/** Generic name of a 32-bit CP15 encoding. */
export function cp15GenericName(enc: Cp15Encoding): string {
  return `CP15(${enc.crn},${enc.opc1},${enc.crm},${enc.opc2})`;
}

function decodeCp15(index: number, size: number): RowSpec | undefined {
  if (size === 4 && index < 0x8000) {
    const enc = cp15Fields(index);
    return cp15Row(cp15GenericName(enc), enc);
  }
  if (size === 8 && (index & ~CP15_64_INDEX_MASK) === 0) {
    const { opc1, crm } = cp15Fields(index);
    return cp15Row64(`CP15_64(${opc1},${crm})`, { opc1, crm });
  }
  return undefined;
}

/** Generic decoding for ids with no table row (see the module comment). */
export function decodeArmGeneric(id: RegId): RowSpec | undefined {
  const parts = armParts(id);
  if (parts === undefined) return undefined;
  const size = regSize(id);
  switch (parts.coproc) {
    case ARM_COPROC.CP15:
      return decodeCp15(parts.index, size);
    case ARM_COPROC.FW:
      return size === 8 ? armFwRow(parts.index, `FW(0x${parts.index.toString(16)})`) : undefined;
    default:
      return undefined;
  }
}

/** Parses a comma-separated list of 1..6-digit decimals; `undefined` if any part is not one. */
function parseList(text: string, count: number): number[] | undefined {
  const parts = text.split(",").map((part) => part.trim());
  if (parts.length !== count || !parts.every((p) => /^[0-9]{1,6}$/.test(p))) return undefined;
  return parts.map(Number);
}

const CP15_RE = /^CP15\(([^)]*)\)$/i;
const CP15_64_RE = /^CP15_64\(([^)]*)\)$/i;
const FW_RE = /^FW\(\s*(0x[0-9a-f]{1,6}|[0-9]{1,6})\s*\)$/i;

/** Parses a generic name back to its id; `undefined` when `name` is not one. */
export function parseArmGenericName(name: string): bigint | undefined {
  const cp = CP15_RE.exec(name);
  if (cp !== null) {
    const [crn, opc1, crm, opc2] = parseList(cp[1] ?? "", 4) ?? [];
    if (crn === undefined || opc1 === undefined || crm === undefined || opc2 === undefined) {
      return undefined;
    }
    const enc = { crn, opc1, crm, opc2 };
    return cp15Fits(enc) ? cp15Id(enc) : undefined;
  }
  const cp64 = CP15_64_RE.exec(name);
  if (cp64 !== null) {
    const [opc1, crm] = parseList(cp64[1] ?? "", 2) ?? [];
    if (opc1 === undefined || crm === undefined) return undefined;
    return cp15Fits64({ opc1, crm }) ? cp15Id64({ opc1, crm }) : undefined;
  }
  const fw = FW_RE.exec(name);
  if (fw !== null) {
    const number = Number(fw[1]);
    return number <= 0xffff ? armId(ARM_COPROC.FW, 8, number) : undefined;
  }
  return undefined;
}
