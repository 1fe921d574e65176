/**
 * x86-64 registers as GDB sees them, planned from the vCPU's `regList()` and the pseudo-register
 * field tables of src/abi/arch/x86/pseudo-fields.ts (see src/vmm/gdbstub/regmap.ts for the model).
 *
 * Features and order follow GDB's amd64 descriptions (gdb/features/i386/64bit-core.xml,
 * 64bit-sse.xml, 64bit-segments.xml): rax…r15, rip, eflags, the six selectors, st0–st7 and the
 * x87 control registers in `org.gnu.gdb.i386.core`; xmm0–15 and mxcsr in `.sse`; fs_base and
 * gs_base in `.segments`. GDB's sizes win where they differ from the kernel's: eflags and the
 * selectors are 32 bits (the low bits of rflags, the zero-extended 16-bit selector). x87/SSE
 * state comes from XSAVE when the vCPU lists it (it is the superset), else from FPU.
 *
 * System registers (cr0, cr2, cr3, cr4, cr8, efer) go in `org.regvisor.x86.system`, MSRs by
 * catalog name in `org.regvisor.x86.msr`, and every other register of at most 128 bits in
 * `org.regvisor.kvm`. Struct fields GDB has no name for (segment limits and attributes, the
 * interrupt bitmap, events, LAPIC registers) are left to `regvisor regs`/`inspect`: GDB sees
 * the registers it can name.
 */
import { decodeReg } from "../../../abi/catalog.js";
import {
  decodeX86PseudoFields,
  withX86PseudoField,
  x86PseudoFieldSpecs,
  type X86FieldSpec,
} from "../../../abi/arch/x86/pseudo-fields.js";
import { formatRegId, regSize, type RegId } from "../../../abi/regid.js";
import type { GdbPlan, GdbReg, GdbSource } from "../../gdbstub/regmap.js";

const CORE = "org.gnu.gdb.i386.core";
const SSE = "org.gnu.gdb.i386.sse";
const SEGMENTS = "org.gnu.gdb.i386.segments";
const SYSTEM = "org.regvisor.x86.system";
const MSR = "org.regvisor.x86.msr";
const KVM = "org.regvisor.kvm";

const GPRS = [
  "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
  "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
] as const; // prettier-ignore

/** GDB name → [feature, bitsize, type], in `g` packet order. */
const ORDER: readonly (readonly [string, string, number, string])[] = [
  ...GPRS.map((n) => [n, CORE, 64, n === "rsp" || n === "rbp" ? "data_ptr" : "int64"] as const),
  ["rip", CORE, 64, "code_ptr"],
  ["eflags", CORE, 32, "int32"],
  ...["cs", "ss", "ds", "es", "fs", "gs"].map((n) => [n, CORE, 32, "int32"] as const),
  ...Array.from({ length: 8 }, (_, i) => [`st${i}`, CORE, 80, "i387_ext"] as const),
  ...["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"].map(
    (n) => [n, CORE, 32, "int"] as const,
  ),
  ...Array.from({ length: 16 }, (_, i) => [`xmm${i}`, SSE, 128, "uint128"] as const),
  ["mxcsr", SSE, 32, "int"],
  ["fs_base", SEGMENTS, 64, "int"],
  ["gs_base", SEGMENTS, 64, "int"],
  ...["cr0", "cr2", "cr3", "cr4", "cr8", "efer"].map((n) => [n, SYSTEM, 64, "int"] as const),
];

/** How many of ORDER's registers (core + sse) form the `g` packet. */
const G_NAMES = new Set(ORDER.filter(([, f]) => f === CORE || f === SSE).map(([n]) => n));

/** Pseudo-registers searched for each GDB name, preferred first. */
const SOURCE_PREFERENCE = ["REGS", "SREGS", "XSAVE", "FPU"];

interface Found {
  readonly id: RegId;
  readonly spec: X86FieldSpec;
}

function pseudoName(id: RegId): string | undefined {
  const d = decodeReg(id);
  return d.known ? d.name : undefined;
}

/** Every GDB-named field of the listed pseudo-registers, the preferred source winning. */
function gdbFields(ids: readonly RegId[]): Map<string, Found> {
  const ranked = ids
    .map((id) => ({ id, rank: SOURCE_PREFERENCE.indexOf(pseudoName(id) ?? "") }))
    .filter((r) => r.rank >= 0)
    .sort((a, b) => a.rank - b.rank);
  const found = new Map<string, Found>();
  for (const { id } of ranked) {
    for (const spec of x86PseudoFieldSpecs(id) ?? []) {
      if (spec.gdbName !== undefined && !found.has(spec.gdbName)) {
        found.set(spec.gdbName, { id, spec });
      }
    }
  }
  return found;
}

function sourceOf(found: Found): GdbSource {
  const { id, spec } = found;
  if (spec.derived === true) {
    // GDB's full tag word, computed from the abridged tag and the registers (pseudo-fields.ts).
    const name = spec.name;
    return {
      id,
      read: (value) => {
        const field = decodeX86PseudoFields(id, value)?.find((f) => f.name === name);
        return typeof field?.value === "bigint" ? field.value : 0n;
      },
      write: (value, to) => withX86PseudoField(id, value, name, to & 0xffffn),
    };
  }
  return { id, shift: spec.offset * 8 + (spec.lsb ?? 0), width: spec.bits };
}

function featureName(id: RegId): string {
  const d = decodeReg(id);
  return d.known ? d.name.replace(/[^A-Za-z0-9_]/g, "_") : `reg_${formatRegId(id)}`;
}

/** Plans GDB's view of an x86-64 vCPU with these register ids. */
export function planGdbRegisters(ids: readonly RegId[]): GdbPlan {
  const fields = gdbFields(ids);
  const regs: GdbReg[] = [];
  const used = new Set<RegId>();
  let regnum = 0;
  for (const [name, feature, bitsize, type] of ORDER) {
    const found = fields.get(name);
    if (found === undefined) continue;
    used.add(found.id);
    const group =
      feature === CORE || feature === SEGMENTS ? "general" : feature === SSE ? "vector" : "system";
    regs.push({ name, bitsize, type, regnum: regnum++, feature, group, source: sourceOf(found) });
  }
  const gCount = regs.filter((r) => G_NAMES.has(r.name)).length;
  for (const id of ids) {
    const size = regSize(id);
    if (used.has(id) || size > 16 || x86PseudoFieldSpecs(id) !== undefined) continue;
    const isMsr = decodeReg(id).known && (decodeReg(id) as { class?: string }).class === "msr";
    regs.push({
      name: featureName(id),
      bitsize: size * 8,
      type: `uint${size * 8}`,
      regnum: regnum++,
      feature: isMsr ? MSR : KVM,
      group: "system",
      source: { id, shift: 0, width: size * 8 },
    });
  }
  const pc = regs.find((r) => r.name === "rip");
  const sp = regs.find((r) => r.name === "rsp");
  return {
    architecture: "i386:x86-64",
    registers: regs,
    gCount,
    pcRegnum: pc?.regnum ?? 16,
    spRegnum: sp?.regnum ?? 7,
  };
}
