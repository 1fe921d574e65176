/**
 * Per-arch restore ordering, kept as data (docs/DESIGN.md §4; docs/kvm-register-abi.md §13).
 *
 * Each arch lists its phases in application order and an ordered list of rules; the first
 * rule whose matcher fits a register decides its phase (or that it is only verified, or that
 * it is VM-wide). Matchers look only at catalog facts — class, name or alias, structured
 * fields, pseudo / read-only flags — so the same code orders every arch. Registers no rule
 * matches, including ids the catalog does not know, go to the arch's default phase; a
 * register the catalog marks read-only is always verified, never written.
 */
import { decodeReg, type Decoded } from "../../abi/catalog.js";
import type { ArchName, RegId } from "../../abi/regid.js";

/** Conditions on a register's catalog entry; all given conditions must hold. */
export interface RegMatcher {
  /** Any of these names or aliases (case-insensitive). */
  readonly names?: readonly string[];
  /** A name starting with any of these (case-insensitive). */
  readonly prefixes?: readonly string[];
  /** Any of these catalog classes. */
  readonly classes?: readonly string[];
  /** Every listed structured field equals the given value. */
  readonly fields?: Readonly<Record<string, number | string>>;
  readonly pseudo?: boolean;
  readonly readOnly?: boolean;
}

/**
 * What restore does with a matched register: write it; only verify it (read-only); or write it
 * only when the stream's value differs from the destination's — for registers whose write has
 * side effects even with an unchanged value (riscv `timer.state`: SET 0 on a disarmed timer is
 * EINVAL, SET 1 re-arms with deadline 1; arch/riscv/kvm/vcpu_timer.c).
 */
export type RuleAction = "write" | "verify" | "write-if-changed";

/** One ordering rule. */
export interface OrderingRule {
  readonly phase: string;
  readonly match: RegMatcher;
  /**
   * `"verify"`: read-only — compare with the destination, never write. `"write-if-changed"`:
   * skip when equal to the destination's value. Default `"write"`.
   */
  readonly action?: RuleAction;
  /** `"vm"`: one value per VM — written through the first vCPU restored only. */
  readonly scope?: "vcpu" | "vm";
  /** The ABI fact behind the rule. */
  readonly why: string;
}

/** One phase: written in one `setManyRegs` batch. */
export interface PhaseSpec {
  readonly name: string;
  readonly why: string;
}

/**
 * A side effect of writing: writing a register matching any of `writes` may change registers
 * matching `changes` although it does not name them. A rollback writes those registers back
 * after undoing such a write, written or not, so the destination ends exactly as it was.
 */
export interface SideEffect {
  readonly writes: readonly RegMatcher[];
  readonly changes: RegMatcher;
  /** The kernel code behind it. */
  readonly why: string;
}

/** The ordering data of one arch. */
export interface ArchOrdering {
  readonly arch: ArchName;
  /** Phases in application order (a rollback writes back in this order too). */
  readonly phases: readonly PhaseSpec[];
  /** First match wins. */
  readonly rules: readonly OrderingRule[];
  /** Phase of registers no rule matches. */
  readonly defaultPhase: string;
  /** Writes that change other registers (none when absent). */
  readonly effects?: readonly SideEffect[];
}

const READ_ONLY_RULE = (phase: string): OrderingRule => ({
  phase,
  match: { readOnly: true },
  action: "verify",
  why: "the catalog marks it read-only: a different value is refused, so compare and skip",
});

/** x86 (ABI §13.1; QEMU target/i386/kvm/kvm.c kvm_arch_put_registers as the reference order). */
export const X86_ORDERING: ArchOrdering = {
  arch: "x86",
  phases: [
    { name: "cpuid", why: "SREGS, MSRs and XSAVE are validated against the guest CPUID" },
    {
      name: "feature-msrs",
      why: "immutable after the first run; QEMU writes FEATURE_CONTROL first",
    },
    { name: "tsc-khz", why: "IA32_TSC is interpreted at the guest TSC frequency" },
    {
      name: "sregs",
      why: "APIC base (SREGS.apic_base or IA32_APICBASE) before LAPIC; EFER before nested state",
    },
    { name: "nested", why: "nested state is refused unless EFER.SVME is already set" },
    { name: "regs", why: "QEMU order: REGS after SREGS" },
    { name: "xsave", why: "QEMU order: FPU/XSAVE after REGS" },
    { name: "xcrs", why: "QEMU order: XCRS after XSAVE" },
    {
      name: "lapic",
      why: "after the APIC base; before MSRs (x2APIC MSRs and TSC_DEADLINE live in the LAPIC)",
    },
    { name: "msrs", why: "IA32_TSC and the other MSRs, after CPUID and TSC kHz" },
    { name: "vcpu-events", why: "QEMU order: VCPU_EVENTS after MSRs" },
    { name: "mp-state", why: "QEMU order: MP_STATE after VCPU_EVENTS" },
    {
      name: "tsc-deadline",
      why: "SET_LAPIC cancels the APIC timer and the deadline is relative to IA32_TSC",
    },
    { name: "debugregs", why: "QEMU order: DEBUGREGS last" },
  ],
  rules: [
    READ_ONLY_RULE("cpuid"),
    { phase: "cpuid", match: { names: ["CPUID"] }, why: "KVM_SET_CPUID2 first" },
    {
      phase: "feature-msrs",
      match: {
        names: ["IA32_FEATURE_CONTROL", "IA32_ARCH_CAPABILITIES", "IA32_PERF_CAPABILITIES"],
      },
      why: "feature MSRs are immutable after the first run",
    },
    {
      phase: "feature-msrs",
      match: { prefixes: ["IA32_VMX_"] },
      why: "VMX capability MSRs are feature MSRs",
    },
    { phase: "tsc-khz", match: { names: ["TSC_KHZ"] }, why: "KVM_SET_TSC_KHZ before IA32_TSC" },
    {
      phase: "sregs",
      match: { names: ["SREGS", "SREGS2", "IA32_APICBASE"] },
      why: "APIC base before KVM_SET_LAPIC",
    },
    {
      phase: "nested",
      match: { names: ["NESTED_STATE"] },
      why: "KVM_SET_NESTED_STATE after SREGS",
    },
    { phase: "regs", match: { names: ["REGS"] }, why: "general registers" },
    { phase: "xsave", match: { names: ["FPU", "XSAVE", "XSAVE2"] }, why: "FPU/XSAVE state" },
    { phase: "xcrs", match: { names: ["XCRS"] }, why: "XCR0" },
    { phase: "lapic", match: { names: ["LAPIC"] }, why: "KVM_SET_LAPIC" },
    { phase: "vcpu-events", match: { names: ["VCPU_EVENTS"] }, why: "pending events late" },
    { phase: "mp-state", match: { names: ["MP_STATE"] }, why: "run state late" },
    {
      phase: "msrs",
      match: { names: ["KVM_ASYNC_PF_INT"] },
      action: "write-if-changed",
      why: "6.18 x86.c kvm_pv_enable_async_pf_int refuses every write, 0 included, without an in-kernel LAPIC, yet KVM_GET_MSRS reads it",
    },
    {
      phase: "tsc-deadline",
      match: { names: ["IA32_TSC_DEADLINE"] },
      why: "after LAPIC and IA32_TSC",
    },
    { phase: "debugregs", match: { names: ["DEBUGREGS"] }, why: "debug registers" },
  ],
  defaultPhase: "msrs",
  effects: [
    {
      writes: [{ names: ["LAPIC"] }],
      changes: { names: ["IA32_TSC_DEADLINE"] },
      why: "KVM_SET_LAPIC cancels the APIC timer, armed deadline included (lapic.c kvm_apic_set_state)",
    },
  ],
};

/** RISC-V (ABI §13.3; arch/riscv/kvm/vcpu_onereg.c, vcpu_timer.c, vcpu_sbi.c). */
export const RISCV_ORDERING: ArchOrdering = {
  arch: "riscv",
  phases: [
    { name: "config-isa", why: "every ISA change resets sstatus.FS and gates FP/vector access" },
    { name: "isa-ext", why: "extensions before the state they enable; EBUSY after the first run" },
    { name: "config", why: "mvendorid/marchid/mimpid before the first run" },
    {
      name: "sbi-ext",
      why: "SBI extensions before SBI_STATE (state of a disabled extension is EINVAL)",
    },
    { name: "state", why: "core, CSR, FP and vector state once the ISA is final" },
    { name: "sbi-state", why: "after SBI_EXT enabled STA / FWFT" },
    { name: "timer-time", why: "time is VM-wide: written once" },
    { name: "timer-compare", why: "compare before state: state = ON arms the timer with compare" },
    { name: "timer-state", why: "last: arms the timer" },
  ],
  rules: [
    READ_ONLY_RULE("config"),
    { phase: "config-isa", match: { names: ["config.isa"] }, why: "CONFIG isa first" },
    { phase: "isa-ext", match: { classes: ["isa_ext"] }, why: "ISA_EXT before state" },
    { phase: "config", match: { classes: ["config"] }, why: "other CONFIG registers" },
    { phase: "sbi-ext", match: { classes: ["sbi_ext"] }, why: "SBI_EXT before SBI_STATE" },
    { phase: "sbi-state", match: { classes: ["sbi_state"] }, why: "SBI_STATE after SBI_EXT" },
    {
      phase: "timer-time",
      match: { names: ["timer.time"] },
      scope: "vm",
      why: "VM-wide time offset",
    },
    { phase: "timer-compare", match: { names: ["timer.compare"] }, why: "compare before state" },
    {
      phase: "timer-state",
      match: { names: ["timer.state"] },
      action: "write-if-changed",
      why: "arms the timer; 6.18 vcpu_timer.c refuses SET 0 on a disarmed timer (EINVAL) and SET 1 arms it with deadline 1, so write it only when it changes",
    },
    {
      phase: "timer-compare",
      match: { classes: ["timer"] },
      why: "other timer registers with compare",
    },
  ],
  defaultPhase: "state",
  effects: [
    {
      writes: [{ names: ["config.isa"] }, { classes: ["isa_ext"] }],
      changes: { names: ["csr.sstatus"] },
      why: "every change of config.isa or an ISA_EXT register resets sstatus.FS (6.18 vcpu_onereg.c calls kvm_riscv_vcpu_fp_reset)",
    },
    {
      writes: [{ names: ["config.isa"] }, { classes: ["isa_ext"] }],
      changes: { classes: ["vector"] },
      why: "every ISA change also resets the vector state (6.18 vcpu_onereg.c calls kvm_riscv_vcpu_vector_reset)",
    },
    {
      writes: [{ classes: ["fp_f"] }],
      changes: { classes: ["fp_d"] },
      why: "FP_F and FP_D are views of one register file (6.18 vcpu_fp.c: cntx->fp is a union), so an F write changes D values",
    },
    {
      writes: [{ classes: ["fp_d"] }],
      changes: { classes: ["fp_f"] },
      why: "FP_F and FP_D are views of one register file (6.18 vcpu_fp.c: cntx->fp is a union), so a D write changes F values",
    },
  ],
};

/** arm64 (ABI §13.2; arch/arm64/kvm/guest.c, sys_regs.c, hypercalls.c). */
export const ARM64_ORDERING: ArchOrdering = {
  arch: "arm64",
  phases: [
    {
      name: "sve-vls",
      why: "SVE_VLS first; the VMM must then KVM_ARM_VCPU_FINALIZE(SVE) before Z/P/FFR are reachable",
    },
    { name: "id-regs", why: "ID registers are VM-scoped and refused (EBUSY) after the first run" },
    { name: "fw", why: "firmware registers and hypercall bitmaps before the first run" },
    { name: "pstate", why: "a 32-bit PSTATE truncates later X/PC writes, so PSTATE first" },
    { name: "core", why: "X0..X30, SP, PC and the rest of kvm_regs after PSTATE" },
    { name: "sve", why: "Z/P/FFR after finalization" },
    { name: "sysregs", why: "the remaining system registers" },
    { name: "timer-cnt", why: "the counter programs a VM-wide offset: before CTL/CVAL" },
    { name: "timer", why: "timer CTL/CVAL after the counter" },
  ],
  rules: [
    READ_ONLY_RULE("id-regs"),
    { phase: "sve-vls", match: { names: ["SVE_VLS"] }, why: "VLS is frozen by finalization" },
    {
      phase: "id-regs",
      match: { classes: ["sysreg"], fields: { op0: 3, op1: 0, crn: 0 } },
      why: "op0=3, op1=0, CRn=0 is the ID register space",
    },
    { phase: "fw", match: { classes: ["fw", "fw_feat_bmap"] }, why: "PSCI_VERSION and bitmaps" },
    { phase: "pstate", match: { names: ["PSTATE"] }, why: "PSTATE before X0..X30 and PC" },
    { phase: "core", match: { classes: ["core"] }, why: "core registers" },
    { phase: "sve", match: { classes: ["sve"] }, why: "SVE data" },
    {
      phase: "timer-cnt",
      match: { names: ["TIMER_CNT", "PTIMER_CNT"] },
      scope: "vm",
      why: "a CNT write sets the VM-wide counter offset",
    },
    { phase: "timer", match: { classes: ["timer"] }, why: "CTL/CVAL after CNT" },
  ],
  defaultPhase: "sysregs",
};

/** Ordering of the arches without specific rules: read-only verified, the rest in one batch. */
export function plainOrdering(arch: ArchName): ArchOrdering {
  return {
    arch,
    phases: [{ name: "all", why: "no ordering constraints recorded for this arch" }],
    rules: [READ_ONLY_RULE("all")],
    defaultPhase: "all",
  };
}

/** Every arch's ordering data, by arch. */
export const ORDERINGS: Readonly<Partial<Record<ArchName, ArchOrdering>>> = {
  x86: X86_ORDERING,
  riscv: RISCV_ORDERING,
  arm64: ARM64_ORDERING,
};

/** The ordering of `arch` (a plain one-phase ordering where none is recorded). */
export function orderingFor(arch: ArchName): ArchOrdering {
  return ORDERINGS[arch] ?? plainOrdering(arch);
}

/** Problems in an ordering's data (unknown phase names, duplicates); empty when sound. */
export function orderingProblems(o: ArchOrdering): string[] {
  const names = o.phases.map((p) => p.name);
  const out: string[] = [];
  if (new Set(names).size !== names.length) out.push(`${o.arch}: duplicate phase names`);
  for (const phase of [o.defaultPhase, ...o.rules.map((r) => r.phase)]) {
    if (!names.includes(phase))
      out.push(`${o.arch}: rule or default names unknown phase "${phase}"`);
  }
  return out;
}

const lower = (s: string): string => s.toLowerCase();

/** True when the catalog entry `info` satisfies every condition of `m`. */
export function matches(m: RegMatcher, info: Decoded): boolean {
  if (!info.known) return false;
  const names = [info.name, ...(info.aliases ?? [])].map(lower);
  if (m.names !== undefined && !m.names.some((n) => names.includes(lower(n)))) return false;
  if (
    m.prefixes !== undefined &&
    m.prefixes.length > 0 &&
    !m.prefixes.some((p) => names.some((n) => n.startsWith(lower(p))))
  ) {
    return false;
  }
  if (m.classes !== undefined && !m.classes.includes(info.class)) return false;
  if (m.fields !== undefined && !Object.entries(m.fields).every(([k, v]) => info.fields[k] === v))
    return false;
  if (m.pseudo !== undefined && (info.pseudo === true) !== m.pseudo) return false;
  if (m.readOnly !== undefined && info.readOnly !== m.readOnly) return false;
  return true;
}

/** Where one register goes. */
export interface Placement {
  readonly phase: string;
  readonly action: RuleAction;
  readonly scope: "vcpu" | "vm";
  /** The rule that decided, or undefined for the default phase. */
  readonly rule: OrderingRule | undefined;
}

/**
 * Placements already computed, per ordering object. Catalogs and orderings are immutable data,
 * so a placement never changes; caching it takes restore planning from ~10 µs to well under
 * 1 µs per register (the catalog decode and the rule scan dominated a whole-vCPU restore).
 */
const placements = new WeakMap<ArchOrdering, Map<RegId, Placement>>();

/** Places one id by the first matching rule of `ordering`. */
export function placeRegister(ordering: ArchOrdering, id: RegId): Placement {
  let cache = placements.get(ordering);
  if (cache === undefined) {
    cache = new Map();
    placements.set(ordering, cache);
  }
  const known = cache.get(id);
  if (known !== undefined) return known;
  const info = decodeReg(id);
  const rule = ordering.rules.find((r) => matches(r.match, info));
  const placed: Placement =
    rule === undefined
      ? { phase: ordering.defaultPhase, action: "write", scope: "vcpu", rule: undefined }
      : { phase: rule.phase, action: rule.action ?? "write", scope: rule.scope ?? "vcpu", rule };
  cache.set(id, placed);
  return placed;
}

/** How one register takes part in side effects: the effects it causes and may suffer. */
export interface EffectRoles {
  /** Indices (into `ordering.effects`) of the effects writing it causes. */
  readonly causes: readonly number[];
  /** Indices of the effects that may change it. */
  readonly changedBy: readonly number[];
}

const NO_ROLES: EffectRoles = { causes: [], changedBy: [] };
/** Roles already worked out, per ordering (catalogs and orderings are immutable data). */
const effectRoles = new WeakMap<ArchOrdering, Map<RegId, EffectRoles>>();

/** The side effects writing `id` causes and those that may change it. */
export function effectRolesOf(ordering: ArchOrdering, id: RegId): EffectRoles {
  const effects = ordering.effects ?? [];
  if (effects.length === 0) return NO_ROLES;
  let cache = effectRoles.get(ordering);
  if (cache === undefined) {
    cache = new Map();
    effectRoles.set(ordering, cache);
  }
  let roles = cache.get(id);
  if (roles === undefined) {
    const info = decodeReg(id);
    roles = {
      causes: effects.flatMap((e, k) => (e.writes.some((w) => matches(w, info)) ? [k] : [])),
      changedBy: effects.flatMap((e, k) => (matches(e.changes, info) ? [k] : [])),
    };
    cache.set(id, roles);
  }
  return roles;
}

/** One phase of ordered ids. */
export interface OrderedPhase {
  readonly phase: string;
  readonly ids: readonly RegId[];
}

/**
 * Orders ids for writing: phases in the arch's order (empty ones dropped), ids in input order
 * within a phase. Ids placed with action "verify" are left out ("write-if-changed" ones stay).
 */
export function orderRegisters(arch: ArchName, ids: readonly RegId[]): OrderedPhase[] {
  const ordering = orderingFor(arch);
  const buckets = new Map<string, RegId[]>(ordering.phases.map((p) => [p.name, []]));
  for (const id of ids) {
    const place = placeRegister(ordering, id);
    if (place.action === "verify") continue;
    const bucket = buckets.get(place.phase);
    // A rule naming a phase the arch does not list would silently drop registers.
    if (bucket === undefined) throw new Error(`${arch} ordering: no phase "${place.phase}"`);
    bucket.push(id);
  }
  return ordering.phases
    .map((p) => ({ phase: p.name, ids: buckets.get(p.name) ?? [] }))
    .filter((p) => p.ids.length > 0);
}
