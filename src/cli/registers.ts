/**
 * The register dump of `run --dump-regs` and `restore --dump-regs`, as a table and as JSON.
 * Registers whose value is a struct (the x86 pseudo-registers) are shown field by field:
 * `REGS.rip`, `SREGS.cr3`, `FPU.xmm0`; reserved bytes only when they are not zero.
 */
import { fieldRows, fieldsJson, regFields } from "../abi/fields.js";
import { formatRegId, type RegId } from "../abi/regid.js";
import { valueHex } from "../vmm/snapshot/describe.js";
import { formatTable } from "./table.js";

/** One register of a dump. */
export interface DumpRegister {
  readonly id: RegId;
  /** Catalog name (`"unknown"` when the catalog does not know the id). */
  readonly name: string;
  readonly value: Uint8Array;
}

/** Value column for a register without fields: short values whole, long ones abbreviated. */
function valueText(value: Uint8Array): string {
  if (value.length <= 16) return valueHex(value);
  const nonZero = value.reduce((n, b) => n + (b === 0 ? 0 : 1), 0);
  return `(${value.length} bytes, ${nonZero} non-zero)`;
}

function rows(reg: DumpRegister): string[][] {
  const id = formatRegId(reg.id);
  const size = String(reg.value.length);
  const fields = regFields(reg.id, reg.value);
  if (fields === undefined) return [[reg.name, id, size, valueText(reg.value)]];
  return [
    [reg.name, id, size, `by field:`],
    ...fieldRows(fields).map((f) => [`${reg.name}.${f.name}`, "", f.size, f.text]),
  ];
}

/** The human register table: NAME, ID, SIZE, VALUE; struct registers followed by their fields. */
export function registersTable(regs: readonly DumpRegister[]): string {
  return formatTable(["NAME", "ID", "SIZE", "VALUE"], regs.flatMap(rows));
}

/**
 * Registers as JSON: name, id, size, value (hex: the integer up to 16 bytes, memory order
 * beyond), and `fields` by name for struct registers.
 */
export function registersJson(
  regs: readonly (DumpRegister & { readonly class?: string })[],
): Record<string, unknown>[] {
  return regs.map((r) => {
    const fields = fieldsJson(r.id, r.value);
    return {
      name: r.name,
      id: formatRegId(r.id),
      ...(r.class === undefined ? {} : { class: r.class }),
      size: r.value.length,
      value: valueHex(r.value),
      ...(fields === undefined ? {} : { fields }),
    };
  });
}
