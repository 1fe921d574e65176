/**
 * x86-64 registers as GDB sees them, planned from the vCPU's `regList()` and the pseudo-register
 * field tables of src/abi/arch/x86/pseudo-fields.ts (see src/vmm/gdbstub/regmap.ts for the model).
 *
 * Features and order follow GDB's amd64 descriptions (gdb/features/i386/64bit-core.xml,
 * 64bit-sse.xml, 64bit-segments.xml): rax…r15, rip, eflags, the six selectors, st0–st7 and the
 * x87 control registers in `org.gnu.gdb.i386.core`; xmm0–15 and mxcsr in `.sse`; orig_rax in
 * `.linux` (regnum 57, right after mxcsr, as GDB's amd64 GNU/Linux numbering has it); fs_base and
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
import { KVM_GUESTDBG } from "../../../abi/kvm/constants.js";
import type { GuestDebug } from "../../../backends/vcpu.js";
import type { GdbPlan, GdbReg, GdbSource } from "../../gdbstub/regmap.js";
import type { BreakpointType, DebugArch, StopEvent } from "../../gdbstub/target.js";
import { translateVirtual } from "./pagewalk.js";

const CORE = "org.gnu.gdb.i386.core";
const SSE = "org.gnu.gdb.i386.sse";
const SEGMENTS = "org.gnu.gdb.i386.segments";
const LINUX = "org.gnu.gdb.i386.linux";

/**
 * `orig_rax`, the one register of GDB's `org.gnu.gdb.i386.linux` feature: the syscall number a
 * Linux *process* entered the kernel with (ptrace's `orig_ax`), which GDB's amd64 GNU/Linux
 * support requires in the description (amd64-linux-tdep.c gives up on a description without the
 * feature) and sets to -1 when it moves the pc, to stop a syscall restart. A virtual CPU has no
 * such register: it always reads -1 ("not in a syscall", what GDB itself writes) and writes are
 * ignored.
 */
const ORIG_RAX: GdbReg = {
  name: "orig_rax",
  bitsize: 64,
  type: "int",
  regnum: -1, // numbered where the plan places it
  feature: LINUX,
  group: "system",
  source: { constant: (1n << 64n) - 1n },
};
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
    if (name === "mxcsr") regs.push({ ...ORIG_RAX, regnum: regnum++ });
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

/** What an x86 vCPU's guest debug intercepts (measured per host: docs/kvm-guest-debug.md). */
export interface X86DebugFeatures {
  /**
   * `int3` exits as KVM_EXIT_DEBUG (exception 3) with KVM_GUESTDBG_USE_SW_BP. VMX/SVM KVM: yes.
   * kvm_pvm (6.18): no — real mode delivers it through the guest's IVT, protected and long
   * mode end in KVM_EXIT_INTERNAL_ERROR (the emulator cannot run INT outside real mode).
   */
  readonly swBreakpoints: boolean;
  /** DR7 data breakpoints (R/W = 01 or 11) exit as KVM_EXIT_DEBUG. kvm_pvm: no (not reported). */
  readonly watchpoints: boolean;
}

/** This project's KVM host (kvm_pvm, kernel 6.18): single-step and DR0–DR3 execution only. */
export const KVM_PVM_DEBUG_FEATURES: X86DebugFeatures = Object.freeze({
  swBreakpoints: false,
  watchpoints: false,
});

/** The x86 software breakpoint instruction (`int3`, opcode 0xCC; SDM Vol. 2A "INT n"). */
export const SW_BREAKPOINT = Object.freeze([0xcc]);

/** x86 has four address breakpoint registers, DR0–DR3 (SDM Vol. 3B §18.2). */
export const HW_SLOTS = 4;

/** DR7 (SDM Vol. 3B §18.2.4): L<n> bit 2n, R/W<n> bits 16+4n, LEN<n> bits 18+4n; bit 10 reads 1. */
const DR7_FIXED = 0x400n;
/** R/W field: 00 execute, 01 write, 11 read or write (10 is I/O, with CR4.DE). */
const RW = { exec: 0n, write: 1n, access: 3n } as const;
/** LEN field for 1, 2, 8 and 4 bytes (10 = 8 bytes in 64-bit mode). */
const LEN: Readonly<Record<number, bigint>> = { 1: 0n, 2: 1n, 8: 2n, 4: 3n };

/** Where a Z packet went: a debug register, or the target writes `SW_BREAKPOINT` itself. */
export type X86BreakpointPlacement = "slot" | "memory";

interface Slot {
  readonly type: BreakpointType;
  readonly address: bigint;
  readonly length: number;
}

/**
 * GDB's `Z`/`z` on x86 as guest debug (struct kvm_guest_debug): Z0 is `int3` written by the
 * target where the host intercepts it, else a DR slot like Z1; Z2 (write) and Z4 (access)
 * watchpoints take a slot where the host reports them; Z3 (read) is refused as on every x86
 * (no read-only R/W encoding; GDB's own x86 code does the same, gdb/nat/x86-dregs.c). At most 4
 * slots: the fifth is a RangeError (an `E` reply). Guest debug is debugger state, never guest
 * state: the guest's own DR0–DR7 are not touched.
 */
export class X86Breakpoints {
  readonly features: X86DebugFeatures;
  readonly #slots: (Slot | undefined)[] = new Array<Slot | undefined>(HW_SLOTS).fill(undefined);
  readonly #memory = new Set<bigint>();

  constructor(features: X86DebugFeatures) {
    this.features = features;
  }

  /**
   * Places a breakpoint; false when this kind is not supported here (an empty reply; GDB then
   * uses software watchpoints or another kind). Inserting one that exists is a no-op.
   * @throws {RangeError} when every debug register is in use, or a watchpoint's length is not
   *   1, 2, 4 or 8 with the address aligned to it.
   */
  insert(type: BreakpointType, address: bigint, kind: number): X86BreakpointPlacement | false {
    if (type === 0 && this.features.swBreakpoints) {
      this.#memory.add(address);
      return "memory";
    }
    if (type === 3 || (type >= 2 && !this.features.watchpoints)) return false;
    const length = type === 0 || type === 1 ? 1 : kind;
    if (type >= 2 && (LEN[length] === undefined || address % BigInt(length) !== 0n)) {
      throw new RangeError(
        `Cannot watch ${length} bytes at 0x${address.toString(16)}: x86 debug registers watch 1, 2, 4 or 8 bytes aligned to their length`,
      );
    }
    if (this.#find(type, address, length) >= 0) return "slot";
    const free = this.#slots.indexOf(undefined);
    if (free < 0) {
      throw new RangeError(
        `Cannot set a breakpoint at 0x${address.toString(16)}: all ${HW_SLOTS} x86 debug registers (DR0-DR3) are in use; delete one first`,
      );
    }
    this.#slots[free] = { type, address, length };
    return "slot";
  }

  /** Removes a breakpoint; false when there is none of that kind at `address`. */
  remove(type: BreakpointType, address: bigint, kind: number): boolean {
    if (type === 0 && this.features.swBreakpoints) return this.#memory.delete(address);
    const length = type === 0 || type === 1 ? 1 : kind;
    const at = this.#find(type, address, length);
    if (at < 0) return false;
    this.#slots[at] = undefined;
    return true;
  }

  /** Addresses holding a `SW_BREAKPOINT` the target wrote (Z0 with intercepted `int3`). */
  memoryBreakpoints(): bigint[] {
    return [...this.#memory];
  }

  /** Forgets every breakpoint (detach). */
  clear(): void {
    this.#slots.fill(undefined);
    this.#memory.clear();
  }

  /**
   * The `setGuestDebug` argument for the next run: single-step when `step`; execution slots at
   * `stepOverPc` left out (a DR execution breakpoint fires again at the same pc on resume — RF is
   * not honoured on kvm_pvm, measured — so a resume from one steps off it first). Control 0 (guest
   * debug off) when nothing is set.
   */
  guestDebug(step: boolean, stepOverPc?: bigint): GuestDebug {
    const debugreg = new Array<bigint>(8).fill(0n);
    let dr7 = 0n;
    this.#slots.forEach((slot, n) => {
      if (slot === undefined) return;
      const exec = slot.type === 0 || slot.type === 1;
      if (exec && slot.address === stepOverPc) return;
      const rw = exec ? RW.exec : slot.type === 2 ? RW.write : RW.access;
      const len = exec ? 0n : (LEN[slot.length] ?? 0n);
      const bn = BigInt(n);
      debugreg[n] = slot.address;
      dr7 |= (1n << (2n * bn)) | (rw << (16n + 4n * bn)) | (len << (18n + 4n * bn));
    });
    let control = 0;
    if (dr7 !== 0n) control |= KVM_GUESTDBG.USE_HW_BP;
    if (this.#memory.size > 0) control |= KVM_GUESTDBG.USE_SW_BP;
    if (step) control |= KVM_GUESTDBG.SINGLESTEP;
    if (control === 0) return { control: 0 };
    debugreg[7] = dr7 === 0n ? 0n : dr7 | DR7_FIXED;
    return { control: control | KVM_GUESTDBG.ENABLE, debugreg };
  }

  /**
   * Why a `debug` exit stopped, for the stop reply: `undefined` for a single step (DR6.BS) or an
   * exit none of ours explains; else the breakpoint's kind (a Z0 held in a slot is `swbreak`:
   * the pc is at the instruction, not past it).
   */
  stopCause(exit: { readonly exception?: number; readonly dr6?: bigint }): X86StopCause {
    if (exit.exception === 3) return { kind: "swbreak" };
    const dr6 = exit.dr6 ?? 0n;
    for (let n = 0; n < HW_SLOTS; n++) {
      const slot = this.#slots[n];
      if (slot === undefined || (dr6 & (1n << BigInt(n))) === 0n) continue;
      if (slot.type === 0) return { kind: "swbreak" };
      if (slot.type === 1) return { kind: "hwbreak" };
      return { kind: slot.type === 2 ? "watch" : "awatch", address: slot.address };
    }
    return undefined; // DR6.BS (bit 14, SDM Vol. 3B §18.2.3): a single step
  }

  #find(type: BreakpointType, address: bigint, length: number): number {
    return this.#slots.findIndex(
      (s) => s?.type === type && s.address === address && s.length === length,
    );
  }
}

/** A stop cause as the gdbstub reports it (StopEvent's `cause`). */
export type X86StopCause = Extract<StopEvent, { kind: "stopped" }>["cause"];

/**
 * x86 for the machine's debug target (src/vmm/machine/debug.ts): on this KVM host `int3` is not
 * intercepted, so `Z0` and `Z1` both become DR0–DR3 execution breakpoints (at most 4; the DR7
 * encoding is `X86Breakpoints`'); addresses translate through the guest's own paging
 * (./pagewalk.ts). On a VMX/SVM host, `swBreakpoints: true` in the features makes `Z0` an
 * `int3` again.
 */
export const x86DebugArch: DebugArch = {
  arch: "x86",
  planner: planGdbRegisters,
  swBreakpoint: (kind) =>
    KVM_PVM_DEBUG_FEATURES.swBreakpoints && kind === 1 ? Uint8Array.from(SW_BREAKPOINT) : undefined,
  hwBreakpoints: HW_SLOTS,
  // DR7 data breakpoints are not reported by kvm_pvm (KVM_PVM_DEBUG_FEATURES): Z2–Z4 get "".
  watchpoints: 0,
  guestDebug: (control, hw) => {
    const slots = new X86Breakpoints(KVM_PVM_DEBUG_FEATURES);
    for (const address of hw) slots.insert(1, address, 1);
    const { debugreg } = slots.guestDebug(false);
    return debugreg === undefined ? { control } : { control, debugreg };
  },
  translate: translateVirtual,
};
