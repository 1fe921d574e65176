/**
 * The soft backend's "host": what a Linux KVM host would report about its own hardware, for a
 * host whose CPU is regvisor's RV64 hart (src/backends/soft/riscv).
 *
 * ISA: a real KVM host lists in ISA_EXT every extension the host CPU has (vcpu_onereg.c,
 * `copy_isa_ext_reg_indices` → `__kvm_riscv_isa_check_host`). Ours has exactly what the hart
 * implements: RV64IMAFDC with Zicsr, Zifencei and Zicntr, plus the sub-extensions Linux's
 * cpufeature.c derives from A (Zaamo, Zalrsc) and from C with D (Zca, Zcd) — those are the same
 * instructions, so the hart implements them by construction — and Sstc (`stimecmp`, so Linux
 * programs its timer without an SBI call per tick; QEMU's virt CPU has it too). No Zicbo* (so
 * the CONFIG block-size registers do not exist), no Ssaia/Smstateen (no AIA or Smstateen CSRs
 * listed), no V, no H. Of these, KVM lets the VMM disable only F and D
 * (`kvm_riscv_vcpu_isa_disable_allowed`: Sstc is in its "no mechanism to disable" list in 6.1
 * and 6.18); everything else is fixed on.
 *
 * SBI: BASE, V01, TIME, IPI, RFENCE, SRST, HSM, EXPERIMENTAL and VENDOR are available and on;
 * DBCN and SUSP are available but off until the VMM enables them (`default_disabled` in
 * vcpu_sbi_replace.c / vcpu_sbi_system.c); PMU, STA and FWFT are unavailable (their `probe`
 * fails on this host), so they are not listed and their registers are ENOENT.
 */
import { RISCV_ISA_EXT_NAMES, RISCV_SBI_EXT_NAMES } from "../../abi/arch/riscv/index.js";

/** An ISA_EXT name as the catalog spells it (`"zicsr"`). */
export type IsaExtName = (typeof RISCV_ISA_EXT_NAMES)[number];
/** An SBI_EXT name as the catalog spells it (`"dbcn"`). */
export type SbiExtName = (typeof RISCV_SBI_EXT_NAMES)[number];

/** `KVM_RISCV_ISA_EXT_MAX` (75 in 6.18). */
export const ISA_EXT_MAX = RISCV_ISA_EXT_NAMES.length;
/** `KVM_RISCV_SBI_EXT_MAX` (13 in 6.18). */
export const SBI_EXT_MAX = RISCV_SBI_EXT_NAMES.length;

/** The KVM ISA extension id of `name` (its index in `enum KVM_RISCV_ISA_EXT_ID`). */
export function isaExtId(name: IsaExtName): number {
  return RISCV_ISA_EXT_NAMES.indexOf(name);
}

/** The KVM SBI extension id of `name` (its index in `enum KVM_RISCV_SBI_EXT_ID`). */
export function sbiExtId(name: SbiExtName): number {
  return RISCV_SBI_EXT_NAMES.indexOf(name);
}

/** Extensions the soft host has: the ISA_EXT registers every soft vCPU lists. */
export const HOST_ISA_EXTS: readonly IsaExtName[] = [
  "a",
  "c",
  "d",
  "f",
  "i",
  "m",
  "zicntr",
  "zicsr",
  "zifencei",
  "zca",
  "zcd",
  "zaamo",
  "zalrsc",
  "sstc",
];

/**
 * Extensions KVM lets the VMM disable (6.18 `kvm_riscv_vcpu_isa_disable_allowed`, the ones
 * that do not depend on host features we lack); intersected with the host set that is F and D.
 */
const DISABLE_ALLOWED: readonly IsaExtName[] = [
  "d",
  "f",
  "h",
  "v",
  "smnpm",
  "smstateen",
  "svpbmt",
  "zicbom",
  "zicboz",
];

/** Extensions KVM never lets the VMM enable (`kvm_riscv_vcpu_isa_enable_allowed`: H). */
const ENABLE_DENIED: readonly IsaExtName[] = ["h"];

const hostSet = new Set(HOST_ISA_EXTS.map(isaExtId));
const disableSet = new Set(DISABLE_ALLOWED.map(isaExtId));
const enableDenied = new Set(ENABLE_DENIED.map(isaExtId));

/** True when the soft host has ISA extension `id` (else its ISA_EXT register is ENOENT). */
export function hostHasIsaExt(id: number): boolean {
  return hostSet.has(id);
}

/** True when KVM would let the VMM enable extension `id` before the first run. */
export function isaEnableAllowed(id: number): boolean {
  return !enableDenied.has(id);
}

/** True when KVM would let the VMM disable extension `id` before the first run. */
export function isaDisableAllowed(id: number): boolean {
  return disableSet.has(id);
}

/**
 * KVM ISA extension id of single-letter extension `letter` (0 = 'a' … 25 = 'z'), or
 * `ISA_EXT_MAX` when the letter has none (`kvm_riscv_base2isa_ext`).
 */
export function letterToIsaExt(letter: number): number {
  return LETTER_EXT[letter] ?? ISA_EXT_MAX;
}

const LETTER_EXT: readonly number[] = Array.from({ length: 26 }, (_, letter) => {
  const id = (RISCV_ISA_EXT_NAMES as readonly string[]).indexOf(String.fromCharCode(97 + letter));
  return id < 0 ? ISA_EXT_MAX : id;
});

/** Single-letter extensions of the host (`riscv_isa_extension_base(NULL)`): bit = letter. */
export const HOST_BASE_LETTERS: number = HOST_ISA_EXTS.filter((n) => n.length === 1).reduce(
  (bits, n) => bits | (1 << (n.charCodeAt(0) - 97)),
  0,
);

/** Timebase of the soft host in Hz (TIMER `frequency`; 10 MHz like QEMU `virt`). */
export const TIMEBASE_HZ = 10_000_000;

/** Host `satp` MODE the hart implements: 8 = Sv39 (CONFIG `satp_mode`, read-only). */
export const SATP_MODE_SV39 = 8n;

/** Initial CONFIG mvendorid/marchid/mimpid (KVM copies the host's; ours reports 0). */
export const HOST_IMPL_IDS = { mvendorid: 0n, marchid: 0n, mimpid: 0n } as const;

/** Availability of an SBI extension on this host, and whether it starts enabled. */
export type SbiAvailability = "enabled" | "disabled" | "unavailable";

const SBI_DEFAULTS: Readonly<Record<SbiExtName, SbiAvailability>> = {
  v01: "enabled",
  time: "enabled",
  ipi: "enabled",
  rfence: "enabled",
  srst: "enabled",
  hsm: "enabled",
  pmu: "unavailable",
  experimental: "enabled",
  vendor: "enabled",
  dbcn: "disabled",
  sta: "unavailable",
  susp: "disabled",
  fwft: "unavailable",
};

/** Initial status of every SBI extension, indexed by KVM SBI extension id. */
export function sbiDefaults(): SbiAvailability[] {
  return RISCV_SBI_EXT_NAMES.map((name) => SBI_DEFAULTS[name]);
}

/** `KVM_SBI_VERSION_MAJOR`/`MINOR` (arch/riscv/include/asm/kvm_vcpu_sbi.h): SBI spec 2.0. */
export const SBI_SPEC_VERSION = (2n << 24n) | 0n;
/** `KVM_SBI_IMPID`: the SBI implementation id of KVM. */
export const SBI_IMPL_ID = 3n;
/** `LINUX_VERSION_CODE` of the kernel the soft backend models (6.18.0). */
export const SBI_IMPL_VERSION = (6n << 16n) | (18n << 8n);
