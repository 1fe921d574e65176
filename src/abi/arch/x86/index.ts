/**
 * x86 register catalog: the 6.18 ONE_REG namespace (docs/kvm-register-abi.md §6) plus regvisor's
 * pseudo-registers (./pseudo.ts).
 *
 * Rows: GUEST_SSP (class "kvm", fields `{ type: 3, index }`), every named MSR (class "msr",
 * fields `{ type: 2, msr }`, see ./msrs.ts), then the pseudo-registers (class "pseudo",
 * fields `{ type: 0xff, index, structSize }`, `pseudo: true`). Ids without a row decode to
 * `MSR(0x1234abcd)` or `KVM_REG(n)` when the kernel's rules accept their shape (U64, bits
 * 51..40 zero, type 2/3); anything else — wrong size, reserved bits, other types, unknown
 * pseudo indexes — decodes to undefined.
 */
import type { RegId } from "../../regid.js";
import type { RowSpec } from "../table.js";
import { makeCatalog } from "../table.js";
import {
  KVM_REG_GUEST_SSP,
  X86_REG_TYPE,
  genericKvmRegName,
  genericMsrName,
  isKernelX86Id,
  kvmRegId,
  msrRegId,
  parseGenericX86Name,
  x86IdParts,
} from "./ids.js";
import { MSR_NAMES } from "./msrs.js";
import { X86_PSEUDO_LIST } from "./pseudo.js";

export * from "./ids.js";
export * from "./pseudo.js";
export { MSR_NAMES } from "./msrs.js";
export type { MsrName } from "./msrs.js";

const KVM_ROWS: readonly RowSpec[] = [
  {
    id: kvmRegId(KVM_REG_GUEST_SSP),
    name: "GUEST_SSP",
    class: "kvm",
    fields: { type: X86_REG_TYPE.KVM, index: KVM_REG_GUEST_SSP },
  },
];

const msrRows = (): RowSpec[] =>
  MSR_NAMES.map((msr) => ({
    id: msrRegId(msr.index),
    name: msr.name,
    class: "msr",
    fields: { type: X86_REG_TYPE.MSR, msr: msr.index },
    ...(msr.aliases === undefined ? {} : { aliases: msr.aliases }),
  }));

const pseudoRows = (): RowSpec[] =>
  X86_PSEUDO_LIST.map((reg) => ({
    id: reg.id,
    name: reg.name,
    class: "pseudo",
    fields: { type: X86_REG_TYPE.PSEUDO, index: reg.index, structSize: reg.structSize },
    pseudo: true,
  }));

function decodeGeneric(id: RegId): RowSpec | undefined {
  if (!isKernelX86Id(id)) return undefined;
  const { type, index } = x86IdParts(id);
  if (type === X86_REG_TYPE.MSR) {
    return { id, name: genericMsrName(index), class: "msr", fields: { type, msr: index } };
  }
  return { id, name: genericKvmRegName(index), class: "kvm", fields: { type, index } };
}

/** The x86 catalog. */
export const catalog = makeCatalog({
  arch: "x86",
  title: "x86-64 (MSRs, KVM registers, regvisor pseudo-registers)",
  classes: ["kvm", "msr", "pseudo"],
  rows: () => [...KVM_ROWS, ...msrRows(), ...pseudoRows()],
  decodeGeneric,
  parseGenericName: (name) => parseGenericX86Name(name),
});
