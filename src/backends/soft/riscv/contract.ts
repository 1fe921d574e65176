/**
 * The contract between the soft backend's RV64 hart (the "CPU", src/backends/soft/riscv) and
 * its "kernel" (src/backends/soft: vCPU ioctls, SBI, memslots, run area, threads).
 *
 * The hart models what a KVM RISC-V guest can observe (docs/soft-riscv-notes.md §1): an
 * RV64IMAFDC hart in S/U mode with the S-level CSR file, Sv39 paging, traps delivered to the
 * guest's own `stvec` inside the hart. Only what real KVM would handle outside the guest stops
 * `run()`: an S-mode `ecall` (SBI), a load/store outside every memslot (MMIO), WFI with nothing
 * pending, the instruction budget, and faults the guest cannot take.
 */

/** One region of guest-physical RAM, backed by VMM-owned bytes (KVM_SET_USER_MEMORY_REGION). */
export interface Memslot {
  readonly slot: number;
  /** Guest-physical base address; page aligned. */
  readonly gpa: number;
  /** The backing bytes; length is the slot size (page multiple). May view a SharedArrayBuffer. */
  readonly bytes: Uint8Array;
  /** KVM_MEM_READONLY: guest writes become MMIO exits. */
  readonly readonly: boolean;
  /**
   * KVM_MEM_LOG_DIRTY_PAGES: one byte per 4 KiB page, set to 1 (with Atomics) when the guest
   * writes the page; the VM reads and clears it (`Vm.getDirtyLog`). Absent: not logged.
   */
  readonly dirty?: Uint8Array;
}

/** Why `Hart.run()` stopped. */
export type HartStop =
  /** S-mode `ecall`; pc still points at it. The kernel handles SBI, then `pc += 4`. */
  | { readonly kind: "ecall" }
  /**
   * A load/store to a guest-physical address outside RAM (or a write to a read-only slot).
   * The instruction has not completed. For a load, the kernel later calls
   * `completeMmioLoad(value)`; for a store, `completeMmioStore()`. Both advance pc.
   */
  | {
      readonly kind: "mmio";
      readonly gpa: bigint;
      /** 1, 2, 4 or 8. */
      readonly size: number;
      readonly isWrite: boolean;
      /** Store data, zero-extended (undefined for loads). */
      readonly value: bigint | undefined;
    }
  /** WFI with no enabled interrupt pending; pc is past the WFI. */
  | { readonly kind: "wfi" }
  /** The instruction budget given to `run()` ran out. */
  | { readonly kind: "budget" }
  /** Something the guest cannot handle and KVM would report as an internal error. */
  | { readonly kind: "fault"; readonly reason: string; readonly pc: bigint }
  /**
   * Guest debug (`HartApi.setDebug`): an intercepted `ebreak` (pc on it, not executed), the end
   * of a single step, a hardware breakpoint address reached (pc on it, not executed), or a
   * watched access done (pc past the instruction; `address` the watchpoint's start).
   */
  | { readonly kind: "debug"; readonly cause: DebugCause; readonly address?: bigint };

/** Why a guest-debug stop happened (the `cause` of the vCPU's `debug` exit). */
export type DebugCause = "swbreak" | "step" | "hwbreak" | "watch" | "rwatch" | "awatch";

/**
 * A data watchpoint (regvisor extension): guest-virtual bytes `[address, address + length)`;
 * "watch" stops after a store to any of them, "rwatch" after a load, "awatch" after either.
 */
export interface Watchpoint {
  readonly kind: "watch" | "rwatch" | "awatch";
  readonly address: bigint;
  readonly length: number;
}

/** Guest-debug state of a hart: not guest state (no register, no snapshot carries it). */
export interface HartDebug {
  /** `ebreak`/`c.ebreak` stop `run()` instead of raising a breakpoint exception. */
  readonly swBreak: boolean;
  /** Stop after each instruction (or after taking an interrupt or exception). */
  readonly step: boolean;
  /** Guest-virtual pcs that stop `run()` before the instruction there executes. */
  readonly hwBreakpoints: readonly bigint[];
  /** Data watchpoints by guest-virtual address (absent: none). */
  readonly watchpoints?: readonly Watchpoint[];
}

/** Interrupt bits of `sip`/`sie` (privileged spec, supervisor interrupts). */
export const IRQ = { SSIP: 1 << 1, STIP: 1 << 5, SEIP: 1 << 9 } as const;

/** The S-mode CSRs KVM exposes through ONE_REG CSR GENERAL, in kernel index order. */
export const GENERAL_CSRS = [
  "sstatus",
  "sie",
  "stvec",
  "sscratch",
  "sepc",
  "scause",
  "stval",
  "sip",
  "satp",
  "scounteren",
  "senvcfg",
] as const;

/** Name of one of the GENERAL CSRs. */
export type GeneralCsr = (typeof GENERAL_CSRS)[number];

/** What the kernel needs from the hart. Values crossing this boundary are bigint (u64). */
export interface HartApi {
  /**
   * Runs at most `budget` instructions (traps inside the guest do not stop it). With a watched
   * word (`watch`), also stops with "budget" at the first block boundary where that word no
   * longer holds `expect`: how requests from other threads (kick, KVM_INTERRUPT, IPIs) land
   * within a block instead of a whole budget.
   */
  run(budget: number, expect?: number): HartStop;
  /** Installs the word `run(budget, expect)` compares with `expect` (a shared wake sequence). */
  watch?(array: Int32Array, index: number): void;
  /**
   * Drops every write-TLB entry, so that the next store to each page takes the slow path and
   * marks the page dirty again (dirty-log reads, arch/x86/kvm/mmu write-protection's analogue).
   */
  flushWriteTlb?(): void;
  /** Drops translated code of the guest-physical page at `pageAddr` (VMM/DMA wrote it). */
  invalidateCode?(pageAddr: number): void;
  /** fence.i on this hart's behalf: drops translated code whose bytes changed, page by page. */
  syncCode?(): void;
  /** sfence.vma on this hart's behalf: drops cached virtual-to-physical translations. */
  flushTranslations?(): void;
  /** Guest instructions retired since creation. */
  readonly instret: bigint;

  /** pc (the resume address; KVM's CORE `regs.pc`). */
  getPc(): bigint;
  setPc(value: bigint): void;
  /** x1..x31 (x0 reads 0, writes ignored). */
  getX(index: number): bigint;
  setX(index: number, value: bigint): void;
  /** Privilege mode: 1 = S, 0 = U (KVM's CORE `mode`). */
  getMode(): 0 | 1;
  setMode(mode: 0 | 1): void;
  /** f0..f31 raw 64-bit patterns (F-only values are NaN-boxed). */
  getF(index: number): bigint;
  setF(index: number, bits: bigint): void;
  /** fcsr (frm << 5 | fflags). */
  getFcsr(): number;
  setFcsr(value: number): void;
  /** GENERAL CSRs as KVM exposes them (`sip` reads the pending bits). */
  getCsr(name: GeneralCsr): bigint;
  setCsr(name: GeneralCsr, value: bigint): void;

  /** Raise/lower pending interrupt bits (IRQ.*) from the kernel (timer, IPI, KVM_INTERRUPT). */
  setPending(bits: number, level: boolean): void;
  /** True if an interrupt is pending and enabled (would be taken, or would wake WFI). */
  interruptPending(): boolean;

  /** Completes a stopped MMIO load: writes rd (sign/zero-extended per the insn), pc += len. */
  completeMmioLoad(value: bigint): void;
  /** Completes a stopped MMIO store: pc += len. */
  completeMmioStore(): void;

  /** Replaces the memslot set (the kernel calls this when the VMM changes slots). */
  setMemslots(slots: readonly Memslot[]): void;
  /** Drops every cached translation and translated block (fence.i from outside, restore). */
  flushCaches(): void;
  /**
   * Enables/disables the F and D extensions (CONFIG `isa` / ISA_EXT writes before the first
   * run). Disabled means FP instructions raise illegal-instruction. Resets sstatus.FS, as KVM
   * does on every ISA change.
   */
  setFpExtensions(f: boolean, d: boolean): void;
  /** Time source in timer ticks (TIMER `time`) and its frequency; the kernel installs it. */
  setTimeSource(now: () => bigint, hz?: number): void;
  /**
   * Turns Sstc on or off (ISA_EXT `sstc`): on, the guest's `stimecmp` CSR exists and STIP is
   * the level `time >= stimecmp` (Sstc spec §2); off, `stimecmp` is an illegal instruction and
   * STIP is the kernel's (SBI TIME through `setPending`). A hart without it has no Sstc.
   */
  setSstc?(on: boolean): void;
  /** `stimecmp` (TIMER `compare` while Sstc is on: vcpu_timer.c keeps it in `vstimecmp`). */
  getStimecmp?(): bigint;
  /** Writes `stimecmp` and re-evaluates STIP at once, as the comparator does. */
  setStimecmp?(value: bigint): void;
  /** Re-evaluates the Sstc STIP level against the time source now (no-op without Sstc). */
  pollTimer?(): void;
  /** Sets guest debug (`KVM_SET_GUEST_DEBUG`); `undefined` turns it off. */
  setDebug?(debug: HartDebug | undefined): void;
}
