/**
 * Zicsr: the CSRs a KVM guest can reach from VS/VU-mode (privileged spec "Supervisor-Level
 * CSRs"; KVM's view in docs/soft-riscv-notes.md §1.2, §1.5) and the CSR instructions.
 *
 * - S-level: sstatus, sie, stvec, scounteren, senvcfg, sscratch, sepc, scause, stval, sip, satp.
 * - User: fflags/frm/fcsr (F/D; illegal while sstatus.FS = Off), cycle/time/instret (Zicntr;
 *   from U-mode only if the scounteren bit is set). `cycle` reads the retired-instruction count
 *   (there is no cycle model), `time` the installed time source.
 * - Sstc (when on): `stimecmp`; STIP is then the level `time >= stimecmp` (Sstc spec §2;
 *   KVM sets henvcfg.STCE for a vCPU with Sstc, arch/riscv/kvm/vcpu.c
 *   kvm_riscv_vcpu_update_config, so the guest reaches it without a trap).
 * - Everything else (M/H-level CSRs, hpmcounters without a vPMU, stimecmp without Sstc, seed)
 *   is an illegal instruction, as KVM re-injects it.
 * WARL rules: satp keeps its old value for modes other than Bare/Sv39 (Linux probes modes this
 * way); stvec ignores writes with MODE ≥ 2; sepc bit 0 is zero; sip only SSIP is writable.
 */
import { C64, SSTATUS, SSTATUS_WRITABLE, type Core } from "./core.js";
import { fromBig, I64 } from "./i64.js";

/** CSR numbers. */
export const CSR = {
  FFLAGS: 0x001,
  FRM: 0x002,
  FCSR: 0x003,
  SSTATUS: 0x100,
  SIE: 0x104,
  STVEC: 0x105,
  SCOUNTEREN: 0x106,
  SENVCFG: 0x10a,
  SSCRATCH: 0x140,
  SEPC: 0x141,
  SCAUSE: 0x142,
  STVAL: 0x143,
  SIP: 0x144,
  STIMECMP: 0x14d,
  SATP: 0x180,
  CYCLE: 0xc00,
  TIME: 0xc01,
  INSTRET: 0xc02,
} as const;

/** Interrupt bits that exist in sie/sip: SSIP, STIP, SEIP. */
export const SIE_MASK = 0x222;
/** senvcfg: only FIOM exists without Zicbom/Zicboz/pointer masking. */
const SENVCFG_MASK = 1;

const PAIR_CSRS: Partial<Record<number, number>> = {
  [CSR.STVEC]: C64.STVEC,
  [CSR.SSCRATCH]: C64.SSCRATCH,
  [CSR.SEPC]: C64.SEPC,
  [CSR.SCAUSE]: C64.SCAUSE,
  [CSR.STVAL]: C64.STVAL,
  [CSR.SATP]: C64.SATP,
  [CSR.SENVCFG]: C64.SENVCFG,
};

function fpOn(c: Core): boolean {
  return (c.fEnabled || c.dEnabled) && (c.sstatus & SSTATUS.FS) !== 0;
}

/**
 * Reads CSR `num`: returns the low word (high word in `I64.hi`), or null if the access is
 * illegal in the current mode.
 */
export function csrRead(c: Core, num: number): number | null {
  if (((num >>> 8) & 3) > c.mode) return null;
  switch (num) {
    case CSR.FFLAGS:
    case CSR.FRM:
    case CSR.FCSR: {
      if (!fpOn(c)) return null;
      I64.hi = 0;
      return num === CSR.FFLAGS ? c.fflags : num === CSR.FRM ? c.frm : (c.frm << 5) | c.fflags;
    }
    case CSR.CYCLE:
    case CSR.TIME:
    case CSR.INSTRET: {
      if (c.mode === 0 && ((c.scounteren >>> (num & 31)) & 1) === 0) return null;
      if (num === CSR.TIME) return fromBig(c.timeNow());
      const n = c.icount;
      I64.hi = Math.floor(n / 4294967296) | 0;
      return n | 0;
    }
    case CSR.SSTATUS:
      // As Core.readSstatus without BigInt (every irq save/restore reads it): UXL = 2 at
      // bits 33:32, SD (bit 63) when FS = Dirty.
      I64.hi = (c.sstatus & SSTATUS.FS) === SSTATUS.FS ? 2 | -0x80000000 : 2;
      return c.sstatus;
    case CSR.SIE:
      I64.hi = 0;
      return c.sie;
    case CSR.SIP:
      // The comparator's level is current at every read, not only at the run loop's checks.
      if (performance.now() >= c.timerDueAt) c.checkTimer();
      I64.hi = 0;
      return c.sip;
    case CSR.SCOUNTEREN:
      I64.hi = 0;
      return c.scounteren;
    case CSR.STIMECMP:
      if (!c.sstc) return null;
      I64.hi = c.csr[C64.STIMECMP + 1] ?? 0;
      return c.csr[C64.STIMECMP] ?? 0;
    default: {
      const i = PAIR_CSRS[num];
      if (i === undefined) return null;
      I64.hi = c.csr[i + 1] ?? 0;
      return c.csr[i] ?? 0;
    }
  }
}

/** Writes CSR `num` (access already checked by a read or `csrWritable`). */
export function csrWrite(c: Core, num: number, lo: number, hi: number): void {
  switch (num) {
    case CSR.FFLAGS:
      c.fflags = lo & 31;
      break;
    case CSR.FRM:
      c.frm = lo & 7;
      break;
    case CSR.FCSR:
      c.fflags = lo & 31;
      c.frm = (lo >>> 5) & 7;
      break;
    case CSR.SSTATUS:
      writeSstatus(c, lo);
      return;
    case CSR.SIE:
      c.sie = lo & SIE_MASK;
      c.updateIrq();
      return;
    case CSR.SIP:
      c.sip = (c.sip & ~2) | (lo & 2);
      c.updateIrq();
      return;
    case CSR.SCOUNTEREN:
      c.scounteren = lo;
      return;
    case CSR.STVEC:
      if ((lo & 3) >= 2) return;
      c.csr[C64.STVEC] = lo;
      c.csr[C64.STVEC + 1] = hi;
      return;
    case CSR.SEPC:
      c.csr[C64.SEPC] = lo & ~1;
      c.csr[C64.SEPC + 1] = hi;
      return;
    case CSR.SATP:
      writeSatp(c, lo, hi);
      return;
    case CSR.SENVCFG:
      c.csr[C64.SENVCFG] = lo & SENVCFG_MASK;
      c.csr[C64.SENVCFG + 1] = 0;
      return;
    case CSR.STIMECMP:
      c.csr[C64.STIMECMP] = lo;
      c.csr[C64.STIMECMP + 1] = hi;
      c.checkTimer();
      return;
    default: {
      const i = PAIR_CSRS[num];
      if (i === undefined) return;
      c.csr[i] = lo;
      c.csr[i + 1] = hi;
      return;
    }
  }
  // fflags/frm/fcsr writes change FP state.
  c.sstatus |= SSTATUS.FS;
}

/**
 * sstatus write: WARL fields, FS only when F or D exists. Clearing SUM drops the TLB entries of
 * U pages made under it, clearing MXR empties the TLBs (entries read through X-only pages are not
 * flagged: Linux 6.1 never sets MXR); setting either only permits more, so nothing is stale.
 */
export function writeSstatus(c: Core, lo: number): void {
  let mask = SSTATUS_WRITABLE;
  if (!c.fEnabled && !c.dEnabled) mask &= ~SSTATUS.FS;
  const old = c.sstatus;
  c.sstatus = (old & ~mask) | (lo & mask);
  const cleared = old & ~c.sstatus;
  if ((cleared & SSTATUS.MXR) !== 0) c.flushTlb();
  else if ((cleared & SSTATUS.SUM) !== 0) c.sumCleared();
  c.updateIrq();
}

/** satp write: Bare or Sv39 only (others leave satp unchanged); ASID kept to 16 bits. */
export function writeSatp(c: Core, lo: number, hi: number): void {
  const mode = hi >>> 28;
  if (mode !== 0 && mode !== 8) return;
  c.csr[C64.SATP] = lo;
  c.csr[C64.SATP + 1] = hi & 0xfffffff;
  if (mode === 8) c.csr[C64.SATP + 1] = (hi & 0x0fffffff) | (8 << 28);
  c.mapChanged();
}

/** True if CSR `num` exists and is writable in the current mode. */
export function csrWritable(c: Core, num: number): boolean {
  return num >>> 10 !== 3 && csrRead(c, num) !== null;
}
