/**
 * Structural decoding of riscv ids that have no table row, and the generic names for them.
 *
 * Rules (arch byte 0x80 only; the kernel ignores the arch byte, but regvisor consults this
 * catalog only for 0x80):
 *
 * | id | result |
 * | --- | --- |
 * | bits 51..32 non-zero, type 0 or 11..255, subtype unknown to the class | `undefined` |
 * | a named (type, subtype, number) with a size other than its row's | `undefined`: the kernel answers EINVAL, so it is not a register |
 * | vector v0..v31 at a size other than U128 | `vector.v<n>@<VLEN>`, e.g. `vector.v3@256` for a U256 id (fields.vlenb = 32); VLEN from 32 to 65536 bits, else `undefined` |
 * | an unnamed number in a known class/subtype, at the class's slot size | generic name, below |
 * | an unnamed number at any other size | `undefined` |
 *
 * Generic names (decimal numbers, parseable by `lookup()`): `config.8`, `core.33`,
 * `csr.general.11`, `csr.aia.7`, `csr.smstateen.1`, `timer.4`, `fp_f.33`, `fp_d.33`,
 * `vector.5` (the never-valid `datap` slot) / `vector.38`, `isa_ext.75`, `isa_ext.multi_en.2`,
 * `sbi_ext.13`, `sbi_ext.multi_dis.1`, `sbi_state.sta.2`, `sbi_state.fwft.6`. ISA_EXT and
 * SBI_EXT enums are append-only, so `isa_ext.75` names exactly what a later kernel calls its
 * 76th extension. Slot sizes are RV64: 4 bytes for FP_F, 8 for everything else.
 *
 * `lookup()` also accepts the numeric form of a named register (`core.1` → `core.ra`,
 * `fp_d.32` → the U32 `fp_d.fcsr`), at that register's own size.
 */
import type { RegId } from "../../regid.js";
import { archCode, ARCH_CODES, regId, sizeCode } from "../../regid.js";
import type { RowSpec } from "../table.js";
import { RISCV_REG_TYPE, RISCV_VECTOR_REG_BASE, riscvRegId, riscvRegParts } from "./constants.js";
import type { RiscvClassInfo } from "./names.js";
import { RISCV_CLASSES, riscvClass, riscvFields } from "./names.js";

/** Smallest and largest VLEN (bits) the V / Zve* specs allow: Zve32x's 32 up to 2^16. */
const VLEN_MIN = 32;
const VLEN_MAX = 65536;

const slotKey = (type: number, subtype: number, index: number): string =>
  `${type}.${subtype}.${index}`;

/** The part of a generic name before the number, e.g. `csr.general`, `isa_ext.multi_en`. */
function genericPrefix(cls: RiscvClassInfo, subtype: number): string {
  const sub = cls.subtypes[subtype] ?? "";
  if (sub === "" || sub === "single") return cls.name;
  return `${cls.name}.${sub}`;
}

const isVectorData = (type: number, index: number): boolean =>
  type === RISCV_REG_TYPE.VECTOR &&
  index >= RISCV_VECTOR_REG_BASE &&
  index < RISCV_VECTOR_REG_BASE + 32;

/** Generic prefix → (class, subtype), e.g. `isa_ext.multi_dis` → (ISA_EXT, 2). */
const prefixes = new Map<string, { cls: RiscvClassInfo; subtype: number }>(
  RISCV_CLASSES.flatMap((cls) =>
    cls.subtypes.map((_, subtype) => [genericPrefix(cls, subtype), { cls, subtype }] as const),
  ),
);

/** The structural half of the riscv catalog, built over the table rows. */
export interface RiscvDecoder {
  readonly decodeGeneric: (id: RegId) => RowSpec | undefined;
  readonly parseGenericName: (name: string) => bigint | undefined;
}

/** Builds the decoder; `rows` tells it which slots are named and at what size. */
export function makeRiscvDecoder(rows: readonly RowSpec[]): RiscvDecoder {
  const namedSize = new Map<string, number>();
  for (const row of rows) {
    const p = riscvRegParts(regId(row.id));
    namedSize.set(slotKey(p.type, p.subtype, p.index), p.sizeBytes);
  }

  const decodeGeneric = (id: RegId): RowSpec | undefined => {
    if (archCode(id) !== ARCH_CODES.riscv) return undefined;
    const { type, subtype, index, high, sizeBytes } = riscvRegParts(id);
    const cls = riscvClass(type);
    if (high !== 0 || cls === undefined || subtype >= cls.subtypes.length) return undefined;
    if (isVectorData(type, index)) return vectorAtSize(id, index);
    if (namedSize.has(slotKey(type, subtype, index))) return undefined; // wrong size → EINVAL
    if (sizeBytes !== cls.slotBytes) return undefined;
    return {
      id,
      name: `${genericPrefix(cls, subtype)}.${index}`,
      class: cls.name,
      fields: riscvFields(type, subtype, index),
    };
  };

  const parseGenericName = (text: string): bigint | undefined => {
    const name = text.toLowerCase();
    const vec = /^vector\.v(\d{1,2})@(\d{1,5})$/.exec(name);
    if (vec !== null) return parseVector(Number(vec[1]), Number(vec[2]));
    const m = /^([a-z_]+(?:\.[a-z_]+)?)\.(\d{1,5})$/.exec(name);
    if (m === null) return undefined;
    const slot = prefixes.get(m[1] ?? "");
    const index = Number(m[2]);
    if (slot === undefined || index > 0xffff) return undefined;
    const size = namedSize.get(slotKey(slot.cls.type, slot.subtype, index)) ?? slot.cls.slotBytes;
    return riscvRegId(slot.cls.type, slot.subtype, index, size);
  };

  return { decodeGeneric, parseGenericName };
}

function vectorAtSize(id: RegId, index: number): RowSpec | undefined {
  const vlenb = 1 << sizeCode(id);
  const vlen = vlenb * 8;
  if (vlen < VLEN_MIN || vlen > VLEN_MAX) return undefined;
  const n = index - RISCV_VECTOR_REG_BASE;
  return {
    id,
    name: `vector.v${n}@${vlen}`,
    class: "vector",
    fields: riscvFields(RISCV_REG_TYPE.VECTOR, 0, index, { vreg: n, vlenb }),
  };
}

function parseVector(n: number, vlen: number): bigint | undefined {
  if (n > 31 || vlen < VLEN_MIN || vlen > VLEN_MAX || (vlen & (vlen - 1)) !== 0) return undefined;
  return riscvRegId(RISCV_REG_TYPE.VECTOR, 0, RISCV_VECTOR_REG_BASE + n, vlen / 8);
}
