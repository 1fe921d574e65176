/**
 * The complete register view of a vCPU, by catalog name: `regList()`, then one MANY_REGS batch,
 * split back into per-register values. What `--dump-regs` prints and demos return, the same on
 * every backend.
 */
import { decodeReg } from "../abi/catalog.js";
import { regSize, type RegId } from "../abi/regid.js";
import type { Vcpu } from "./vcpu.js";

/** One register of a vCPU's view, named by its catalog ("unknown" for ids that fit none). */
export interface NamedRegister {
  readonly id: RegId;
  /** Catalog name, e.g. `core.pc`, `IA32_TSC`, `REGS`. */
  readonly name: string;
  readonly class: string;
  /** True for regvisor pseudo-registers (x86 state structs). */
  readonly pseudo: boolean;
  /** Exactly `regSize(id)` bytes, little-endian; a copy the caller owns. */
  readonly value: Uint8Array;
}

/** Reads every register `vcpu` lists, with one `getManyRegs` call. */
export function readRegisterView(vcpu: Vcpu): NamedRegister[] {
  const ids = vcpu.regList();
  const packed = vcpu.getManyRegs(ids);
  let offset = 0;
  return ids.map((id) => {
    const size = regSize(id);
    const info = decodeReg(id);
    const value = packed.slice(offset, offset + size);
    offset += size;
    return {
      id,
      name: info.known ? info.name : "unknown",
      class: info.known ? info.class : "unknown",
      pseudo: info.known && info.pseudo === true,
      value,
    };
  });
}
