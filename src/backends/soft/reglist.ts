/**
 * KVM_GET_REG_LIST for a soft vCPU, in the kernel's order (vcpu_onereg.c
 * `kvm_riscv_vcpu_copy_reg_indices`, docs/kvm-register-abi.md §11): CONFIG (minus the Zicbo* block
 * sizes the host lacks), CORE (33), CSR GENERAL (11; no AIA/Smstateen without Ssaia/Smstateen),
 * TIMER (4), FP_F (33, if F), FP_D (32 U64 + U32 fcsr, if D), no VECTOR, ISA_EXT SINGLE for every
 * host extension (enabled or not), SBI_EXT SINGLE for every available SBI extension (enabled or
 * not), no SBI_STATE (STA and FWFT are unavailable). MULTI registers are never listed.
 */
import {
  RISCV_CSR_SUBTYPE,
  RISCV_EXT_SUBTYPE,
  RISCV_REG_TYPE as T,
  riscvRegId,
} from "../../abi/arch/riscv/index.js";
import type { RegId } from "../../abi/regid.js";
import { ISA_EXT_MAX, SBI_EXT_MAX, hostHasIsaExt, isaExtId } from "./host.js";
import type { KernelState } from "./kstate.js";

const CONFIG_LISTED = [0, 2, 3, 4, 6]; // isa, mvendorid, marchid, mimpid, satp_mode
const CORE_REGS = 33;
const CSR_GENERAL_REGS = 11;
const TIMER_REGS = 4;
const FP_REGS = 32;

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** Every register id the vCPU exposes now. */
export function regList(st: KernelState): RegId[] {
  const ids: RegId[] = [];
  for (const i of CONFIG_LISTED) ids.push(riscvRegId(T.CONFIG, 0, i, 8));
  for (const i of range(CORE_REGS)) ids.push(riscvRegId(T.CORE, 0, i, 8));
  for (const i of range(CSR_GENERAL_REGS)) {
    ids.push(riscvRegId(T.CSR, RISCV_CSR_SUBTYPE.GENERAL, i, 8));
  }
  for (const i of range(TIMER_REGS)) ids.push(riscvRegId(T.TIMER, 0, i, 8));
  if (st.isa[isaExtId("f")] === 1) {
    for (const i of range(FP_REGS + 1)) ids.push(riscvRegId(T.FP_F, 0, i, 4));
  }
  if (st.isa[isaExtId("d")] === 1) {
    for (const i of range(FP_REGS)) ids.push(riscvRegId(T.FP_D, 0, i, 8));
    ids.push(riscvRegId(T.FP_D, 0, FP_REGS, 4));
  }
  for (const i of range(ISA_EXT_MAX)) {
    if (hostHasIsaExt(i)) ids.push(riscvRegId(T.ISA_EXT, RISCV_EXT_SUBTYPE.SINGLE, i, 8));
  }
  for (const i of range(SBI_EXT_MAX)) {
    if (st.sbi[i] !== "unavailable") {
      ids.push(riscvRegId(T.SBI_EXT, RISCV_EXT_SUBTYPE.SINGLE, i, 8));
    }
  }
  return ids;
}
