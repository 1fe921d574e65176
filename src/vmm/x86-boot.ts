/**
 * x86 start state for `--x86-mode real|protected|long`, as plain data: `struct kvm_regs` and
 * `struct kvm_sregs` field values (docs/kvm-register-abi.md §5.1–5.4) plus the bytes the VMM
 * must write into guest RAM first (GDT, TSS, page tables) and the ranges they occupy.
 *
 * Fixed low-memory layout (guest-physical; RAM starts at 0 on x86):
 *
 *   0x0500 ..        GDT (protected/long): 0x00 null, 0x08 code, 0x10 data, 0x18 TSS
 *   0x0580 .. 0x05e8 TSS, 104 zero bytes (protected/long; TR must be valid for VM entry)
 *   0x1000 ..        long mode page tables: PML4 0x1000, PDPT 0x2000, then one page
 *                    directory per GiB from 0x3000 (2 MiB pages, identity map of the first
 *                    max(4 GiB, RAM) — 0x1000..0x7000 for RAM up to 4 GiB)
 *
 * Real mode writes nothing. No IDT is set up (limit 0): an exception before the guest loads
 * its own IDT triple-faults, which KVM reports as a SHUTDOWN exit. Protected mode runs with
 * paging off (flat 4 GiB segments). CR0.MP/NE and CR4.OSFXSR/OSXMMEXCPT are set in protected
 * and long mode so compiler-generated SSE code runs. The default stack pointer is written
 * nowhere and reserved nowhere: real mode 0x7c00 (below the classic boot sector), protected and
 * long mode the top of RAM (protected: at most 0xffff_fff0); guests that care set their own.
 */
import type { GuestBlob, GuestRam, Region } from "./guest-memory.js";
import { ImageError, hex, type GuestImage } from "./image.js";
import { SEG_TYPE, buildGdt, buildIdentityPageTables, type KvmSegment } from "./x86-tables.js";

/** The start modes of `--x86-mode`. */
export const X86_MODES = ["real", "protected", "long"] as const;
/** One of `X86_MODES`. */
export type X86Mode = (typeof X86_MODES)[number];

/** Addresses of the boot structures (see the module header). */
export const X86_BOOT_LAYOUT = { gdt: 0x500n, tss: 0x580n, pageTables: 0x1000n } as const;
/** TSS size: the 104-byte 32/64-bit TSS (SDM Vol. 3A §8.2.1, §8.7). */
export const X86_TSS_SIZE = 0x68;
/** Selectors in the GDT the VMM builds. */
export const X86_SELECTORS = { code: 0x08, data: 0x10, tss: 0x18 } as const;

/** `struct kvm_regs` field values (abi §5.1). */
export type KvmRegs = Readonly<
  Record<
    | "rax"
    | "rbx"
    | "rcx"
    | "rdx"
    | "rsi"
    | "rdi"
    | "rsp"
    | "rbp"
    | "r8"
    | "r9"
    | "r10"
    | "r11"
    | "r12"
    | "r13"
    | "r14"
    | "r15"
    | "rip"
    | "rflags",
    bigint
  >
>;

/** `struct kvm_dtable` (abi §5.3). */
export interface KvmDtable {
  readonly base: bigint;
  readonly limit: number;
}

/**
 * `struct kvm_sregs` fields the boot state sets (abi §5.4). `apic_base` and
 * `interrupt_bitmap` are deliberately absent: read them with KVM_GET_SREGS and keep them.
 */
export interface KvmSregsBoot {
  readonly cs: KvmSegment;
  readonly ds: KvmSegment;
  readonly es: KvmSegment;
  readonly fs: KvmSegment;
  readonly gs: KvmSegment;
  readonly ss: KvmSegment;
  readonly tr: KvmSegment;
  readonly ldt: KvmSegment;
  readonly gdt: KvmDtable;
  readonly idt: KvmDtable;
  readonly cr0: bigint;
  readonly cr2: bigint;
  readonly cr3: bigint;
  readonly cr4: bigint;
  readonly cr8: bigint;
  readonly efer: bigint;
}

/** Everything needed to start an x86 guest in one mode. */
export interface X86BootState {
  readonly mode: X86Mode;
  readonly regs: KvmRegs;
  readonly sregs: KvmSregsBoot;
  /** Bytes to write into RAM before the first run (GDT, TSS, page tables). */
  readonly blobs: readonly GuestBlob[];
  /** The ranges of `blobs`, for overlap checks against the image. */
  readonly reserved: readonly Region[];
}

/** Options of `x86BootState()`. */
export interface X86BootOptions {
  readonly mode: X86Mode;
  readonly entry: bigint;
  readonly ram: GuestRam;
  /** Initial rsp; default per mode (module header). */
  readonly stackTop?: bigint;
}

/** CR0/CR4/EFER bits (SDM Vol. 3A §2.5, §2.2.1). */
const CR0 = { PE: 1n, MP: 2n, ET: 0x10n, NE: 0x20n, PG: 0x8000_0000n } as const;
const CR4 = { PAE: 0x20n, OSFXSR: 0x200n, OSXMMEXCPT: 0x400n } as const;
const EFER = { LME: 0x100n, LMA: 0x400n } as const;
/** RFLAGS bit 1 is reserved and always 1 (SDM Vol. 1 §3.4.3). */
const RFLAGS_FIXED = 0x2n;
const FOUR_GIB = 1n << 32n;
const ONE_GIB = 1n << 30n;

/** The mode a guest starts in without `--x86-mode`: long for ELF64, protected for ELF32, real for flat. */
export function defaultX86Mode(image: GuestImage): X86Mode {
  if (image.bits === 64) return "long";
  return image.bits === 32 ? "protected" : "real";
}

const seg = (fields: Partial<KvmSegment>): KvmSegment => ({
  base: 0n,
  limit: 0,
  selector: 0,
  type: 0,
  present: 1,
  dpl: 0,
  db: 0,
  s: 1,
  l: 0,
  g: 0,
  avl: 0,
  unusable: 0,
  ...fields,
});

/**
 * Builds the start state for one mode.
 * @throws ImageError IMAGE_BAD_ENTRY when the entry cannot be reached in that mode (real mode:
 *   below 1 MiB; protected: below 4 GiB; long: inside the identity map).
 */
export function x86BootState(options: X86BootOptions): X86BootState {
  const { mode, entry, ram } = options;
  const ramEnd = ram.base + ram.size;
  if (mode === "real") return realMode(entry, options.stackTop ?? 0x7c00n);
  const limit = mode === "protected" ? FOUR_GIB : mappedGib(ramEnd) * ONE_GIB;
  if (entry >= limit) {
    badEntry(entry, `${mode} mode reaches only addresses below ${hex(limit)}`);
  }
  const highest = mode === "protected" && ramEnd > FOUR_GIB - 16n ? FOUR_GIB - 16n : ramEnd;
  const top = options.stackTop ?? highest & ~0xfn;
  return mode === "protected" ? protectedMode(entry, top) : longMode(entry, top, ramEnd);
}

function realMode(entry: bigint, stackTop: bigint): X86BootState {
  if (entry >= 0x10_0000n) badEntry(entry, "real mode reaches only the first MiB");
  // CS:IP with a 64 KiB-aligned CS base, so IP = entry & 0xffff and CS = base >> 4.
  const csBase = entry & 0xf_0000n;
  const realSeg = (type: number, base: bigint): KvmSegment =>
    seg({ base, limit: 0xffff, selector: Number(base >> 4n), type });
  const data = realSeg(SEG_TYPE.DATA_RW, 0n);
  return {
    mode: "real",
    regs: regs(entry - csBase, stackTop & 0xffffn),
    // TR and LDTR as KVM's vCPU reset leaves them (arch/x86/kvm/vmx/vmx.c, vmx_vcpu_reset).
    sregs: {
      cs: realSeg(SEG_TYPE.CODE_XR, csBase),
      ds: data,
      es: data,
      fs: data,
      gs: data,
      ss: data,
      tr: seg({ limit: 0xffff, type: SEG_TYPE.TSS_BUSY, s: 0 }),
      ldt: seg({ limit: 0xffff, type: SEG_TYPE.LDT, s: 0 }),
      gdt: { base: 0n, limit: 0xffff },
      idt: { base: 0n, limit: 0xffff },
      cr0: CR0.ET,
      cr2: 0n,
      cr3: 0n,
      cr4: 0n,
      cr8: 0n,
      efer: 0n,
    },
    blobs: [],
    reserved: [],
  };
}

function flatSegments(long: boolean): { code: KvmSegment; data: KvmSegment; tr: KvmSegment } {
  const flat = { limit: 0xffff_ffff, g: 1 };
  return {
    code: seg({
      ...flat,
      selector: X86_SELECTORS.code,
      type: SEG_TYPE.CODE_XR,
      l: long ? 1 : 0,
      db: long ? 0 : 1,
    }),
    data: seg({ ...flat, selector: X86_SELECTORS.data, type: SEG_TYPE.DATA_RW, db: 1 }),
    tr: seg({
      base: X86_BOOT_LAYOUT.tss,
      limit: X86_TSS_SIZE - 1,
      selector: X86_SELECTORS.tss,
      type: SEG_TYPE.TSS_BUSY,
      s: 0,
    }),
  };
}

function tablesFor(long: boolean): {
  sregs: Omit<KvmSregsBoot, "cr0" | "cr3" | "cr4" | "efer">;
  blobs: GuestBlob[];
} {
  const { code, data, tr } = flatSegments(long);
  const gdt = buildGdt([
    { seg: code, wide: false },
    { seg: data, wide: false },
    { seg: tr, wide: long },
  ]);
  return {
    sregs: {
      cs: code,
      ds: data,
      es: data,
      fs: data,
      gs: data,
      ss: data,
      tr,
      ldt: seg({ type: SEG_TYPE.LDT, s: 0, present: 0, unusable: 1 }),
      gdt: { base: X86_BOOT_LAYOUT.gdt, limit: gdt.length - 1 },
      idt: { base: 0n, limit: 0 },
      cr2: 0n,
      cr8: 0n,
    },
    blobs: [
      { label: "x86 GDT", addr: X86_BOOT_LAYOUT.gdt, bytes: gdt },
      { label: "x86 TSS", addr: X86_BOOT_LAYOUT.tss, bytes: new Uint8Array(X86_TSS_SIZE) },
    ],
  };
}

function protectedMode(entry: bigint, stackTop: bigint): X86BootState {
  const { sregs, blobs } = tablesFor(false);
  return {
    mode: "protected",
    regs: regs(entry, stackTop),
    sregs: {
      ...sregs,
      cr0: CR0.PE | CR0.MP | CR0.ET | CR0.NE,
      cr3: 0n,
      cr4: CR4.OSFXSR | CR4.OSXMMEXCPT,
      efer: 0n,
    },
    blobs,
    reserved: regionsOf(blobs),
  };
}

function longMode(entry: bigint, stackTop: bigint, ramEnd: bigint): X86BootState {
  const { sregs, blobs } = tablesFor(true);
  const tables = buildIdentityPageTables(X86_BOOT_LAYOUT.pageTables, Number(mappedGib(ramEnd)));
  const all = [
    ...blobs,
    { label: "x86 page tables", addr: X86_BOOT_LAYOUT.pageTables, bytes: tables },
  ];
  return {
    mode: "long",
    regs: regs(entry, stackTop),
    sregs: {
      ...sregs,
      cr0: CR0.PE | CR0.MP | CR0.ET | CR0.NE | CR0.PG,
      cr3: X86_BOOT_LAYOUT.pageTables,
      cr4: CR4.PAE | CR4.OSFXSR | CR4.OSXMMEXCPT,
      efer: EFER.LME | EFER.LMA,
    },
    blobs: all,
    reserved: regionsOf(all),
  };
}

/** GiB the long-mode identity map covers: all of RAM, at least 4 GiB (MMIO below 4 GiB). */
export function mappedGib(ramEnd: bigint): bigint {
  const gib = (ramEnd + ONE_GIB - 1n) / ONE_GIB;
  return gib < 4n ? 4n : gib > 512n ? 512n : gib;
}

function regs(rip: bigint, rsp: bigint): KvmRegs {
  return {
    rax: 0n,
    rbx: 0n,
    rcx: 0n,
    rdx: 0n,
    rsi: 0n,
    rdi: 0n,
    rsp,
    rbp: 0n,
    r8: 0n,
    r9: 0n,
    r10: 0n,
    r11: 0n,
    r12: 0n,
    r13: 0n,
    r14: 0n,
    r15: 0n,
    rip,
    rflags: RFLAGS_FIXED,
  };
}

function regionsOf(blobs: readonly GuestBlob[]): Region[] {
  return blobs.map((b) => ({ label: b.label, start: b.addr, size: BigInt(b.bytes.length) }));
}

function badEntry(entry: bigint, why: string): never {
  throw new ImageError(
    "IMAGE_BAD_ENTRY",
    `Cannot start the guest at ${hex(entry)}: ${why} (see --x86-mode)`,
  );
}
