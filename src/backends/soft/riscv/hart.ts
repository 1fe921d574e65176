/**
 * The soft backend's RV64 hart: the `HartApi` of contract.ts over the Core state, the
 * interpreter and the block translator.
 *
 * Reset state follows KVM (arch/riscv/kvm/vcpu.c, kvm_arch_vcpu_create): the vCPU starts in
 * S-mode (KVM's host-side `sstatus = SPP | SPIE` selects VS-mode on entry), the guest-visible
 * CSRs are zero except `scounteren = 0x7`; so the guest's own `sstatus` reads 0 apart from the
 * read-only UXL = 2, with FS = Off until the guest turns the FPU on.
 */
import type { GeneralCsr, HartApi, HartDebug, HartStop, Memslot } from "./contract.js";
import { GENERAL_CSRS, IRQ } from "./contract.js";
import { C64, type Core } from "./core.js";
import { SIE_MASK, writeSatp, writeSstatus } from "./csr.js";
import { MMIO_TAG } from "./access.js";
import { fromBig, I64, toBigU } from "./i64.js";
import { DEFAULT_HOT, Engine } from "./engine.js";
import { allocWasmRam } from "./wasm-memory.js";
import { heatFastTier, primeFastTier } from "./fast-warm.js";
import { primeReferencePaths } from "./ref-warm.js";

const PAIR_INDEX: Partial<Record<GeneralCsr, number>> = {
  stvec: C64.STVEC,
  sscratch: C64.SSCRATCH,
  sepc: C64.SEPC,
  scause: C64.SCAUSE,
  stval: C64.STVAL,
  satp: C64.SATP,
  senvcfg: C64.SENVCFG,
};

const IRQ_ALL = IRQ.SSIP | IRQ.STIP | IRQ.SEIP;

/** Options for a new hart. */
export interface HartOptions {
  /** The hart id (SBI HSM / a0 at boot); informational for the hart itself. */
  readonly hartId?: number;
  /** Use the block translator (default true); false runs the reference interpreter only. */
  readonly translate?: boolean;
  /**
   * Boundary visits of a pc after which its region is compiled at the latest (default 4096;
   * tests use 1); a pc with a long straight-line path is compiled sooner (engine.ts `promote`).
   */
  readonly hotThreshold?: number;
  /** Most blocks per compiled region (default 1 for "js", 16 for "wasm": translate.ts, wasm-tier.ts). */
  readonly regionBlocks?: number;
  /**
   * What hot regions compile to: "js" (translate.ts) or "wasm" (wasm-tier.ts). Default: the
   * REGVISOR_SOFT_TIER environment variable, else "wasm".
   */
  readonly tier?: SoftTier;
}

/** The tier hot regions compile to. */
export type SoftTier = "js" | "wasm";

/** The tier named by REGVISOR_SOFT_TIER (unset or empty: "wasm"); throws on any other value. */
export function tierFromEnv(value: string | undefined): SoftTier {
  if (value === undefined || value === "" || value === "wasm") return "wasm";
  if (value === "js") return "js";
  throw new RangeError(
    `Cannot create a soft hart: REGVISOR_SOFT_TIER is ${JSON.stringify(value)}; set it to "js" or "wasm", or unset it`,
  );
}

function checkIndex(index: number, min: number): void {
  if (!Number.isInteger(index) || index < min || index > 31) {
    throw new RangeError(`register index ${index} is out of range ${min}..31`);
  }
}

/**
 * Primes the engine's code paths with type feedback (ref-warm.ts, fast-warm.ts), once per
 * process: `new Hart()` does it, and `regvisor run` calls it first thing (src/cli/early.ts) so
 * that the fast interpreter's optimized code is compiled while the machine is being built.
 */
export function primeEngine(): void {
  if (enginePriming !== "no") return;
  enginePriming = "running";
  try {
    // Reference paths first: primeFastTier makes shared helpers (expandRvc, the TLB) hot, and
    // V8 compiles them with the feedback they have when they become hot.
    primeReferencePaths();
    primeFastTier();
    primeSetup();
    heatFastTier();
    enginePriming = "done";
  } catch (error) {
    // A hart cannot be made here (REGVISOR_SOFT_TIER names no tier): the next one tries again.
    enginePriming = "no";
    throw error;
  }
}

/** Whether primeEngine ran; "running" while it does (the Hart it builds must not prime again). */
let enginePriming: "no" | "running" | "done" = "no";
/** The hart primeSetup set up, kept for the life of the process (as fast-warm.ts `primed`). */
const keptAlive: Hart[] = [];

/** An RV64IMAFDC hart in S/U mode as a KVM guest sees it (see contract.ts). */
export class Hart implements HartApi {
  /** The architectural state (exposed for the kernel's fast paths, tests and debugging). */
  readonly core: Core;
  private readonly engine: Engine;
  /** Size of the MMIO access in flight, for completeMmioLoad's extension. */
  private mmioSize = 0;

  constructor(options?: HartOptions) {
    if (options?.translate ?? true) primeEngine();
    this.engine = new Engine(
      options?.hartId ?? 0,
      options?.translate ?? true,
      options?.hotThreshold ?? DEFAULT_HOT,
      options?.regionBlocks,
      options?.tier ?? tierFromEnv(process.env.REGVISOR_SOFT_TIER),
    );
    this.core = this.engine.core;
  }

  /**
   * Runs at most `budget` instructions (each attempted instruction, trapping or not, counts);
   * stops earlier once the watched word differs from `expect` (see `watch`).
   */
  run(budget: number, expect?: number): HartStop {
    const stop = this.engine.run(budget, expect);
    if (stop.kind === "mmio") this.mmioSize = stop.size;
    return stop;
  }

  /**
   * Engine statistics: regions compiled, blocks invalidated (stores, fence.i), whole-cache
   * flushes, fence.i re-checks, page-table walks (as of the last `run` return).
   */
  get stats(): {
    readonly compiled: number;
    readonly invalidated: number;
    readonly flushes: number;
    readonly syncs: number;
    readonly walks: number;
  } {
    return this.engine.stats;
  }

  /** Guest instructions retired since creation. */
  get instret(): bigint {
    return BigInt(this.core.icount);
  }

  /** Resume pc. */
  getPc(): bigint {
    return this.core.pcU64();
  }

  /** Sets the resume pc (any u64). */
  setPc(value: bigint): void {
    const lo = fromBig(value);
    this.core.setPcPair(lo, I64.hi);
  }

  /** x1..x31 as u64 (x0 reads 0). */
  getX(index: number): bigint {
    checkIndex(index, 0);
    const x = this.core.x;
    return toBigU(x[2 * index] ?? 0, x[2 * index + 1] ?? 0);
  }

  /** Writes x1..x31 (x0 ignored). */
  setX(index: number, value: bigint): void {
    checkIndex(index, 0);
    if (index === 0) return;
    this.core.x[2 * index] = fromBig(value);
    this.core.x[2 * index + 1] = I64.hi;
  }

  /** 1 = S, 0 = U. */
  getMode(): 0 | 1 {
    return this.core.mode;
  }

  /** Sets the privilege mode the hart resumes in. */
  setMode(mode: 0 | 1): void {
    this.core.setMode(mode);
    this.core.updateIrq();
  }

  /** Raw f-register bits. */
  getF(index: number): bigint {
    checkIndex(index, 0);
    const f = this.core.f;
    return toBigU(f[2 * index] ?? 0, f[2 * index + 1] ?? 0);
  }

  /** Writes raw f-register bits. */
  setF(index: number, bits: bigint): void {
    checkIndex(index, 0);
    this.core.f[2 * index] = fromBig(bits);
    this.core.f[2 * index + 1] = I64.hi;
  }

  /** fcsr = frm << 5 | fflags. */
  getFcsr(): number {
    return (this.core.frm << 5) | this.core.fflags;
  }

  /** Writes fcsr (bits above 7 ignored). */
  setFcsr(value: number): void {
    this.core.fflags = value & 31;
    this.core.frm = (value >>> 5) & 7;
  }

  /** A GENERAL CSR as KVM exposes it. */
  getCsr(name: GeneralCsr): bigint {
    const c = this.core;
    switch (name) {
      case "sstatus":
        return c.readSstatus();
      case "sie":
        return BigInt(c.sie);
      case "sip":
        c.checkTimer();
        // KVM reads sip from hvip (vcpu_onereg.c kvm_riscv_vcpu_general_get_csr), which never
        // holds the Sstc comparator's level: with Sstc, STIP here is the kernel's line only, so
        // a snapshot does not turn a due stimecmp into a STIP that stays up forever on restore.
        if (c.sstc) return BigInt(c.stipLine ? c.sip | IRQ.STIP : c.sip & ~IRQ.STIP);
        return BigInt(c.sip);
      case "scounteren":
        return BigInt(c.scounteren >>> 0);
      default: {
        const i = PAIR_INDEX[name] ?? 0;
        return toBigU(c.csr[i] ?? 0, c.csr[i + 1] ?? 0);
      }
    }
  }

  /** sip as the guest's `csrr sip` reads it: with Sstc, the comparator's level ORed in. */
  guestSip(): bigint {
    this.core.checkTimer();
    return BigInt(this.core.sip);
  }

  /** Writes a GENERAL CSR with the same WARL rules as the guest (sip sets all three bits). */
  setCsr(name: GeneralCsr, value: bigint): void {
    const c = this.core;
    const lo = fromBig(value);
    const hi = I64.hi;
    switch (name) {
      case "sstatus":
        writeSstatus(c, lo);
        return;
      case "sie":
        c.sie = lo & SIE_MASK;
        break;
      case "sip":
        c.sip = lo & IRQ_ALL;
        c.stipLine = (lo & IRQ.STIP) !== 0;
        c.checkTimer();
        break;
      case "scounteren":
        c.scounteren = lo;
        return;
      case "stvec":
        if ((lo & 3) < 2) {
          c.csr[C64.STVEC] = lo;
          c.csr[C64.STVEC + 1] = hi;
        }
        return;
      case "sepc":
        c.csr[C64.SEPC] = lo & ~1;
        c.csr[C64.SEPC + 1] = hi;
        return;
      case "satp":
        writeSatp(c, lo, hi);
        return;
      case "senvcfg":
        c.csr[C64.SENVCFG] = lo & 1;
        c.csr[C64.SENVCFG + 1] = 0;
        return;
      default: {
        const i = PAIR_INDEX[name] ?? 0;
        c.csr[i] = lo;
        c.csr[i + 1] = hi;
        return;
      }
    }
    c.updateIrq();
  }

  /** Raises/lowers pending interrupt bits (IRQ.*). */
  setPending(bits: number, level: boolean): void {
    const c = this.core;
    if (level) c.sip |= bits & IRQ_ALL;
    else c.sip &= ~(bits & IRQ_ALL);
    if ((bits & IRQ.STIP) !== 0) {
      c.stipLine = level;
      c.checkTimer();
    }
    c.updateIrq();
  }

  /** True if some interrupt is pending and enabled in sie (wakes WFI; SIE not required). */
  interruptPending(): boolean {
    return (this.core.sip & this.core.sie & IRQ_ALL) !== 0;
  }

  /** Completes a stopped MMIO load: rd = value extended per the instruction, pc += len. */
  completeMmioLoad(value: bigint): void {
    const c = this.core;
    const tag = c.mmioTag;
    const rd = tag & 31;
    const bits = this.mmioSize * 8;
    const v =
      (tag & MMIO_TAG.UNSIGNED) !== 0 ? BigInt.asUintN(bits, value) : BigInt.asIntN(bits, value);
    if (rd !== 0) {
      c.x[2 * rd] = fromBig(v);
      c.x[2 * rd + 1] = I64.hi;
    }
    this.completeMmioStore();
  }

  /** Completes a stopped MMIO store: pc += len. */
  completeMmioStore(): void {
    const c = this.core;
    c.pc += c.mmioLen;
    c.icount++;
  }

  /** Replaces the memslot set (drops every translation and translated block). */
  setMemslots(slots: readonly Memslot[]): void {
    this.core.mem.set(slots);
    this.flushCaches();
  }

  /** Watches `array[index]` (the vCPU's wake sequence) during `run(budget, expect)`. */
  watch(array: Int32Array, index: number): void {
    this.engine.watch(array, index);
  }

  /** Drops every write-TLB entry (the next store to each page marks it dirty again). */
  flushWriteTlb(): void {
    this.core.tw.flush();
  }

  /** Drops the translated code of the guest-physical page at `pageAddr`, if any. */
  invalidateCode(pageAddr: number): void {
    const slot = this.core.mem.find(pageAddr);
    if (slot !== null) this.engine.invalidatePage(slot, Math.floor((pageAddr - slot.gpa) / 4096));
  }

  /** fence.i from outside (SBI remote fence.i): drops the code of pages whose bytes changed. */
  syncCode(): void {
    this.engine.syncCode();
  }

  /** sfence.vma from outside (SBI remote sfence.vma): drops cached address translations. */
  flushTranslations(): void {
    this.core.mapChanged();
  }

  /** Drops cached translations and translated code. */
  flushCaches(): void {
    this.core.mapChanged();
    this.engine.flushCode();
  }

  /** Enables/disables F and D; resets sstatus.FS to Off. */
  setFpExtensions(f: boolean, d: boolean): void {
    const c = this.core;
    c.fEnabled = f;
    c.dEnabled = d;
    c.sstatus &= ~(3 << 13);
  }

  /** Sets guest debug: ebreak interception, single-step, hw breakpoints (./debug.ts). */
  setDebug(debug: HartDebug | undefined): void {
    this.engine.setDebug(debug);
  }

  /**
   * Installs the time source (timer ticks) read by `rdtime` and compared with `stimecmp`;
   * `hz` is its frequency (default 10 MHz, the soft host's timebase).
   */
  setTimeSource(now: () => bigint, hz = 10_000_000): void {
    this.core.timeNow = now;
    this.core.ticksPerMs = hz / 1000;
    this.core.checkTimer();
  }

  /** Turns Sstc (the `stimecmp` CSR driving STIP) on or off. */
  setSstc(on: boolean): void {
    const c = this.core;
    if (c.sstc === on) return;
    c.sstc = on;
    c.timerDueAt = Infinity;
    c.stipLine = (c.sip & IRQ.STIP) !== 0;
    c.checkTimer();
  }

  /** `stimecmp` as u64. */
  getStimecmp(): bigint {
    const c = this.core.csr;
    return toBigU(c[C64.STIMECMP] ?? 0, c[C64.STIMECMP + 1] ?? 0);
  }

  /** Writes `stimecmp`; with Sstc on, STIP follows at once. */
  setStimecmp(value: bigint): void {
    const c = this.core;
    c.csr[C64.STIMECMP] = fromBig(value);
    c.csr[C64.STIMECMP + 1] = I64.hi;
    c.checkTimer();
  }

  /** Re-evaluates the Sstc STIP level now. */
  pollTimer(): void {
    this.core.checkTimer();
  }
}

/**
 * Sets up a scratch hart as the VMM sets up a guest's (memslots, time source, Sstc, FP, every
 * register, the wake word) and runs it to an ecall, so that each field those writes reach has
 * had its first write before heatFastTier: runFast's optimized code depends on the fields it
 * reads keeping their constness and representation, and lost it to the first such write after
 * it was compiled (see fast-warm.ts `heatFastTier`).
 */
function primeSetup(): void {
  const hart = new Hart();
  keptAlive.push(hart);
  const base = 0x8000_0000;
  // In a wasm memory, as the soft VM allocates guest RAM: the hart then moves its register
  // file there (core.ts `place`), a first write to `Core.x` that runFast's code depends on.
  const ram = allocWasmRam(8192);
  const dv = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
  for (let k = 0; k < 15; k++) dv.setInt32(4 * k, 0x00000013, true); // nop
  dv.setInt32(60, 0x00000073, true); // ecall
  hart.setMemslots([{ slot: 0, gpa: base, bytes: ram, readonly: false }]);
  hart.setTimeSource(() => 0n);
  hart.setSstc(true);
  hart.setStimecmp(-1n);
  hart.pollTimer();
  hart.setSstc(false);
  hart.setFpExtensions(true, true);
  for (let i = 1; i < 32; i++) {
    hart.setX(i, hart.getX(i) + 1n);
    hart.setF(i, hart.getF(i) + 1n);
  }
  hart.setFcsr(hart.getFcsr());
  for (const name of GENERAL_CSRS) hart.setCsr(name, hart.getCsr(name));
  hart.setPending(IRQ.STIP, true);
  hart.setPending(IRQ.STIP, false);
  hart.setMode(0);
  hart.setMode(1);
  hart.setPc(BigInt(base));
  hart.watch(new Int32Array(1), 0);
  hart.flushWriteTlb();
  hart.flushTranslations();
  hart.syncCode();
  hart.run(1000, 0);
}
