/**
 * RISC-V registers as GDB sees them, planned from the vCPU's `regList()` (see
 * src/vmm/gdbstub/regmap.ts for the model).
 *
 * GDB's RISC-V register numbering (gdb/riscv-tdep.h, features/riscv/64bit-*.xml): x0..x31 are
 * regnums 0..31 and pc 32 in `org.gnu.gdb.riscv.cpu`; f0..f31 are 33..64 in
 * `org.gnu.gdb.riscv.fpu`; a CSR numbered n is regnum 65 + n in `org.gnu.gdb.riscv.csr` (so
 * fflags 66, frm 67, fcsr 68 sit in the fpu feature under their CSR numbers). KVM has no x0
 * (it is the constant zero) and keeps fflags/frm inside its one `fcsr` register.
 *
 * Everything the vCPU lists that GDB has no architectural name for (core.mode, config, timer,
 * isa_ext, sbi_ext, sbi_state, AIA iprio words, vector state) goes into an `org.regvisor.kvm`
 * feature under its catalog name with every character outside [A-Za-z0-9_] turned into `_`
 * (`isa_ext.zicbom` → `isa_ext_zicbom`; GDB parses `$a.b` as a member access), or `reg_0x…`
 * for an id the catalog does not know, so nothing the vCPU has is hidden. Values wider than
 * 128 bits are left out of the description (GDB has no scalar type for them).
 */
import { decodeReg, lookupReg } from "../../../abi/catalog.js";
import { formatRegId, regSize, type RegId } from "../../../abi/regid.js";
import { leValue } from "../../../abi/value.js";
import type { GdbPlan, GdbReg } from "../../gdbstub/regmap.js";
import type { DebugArch } from "../../gdbstub/target.js";
import { translateRiscv } from "./pagewalk.js";

const CPU = "org.gnu.gdb.riscv.cpu";
const FPU = "org.gnu.gdb.riscv.fpu";
const CSR = "org.gnu.gdb.riscv.csr";
const KVM = "org.regvisor.kvm";

/** GDB's name for x0..x31 (its 64bit-cpu.xml spells x8 "fp"). */
// prettier-ignore
const XREG_NAMES = [
  "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "fp", "s1", "a0", "a1", "a2", "a3", "a4",
  "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4",
  "t5", "t6",
];

/** GDB's name for f0..f31 (ABI names, as in its 64bit-fpu.xml). */
// prettier-ignore
const FREG_NAMES = [
  "ft0", "ft1", "ft2", "ft3", "ft4", "ft5", "ft6", "ft7", "fs0", "fs1", "fa0", "fa1", "fa2",
  "fa3", "fa4", "fa5", "fa6", "fa7", "fs2", "fs3", "fs4", "fs5", "fs6", "fs7", "fs8", "fs9",
  "fs10", "fs11", "ft8", "ft9", "ft10", "ft11",
];

/** Architectural numbers of the CSRs KVM exposes (RISC-V privileged spec, Table 2.2; Smaia; Smstateen). */
const CSR_NUMBERS: Readonly<Record<string, number>> = {
  "csr.sstatus": 0x100,
  "csr.sie": 0x104,
  "csr.stvec": 0x105,
  "csr.scounteren": 0x106,
  "csr.senvcfg": 0x10a,
  "csr.sscratch": 0x140,
  "csr.sepc": 0x141,
  "csr.scause": 0x142,
  "csr.stval": 0x143,
  "csr.sip": 0x144,
  "csr.satp": 0x180,
  "csr.aia.siselect": 0x150,
  "csr.smstateen.sstateen0": 0x10c,
};

/** First regnum of the `org.regvisor.kvm` feature: past every CSR (65 + 4096). */
export const KVM_FEATURE_FIRST_REGNUM = 65 + 4096;

const PTR_TYPES: Readonly<Record<string, string>> = {
  ra: "code_ptr",
  sp: "data_ptr",
  gp: "data_ptr",
  tp: "data_ptr",
  fp: "data_ptr",
};

function whole(id: RegId): { id: RegId; shift: number; width: number } {
  return { id, shift: 0, width: regSize(id) * 8 };
}

/** The name a register gets in the `org.regvisor.kvm` feature. */
export function kvmFeatureName(id: RegId): string {
  const d = decodeReg(id);
  return d.known ? d.name.replace(/[^A-Za-z0-9_]/g, "_") : `reg_${formatRegId(id)}`;
}

/** Plans GDB's view of a RISC-V vCPU with these register ids. */
export function planGdbRegisters(ids: readonly RegId[]): GdbPlan {
  const byName = new Map<string, RegId>();
  for (const id of ids) {
    const d = decodeReg(id);
    if (d.known) byName.set(d.name, id);
  }
  const used = new Set<RegId>();
  const take = (name: string): RegId | undefined => {
    const id = byName.get(name);
    if (id !== undefined) used.add(id);
    return id;
  };
  const regs: GdbReg[] = [];
  const pc = take("core.pc");
  for (let x = 0; x < 32; x++) {
    const name = XREG_NAMES[x] ?? `x${x}`;
    const id = x === 0 ? undefined : take(`core.${name === "fp" ? "s0" : name}`);
    if (x !== 0 && id === undefined) continue;
    regs.push({
      name,
      bitsize: 64,
      type: PTR_TYPES[name] ?? "int",
      regnum: x,
      feature: CPU,
      group: "general",
      source: id === undefined ? { constant: 0n } : whole(id),
    });
  }
  if (pc !== undefined) {
    regs.push({
      name: "pc",
      bitsize: 64,
      type: "code_ptr",
      regnum: 32,
      feature: CPU,
      group: "general",
      source: whole(pc),
    });
  }
  regs.push(...fpuRegs(take));
  const gCount = regs.length;
  for (const [name, number] of Object.entries(CSR_NUMBERS)) {
    const id = take(name);
    if (id === undefined) continue;
    const gdbName = name.slice(name.lastIndexOf(".") + 1);
    regs.push({
      name: gdbName,
      bitsize: 64,
      type: "int",
      regnum: 65 + number,
      feature: CSR,
      group: "system",
      source: whole(id),
    });
  }
  let regnum = KVM_FEATURE_FIRST_REGNUM;
  for (const id of ids) {
    const size = regSize(id);
    if (used.has(id) || size > 16) continue;
    regs.push({
      name: kvmFeatureName(id),
      bitsize: size * 8,
      type: `uint${size * 8}`,
      regnum: regnum++,
      feature: KVM,
      group: "system",
      source: whole(id),
    });
  }
  return { architecture: "riscv:rv64", registers: regs, gCount, pcRegnum: 32, spRegnum: 2 };
}

/** f0..f31 and fflags/frm/fcsr, from the D registers if the vCPU has them, else F. */
function fpuRegs(take: (name: string) => RegId | undefined): GdbReg[] {
  const cls =
    take("fp_d.f0") !== undefined ? "fp_d" : take("fp_f.f0") !== undefined ? "fp_f" : undefined;
  if (cls === undefined) return [];
  const bits = cls === "fp_d" ? 64 : 32;
  const regs: GdbReg[] = [];
  for (let f = 0; f < 32; f++) {
    const id = take(`${cls}.f${f}`);
    if (id === undefined) continue;
    regs.push({
      name: FREG_NAMES[f] ?? `f${f}`,
      bitsize: bits,
      type: bits === 64 ? "ieee_double" : "ieee_single",
      regnum: 33 + f,
      feature: FPU,
      group: "float",
      source: whole(id),
    });
  }
  const fcsr = take(`${cls}.fcsr`);
  if (fcsr !== undefined) {
    // fcsr = frm (bits 7:5) | fflags (bits 4:0) (unprivileged spec, "F" chapter, fcsr).
    const fields: [string, number, number, number][] = [
      ["fflags", 66, 0, 5],
      ["frm", 67, 5, 3],
      ["fcsr", 68, 0, regSize(fcsr) * 8],
    ];
    for (const [name, regnum, shift, width] of fields) {
      regs.push({
        name,
        bitsize: 32,
        type: "int",
        regnum,
        feature: FPU,
        group: "float",
        source: { id: fcsr, shift, width },
      });
    }
  }
  return regs;
}

const SATP = lookupReg("riscv", "csr.satp").id;
/** `c.ebreak` (0x9002) and `ebreak` (0x00100073), little-endian (unprivileged spec, RVC table). */
const C_EBREAK = Uint8Array.of(0x02, 0x90);
const EBREAK = Uint8Array.of(0x73, 0x00, 0x10, 0x00);

/**
 * RISC-V for the machine's debug target: `Z0` writes `ebreak` (GDB's kind 4) or `c.ebreak`
 * (kind 2), which RISC-V KVM and the soft backend intercept once guest debug is on; hardware
 * breakpoints are by guest-virtual pc (a soft-backend extension, so they hit before `satp` turns
 * paging on); addresses translate through the Sv39/48/57 walk from the vCPU's `satp`.
 */
export const riscvDebugArch: DebugArch = {
  arch: "riscv",
  planner: planGdbRegisters,
  swBreakpoint: (kind) => (kind === 2 ? C_EBREAK : kind === 4 ? EBREAK : undefined),
  hwBreakpoints: 64,
  // The soft backend's data watchpoints (src/backends/soft/riscv/debug.ts); RISC-V KVM has no
  // guest-debug watchpoints (its kvm_guest_debug_arch is empty).
  watchpoints: 64,
  guestDebug: (control, hw, watch) => ({ control, hwBreakpoints: hw, watchpoints: watch }),
  translate: (vcpu, va, read64) => translateRiscv(leValue(vcpu.getOneReg(SATP)), va, read64),
};
