/**
 * The hart's architectural state and the privileged machinery every execution tier shares:
 * trap entry, interrupt selection, `sret`, pc handling. A KVM guest sees S/U mode only
 * (docs/soft-riscv-notes.md §1.1-1.2), so traps always go to the guest's `stvec`.
 *
 * Representation (notes §2.2): x-registers as int32 lo/hi pairs in one Int32Array (x0 stays 0:
 * writes to it are discarded by the executors); f-registers as raw 64-bit patterns in an
 * Int32Array with a Float64Array view; pc as a double holding the signed 64-bit value (every
 * address an instruction can be fetched from fits in 53 bits; anything else is kept exactly in
 * `pcBig` and faults on fetch).
 */
import type { HartStop } from "./contract.js";
import { PhysMemory, type Slot } from "./memory.js";
import { TlbTable } from "./tlb.js";
import { TWO32 } from "./i64.js";
import { AREA, HartArea, wasmMemoryOf } from "./wasm-memory.js";

/** sstatus bits (privileged spec, "Supervisor Status Register"). */
export const SSTATUS = {
  SIE: 1 << 1,
  SPIE: 1 << 5,
  SPP: 1 << 8,
  FS: 3 << 13,
  SUM: 1 << 18,
  MXR: 1 << 19,
} as const;

/** Bits of sstatus the guest can write (UXL is read-only 2, SD is computed, VS/XS are 0). */
export const SSTATUS_WRITABLE =
  SSTATUS.SIE | SSTATUS.SPIE | SSTATUS.SPP | SSTATUS.FS | SSTATUS.SUM | SSTATUS.MXR;

/** Exception codes (privileged spec, scause table). */
export const EXC = {
  FETCH_MISALIGNED: 0,
  FETCH_ACCESS: 1,
  ILLEGAL: 2,
  BREAKPOINT: 3,
  LOAD_MISALIGNED: 4,
  LOAD_ACCESS: 5,
  STORE_MISALIGNED: 6,
  STORE_ACCESS: 7,
  ECALL_U: 8,
  ECALL_S: 9,
  FETCH_PAGE: 12,
  LOAD_PAGE: 13,
  STORE_PAGE: 15,
} as const;

/** Indices of the 64-bit CSRs kept as lo/hi pairs in `Core.csr`. */
export const C64 = {
  STVEC: 0,
  SSCRATCH: 2,
  SEPC: 4,
  SCAUSE: 6,
  STVAL: 8,
  SATP: 10,
  SENVCFG: 12,
  STIMECMP: 14,
} as const;

/** STIP in sip/sie. */
const STIP = 1 << 5;

/** Access kinds for translation: read, write, execute. */
export const ACC = { R: 0, W: 1, X: 2 } as const;

/** Interrupt bit numbers in sip/sie, highest priority first (SEI > SSI > STI). */
const IRQ_ORDER = [9, 1, 5] as const;
const IRQ_MASK = (1 << 9) | (1 << 1) | (1 << 5);

/** The hart's state plus the trap machinery. */
export class Core {
  readonly hartId: number;
  /**
   * The register file's home: this hart's area in the guest's wasm memory (wasm-memory.ts),
   * or a private one until memslots in such a memory arrive. The interpreter, the
   * ONE_REG/MANY_REGS paths and compiled regions share the same bytes without copies.
   */
  area = HartArea.private();
  /** x0..x31 as (lo, hi) pairs: x[2r] low word, x[2r+1] high word (a view into `area`). */
  x = this.area.x;
  /** Words the wasm tier exchanges with its helpers: next pc (lo, hi), a loaded value (lo, hi). */
  xfer = this.area.xfer;
  /** f0..f31 raw bits as (lo, hi) pairs. */
  readonly f = new Int32Array(64);
  /** The same f-registers as doubles (little-endian host assumed, as everywhere in regvisor). */
  readonly fd = new Float64Array(this.f.buffer);
  fflags = 0;
  frm = 0;
  fEnabled = true;
  dEnabled = true;

  /** Resume pc (signed 64-bit value as a double); NaN when only `pcBig` holds it. */
  pc = 0;
  pcBig = 0n;
  /** 1 = S, 0 = U. */
  mode: 0 | 1 = 1;
  /** pc of the instruction being executed (for sepc on a trap). */
  ipc = 0;

  sstatus = 0;
  sie = 0;
  /** Pending interrupt bits (sip as the guest sees it). */
  sip = 0;
  scounteren = 7;
  /**
   * stvec, sscratch, sepc, scause, stval, satp, senvcfg, stimecmp as (lo, hi) pairs (see C64);
   * stimecmp starts at -1 ("never", `kvm_riscv_vcpu_timer_reset`).
   */
  readonly csr = new Int32Array(16).fill(-1, C64.STIMECMP);
  /** True when an enabled interrupt should be taken at the next instruction boundary. */
  irqReady = false;

  /** Generation of the virtual→physical map; bumped by mapChanged(). */
  mapGen = 0;
  /** The last successful translation's leaf: log2 of its size (12/21/30) and its U bit (mmu.ts). */
  leafBits = 12;
  leafUser = false;
  /** Page-table walks (TLB misses and fetch-page look-ups under Sv39), for statistics. */
  walks = 0;

  /** Instructions a compiled block may retire in this call (self-looping blocks honour it). */
  budget = 0;
  /** Instructions retired (exact as a double up to 2^53). */
  icount = 0;
  /** Set when the current instruction did not complete (trap taken or stop requested). */
  exc = false;
  /** Why run() must return, set by the executors. */
  stop: HartStop | null = null;
  /** Guest debug: `ebreak` stops run() as a "swbreak" debug stop instead of trapping (debug.ts). */
  swBreak = false;
  /**
   * Set when a store invalidated the block being executed: the block must end right after
   * that store so the next instruction is fetched from the new code (precise SMC, as QEMU).
   */
  codeDirty = false;
  /** High word of the last two-word result of a memory helper. */
  rhi = 0;

  /** MMIO load in flight: destination register and how to extend (see interp `mmioTag`). */
  mmioTag = 0;
  mmioLen = 4;

  /** LR/SC reservation: guest-physical address, -1 if none, and the value loaded. */
  resAddr = -1;
  resLo = 0;
  resHi = 0;

  readonly mem = new PhysMemory();
  readonly tr = new TlbTable();
  readonly tw = new TlbTable();
  readonly tx = new TlbTable();

  timeNow: () => bigint = () => 0n;
  /** Time-source ticks per millisecond (for the Sstc deadline in host time). */
  ticksPerMs = 10_000;
  /** Sstc is on: `stimecmp` exists and drives STIP. */
  sstc = false;
  /**
   * STIP as the kernel sets it (KVM's `hvip.VSTIP`); with Sstc the guest sees it ORed with the
   * comparator's level (H-extension spec, "Hypervisor Interrupt Registers": with
   * henvcfg.STCE = 1, VSTIP = hvip.VSTIP | (time >= vstimecmp)).
   */
  stipLine = false;
  /**
   * `performance.now()` at which `time` reaches `stimecmp` (Infinity: STIP already up, no
   * Sstc, or never); the run loop re-evaluates STIP once it has passed.
   */
  timerDueAt = Infinity;
  /** fence.i executed (wired by the block cache). */
  onFenceI: () => void = () => undefined;
  /** A store hit translated code in page `page` of `slot` (wired by the block cache). */
  onCodeWrite: (slot: Slot, page: number) => void = () => undefined;
  /**
   * `sfence.vma` of one virtual address, a signed double (wired by the block cache: it drops
   * its virtual-pc look-ups inside the leaf that mapped each of them).
   */
  onFenceVa: (va: number) => void = () => undefined;

  constructor(hartId: number) {
    this.hartId = hartId;
    this.bindTlbs();
    this.mem.onSet = (slots) => {
      this.place(slots);
    };
  }

  private bindTlbs(): void {
    this.tr.bindWasm(this.area.i32, AREA.R_TAG, AREA.R_ADD);
    this.tw.bindWasm(this.area.i32, AREA.W_TAG, AREA.W_ADD);
  }

  /**
   * New memslots: moves the register file into this hart's area of the first slot's wasm
   * memory that has one (or back to a private area when none does), and records where each
   * slot's bytes sit in it. The caller drops every translation and compiled region after.
   */
  private place(slots: readonly Slot[]): void {
    let mem = this.area.shared ? this.area.mem : undefined;
    if (!slots.some((s) => s.dv.buffer === mem?.buffer)) {
      mem = undefined;
      for (const s of slots) mem ??= wasmMemoryOf(s.dv);
    }
    if (mem !== this.area.mem) {
      const next =
        (mem === undefined ? null : HartArea.claim(mem, this.hartId)) ??
        (this.area.shared ? HartArea.private() : null);
      if (next !== null) {
        next.x.set(this.x);
        next.xfer.set(this.xfer);
        this.area.release();
        this.area = next;
        this.x = next.x;
        this.xfer = next.xfer;
        this.bindTlbs();
      }
    }
    const buf = this.area.mem.buffer;
    for (const s of slots) s.wasmBase = s.dv.buffer === buf ? s.dv.byteOffset : -1;
  }

  /** True if the current instruction did not complete (read through a call: see `exc`). */
  trapped(): boolean {
    return this.exc;
  }

  /** True if run() must return. */
  stopped(): boolean {
    return this.stop !== null;
  }

  /** The stop that ended run() (budget if none), clearing it. */
  takeStop(): HartStop {
    const s = this.stop ?? { kind: "budget" };
    this.stop = null;
    return s;
  }

  /** True when Sv39 translation applies (satp.MODE = 8). */
  paging(): boolean {
    return (this.csr[C64.SATP + 1] ?? 0) >>> 28 === 8;
  }

  /** Empties the three TLBs (MXR 1 → 0). */
  flushTlb(): void {
    this.tr.flush();
    this.tw.flush();
    this.tx.flush();
  }

  /**
   * The virtual→physical map may have changed (satp write, sfence.vma): empties the TLBs and
   * retires every virtual-pc → block cache entry (blocks are looked up by virtual pc).
   */
  mapChanged(): void {
    this.flushTlb();
    this.mapGen = (this.mapGen + 1) | 0;
  }

  /**
   * `sfence.vma rs1, rs2` with rs1 ≠ x0 (privileged spec "Supervisor Memory-Management Fence
   * Instruction"): only the translations of the leaf that maps virtual address (lo, hi) go (TLB
   * entries and virtual-pc look-ups, each dropped over the size of the leaf it was made from);
   * page-table walks read no cached non-leaf entry, so nothing else can be stale.
   */
  fenceVa(lo: number, hi: number): void {
    this.tr.flushVa(lo, hi);
    this.tw.flushVa(lo, hi);
    this.tx.flushVa(lo, hi);
    this.onFenceVa(hi * TWO32 + (lo >>> 0));
  }

  /** The current address space's ASID (satp bits 59:44; ASIDLEN = 16, csr.ts writeSatp). */
  asid(): number {
    return ((this.csr[C64.SATP + 1] ?? 0) >>> 12) & 0xffff;
  }

  /**
   * SUM went 1 → 0: the data entries of U pages were only permitted to S-mode by SUM (in
   * U-mode they stay valid; entering S-mode drops them then, `setMode`).
   */
  sumCleared(): void {
    if (this.mode !== 1) return;
    this.tr.flushUser();
    this.tw.flushUser();
  }

  /** Reads a 64-bit CSR pair as a double (exact when it fits in 53 bits). */
  csrNum(i: number): number {
    return (this.csr[i + 1] ?? 0) * TWO32 + ((this.csr[i] ?? 0) >>> 0);
  }

  /** Writes a 64-bit CSR pair from a signed double. */
  setCsrNum(i: number, v: number): void {
    this.csr[i] = v | 0;
    this.csr[i + 1] = Math.floor(v / TWO32) | 0;
  }

  /** Sets pc from a (lo, hi) pair; values beyond 53 bits are kept in pcBig. */
  setPcPair(lo: number, hi: number): void {
    if (hi >= -0x200000 && hi < 0x200000) {
      this.pc = hi * TWO32 + (lo >>> 0);
    } else {
      this.pc = NaN;
      this.pcBig = BigInt.asUintN(64, (BigInt(hi) << 32n) | BigInt(lo >>> 0));
    }
  }

  /** The resume pc as an unsigned 64-bit value. */
  pcU64(): bigint {
    return Number.isNaN(this.pc) ? this.pcBig : BigInt.asUintN(64, BigInt(this.pc));
  }

  /**
   * Changes privilege mode, dropping the TLB entries the new mode may not use (privileged spec
   * "Memory Privilege in sstatus Register"): U-mode uses only U pages; S-mode never executes U
   * pages and reads or writes them only with SUM = 1. Every other entry stays (its permission
   * check gives the same answer in both modes): U-page data entries across S ↔ U while SUM = 1.
   * Keeping the S entries across a U excursion would need the mode in the tag compare of every
   * fast path and of the wasm mirror; a Linux 6.1 boot to /init changes mode only ~64 times.
   */
  setMode(m: 0 | 1): void {
    if (m !== this.mode) {
      this.mode = m;
      if (!this.paging()) return;
      if (m === 0) {
        this.tr.flushSupervisor();
        this.tw.flushSupervisor();
        this.tx.flushSupervisor();
      } else {
        this.tx.flushUser();
        if ((this.sstatus & SSTATUS.SUM) === 0) {
          this.tr.flushUser();
          this.tw.flushUser();
        }
      }
    }
  }

  /**
   * Sstc: STIP = (time >= stimecmp), a level the comparator keeps (Sstc spec §2, "stimecmp");
   * also re-arms `timerDueAt` for the run loop.
   */
  checkTimer(): void {
    if (!this.sstc) return;
    const now = this.timeNow();
    const cmp = BigInt.asUintN(
      64,
      (BigInt(this.csr[C64.STIMECMP + 1] ?? 0) << 32n) |
        BigInt((this.csr[C64.STIMECMP] ?? 0) >>> 0),
    );
    const due = now >= cmp;
    this.timerDueAt = due ? Infinity : performance.now() + Number(cmp - now) / this.ticksPerMs;
    if (due || this.stipLine) this.sip |= STIP;
    else this.sip &= ~STIP;
    this.updateIrq();
  }

  /** Recomputes `irqReady` (after sip, sie, sstatus.SIE or mode changed). */
  updateIrq(): void {
    const p = this.sip & this.sie & IRQ_MASK;
    this.irqReady = p !== 0 && (this.mode === 0 || (this.sstatus & SSTATUS.SIE) !== 0);
  }

  /**
   * Enters the guest's trap handler (privileged spec "Supervisor Trap" and KVM's
   * kvm_riscv_vcpu_trap_redirect): sepc, scause, stval; SPP = old mode, SPIE = SIE, SIE = 0;
   * S-mode; pc = stvec (vectored: base + 4 * cause for interrupts).
   */
  enterTrap(code: number, interrupt: boolean, epc: number, tvalLo: number, tvalHi: number): void {
    const csr = this.csr;
    if (Number.isNaN(epc)) {
      csr[C64.SEPC] = Number(BigInt.asIntN(32, this.pcBig));
      csr[C64.SEPC + 1] = Number(BigInt.asIntN(32, this.pcBig >> 32n));
    } else {
      this.setCsrNum(C64.SEPC, epc);
    }
    csr[C64.SEPC] = (csr[C64.SEPC] ?? 0) & ~1; // sepc[0] is always zero (IALIGN = 16)
    csr[C64.SCAUSE] = code;
    csr[C64.SCAUSE + 1] = interrupt ? -0x80000000 : 0;
    csr[C64.STVAL] = tvalLo;
    csr[C64.STVAL + 1] = tvalHi;
    let s = this.sstatus & ~(SSTATUS.SPP | SSTATUS.SPIE | SSTATUS.SIE);
    if (this.mode === 1) s |= SSTATUS.SPP;
    if ((this.sstatus & SSTATUS.SIE) !== 0) s |= SSTATUS.SPIE;
    this.sstatus = s;
    this.setMode(1);
    const tvLo = csr[C64.STVEC] ?? 0;
    const tvHi = csr[C64.STVEC + 1] ?? 0;
    const base = tvLo & ~3;
    if ((tvLo & 3) === 1 && interrupt) {
      const lo = (base + 4 * code) | 0;
      this.setPcPair(lo, lo >>> 0 < base >>> 0 ? (tvHi + 1) | 0 : tvHi);
    } else {
      this.setPcPair(base, tvHi);
    }
    this.exc = true;
    this.resAddr = -1;
    this.updateIrq();
  }

  /** Raises a synchronous exception for the instruction at `ipc`; tval given as a pair. */
  raise(code: number, tvalLo: number, tvalHi: number): void {
    this.enterTrap(code, false, this.ipc, tvalLo, tvalHi);
  }

  /** Raises a synchronous exception whose tval is a (signed) double address. */
  raiseAt(code: number, addr: number): void {
    this.raise(code, addr | 0, Math.floor(addr / TWO32) | 0);
  }

  /** Illegal instruction; stval = the instruction bits (16 or 32). */
  illegal(raw: number): void {
    this.raise(EXC.ILLEGAL, raw, 0);
  }

  /** Takes the highest-priority pending enabled interrupt at the current pc. */
  takeInterrupt(): void {
    const p = this.sip & this.sie;
    for (const bit of IRQ_ORDER) {
      if ((p >>> bit) & 1) {
        this.enterTrap(bit, true, this.pc, 0, 0);
        this.exc = false;
        return;
      }
    }
  }

  /** `sret` in S-mode: mode = SPP, SIE = SPIE, SPIE = 1, SPP = U, pc = sepc. */
  sret(): void {
    const s = this.sstatus;
    const prev: 0 | 1 = (s & SSTATUS.SPP) !== 0 ? 1 : 0;
    let n = s & ~(SSTATUS.SIE | SSTATUS.SPP);
    if ((s & SSTATUS.SPIE) !== 0) n |= SSTATUS.SIE;
    n |= SSTATUS.SPIE;
    this.sstatus = n;
    this.setMode(prev);
    this.setPcPair((this.csr[C64.SEPC] ?? 0) & ~1, this.csr[C64.SEPC + 1] ?? 0);
    this.updateIrq();
  }

  /** Stops run() with a "fault" the guest cannot handle (KVM would fail KVM_RUN). */
  fault(reason: string): void {
    this.stop = { kind: "fault", reason, pc: this.pcU64() };
    this.exc = true;
  }

  /** sstatus as the guest reads it: UXL = 2 (RV64 U-mode), SD summarising FS = Dirty. */
  readSstatus(): bigint {
    const s = BigInt(this.sstatus >>> 0) | (2n << 32n);
    return (this.sstatus & SSTATUS.FS) === SSTATUS.FS ? s | (1n << 63n) : s;
  }
}
