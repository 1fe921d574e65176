/**
 * Differential fuzzing of the soft hart's execution tiers (issue 13, point 4): one seeded random
 * program and initial state run on the reference interpreter and on every other tier, through
 * the whole vCPU (SoftVm inline, KVM_RUN exits answered the same way); afterwards
 * `getManyRegs(regList())` and guest RAM must be byte-identical, and so must the exit sequence.
 *
 * Programs (one per seed) mix every instruction class with fields drawn at random inside each
 * major opcode — so illegal encodings, misaligned and faulting accesses, MMIO exits, traps,
 * CSR accesses, FP, AMOs, RVC pairs and self-modifying stores all occur — and in "paging" cases
 * run under Sv39 with random leaf permissions (V/R/W/X/U/A/D/G), superpages (some misaligned),
 * invalid entries, SUM/MXR and sfence.vma. A fixed trap handler counts traps in t6 and resumes
 * at sepc + 4; after MAX_TRAPS traps (or at the program's end) it stops with an SBI call.
 *
 * Sources of non-determinism are kept out: no `time` reads, no `stimecmp` or `stvec` writes, no
 * WFI and no SBI calls other than the final stop; `timer.time` is left out of the comparison.
 */
import { decodeReg } from "../../../src/abi/catalog.js";
import { regSize, type RegId } from "../../../src/abi/regid.js";
import { Hart, type HartOptions } from "../../../src/backends/soft/riscv/hart.js";
import { SoftVm, allocGuestMemory } from "../../../src/backends/soft/vm.js";
import type { SoftVcpu } from "../../../src/backends/soft/vcpu.js";
import type { VcpuExit } from "../../../src/backends/vcpu.js";

/** One execution tier under test (hart options), by name. */
export interface Tier {
  readonly name: string;
  readonly options: HartOptions;
}

/** The reference interpreter: one instruction at a time, no blocks. */
export const REFERENCE: Tier = { name: "reference", options: { translate: false } };

/** Every other tier, each compared with the reference. */
export const TIERS: readonly Tier[] = [
  { name: "tiered, nothing compiled", options: { translate: true, hotThreshold: 1e9 } },
  { name: "translator (hot 1)", options: { translate: true, hotThreshold: 1 } },
  {
    name: "translator (hot 3, 8-block regions)",
    options: { translate: true, hotThreshold: 3, regionBlocks: 8 },
  },
  { name: "wasm tier (hot 1)", options: { translate: true, hotThreshold: 1, tier: "wasm" } },
  {
    name: "wasm tier (hot 3, 16-block regions)",
    options: { translate: true, hotThreshold: 3, tier: "wasm" },
  },
  { name: "default engine", options: {} },
];

const RAM_BASE = 0x8000_0000n;
const RAM_SIZE = 1 << 20;
const HANDLER = 0x100;
const CODE = 0x1000;
const DATA = 0x8_0000;
const PT_ROOT = 0xc_0000;
/** Virtual base of the randomly mapped region in paging cases (L2 index 1). */
const VBASE = 0x4000_0000n;
/** Traps before the handler stops the run. */
const MAX_TRAPS = 48;
/** Instructions per KVM_RUN before it returns `intr` (bounds loops; every tier the same). */
const RUN_INSTRUCTIONS = 20_000;
/** KVM_RUNs before the case gives up (a looping program ends here, on every tier alike). */
const MAX_RUNS = 4;
const EXP_EID = 0x0800_0000;

/** x-register numbers the random code reserves: t3 (VA base), t4 (data base), t5, t6. */
const X = { t3: 28, t4: 29, t5: 30, t6: 31, a7: 17, ra: 1 } as const;

/** A small seeded PRNG (mulberry32): the same seed gives the same case on every host. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** Uniform 32-bit unsigned. */
  u32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return this.u32() % n;
  }
  /** One of `items`. */
  pick<T>(items: readonly T[]): T {
    const v = items[this.int(items.length)];
    if (v === undefined) throw new RangeError("pick from an empty list");
    return v;
  }
  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }
  /** A 64-bit value biased to edge cases (0, ±1, extremes, 32-bit boundaries). */
  u64(): bigint {
    const edges = [0n, 1n, 2n ** 64n - 1n, 2n ** 63n, 2n ** 63n - 1n, 2n ** 31n, 2n ** 32n - 1n];
    if (this.chance(0.3)) return this.pick(edges);
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }
}

// Encoders (unprivileged spec, "Base Instruction Formats"); fields are masked, never checked.
const r = (op: number, f3: number, f7: number, rd: number, rs1: number, rs2: number): number =>
  ((f7 << 25) |
    ((rs2 & 31) << 20) |
    ((rs1 & 31) << 15) |
    ((f3 & 7) << 12) |
    ((rd & 31) << 7) |
    op) >>>
  0;
const i = (op: number, f3: number, rd: number, rs1: number, imm: number): number =>
  (((imm & 0xfff) << 20) | ((rs1 & 31) << 15) | ((f3 & 7) << 12) | ((rd & 31) << 7) | op) >>> 0;
const s = (op: number, f3: number, rs1: number, rs2: number, imm: number): number =>
  (((imm >> 5) & 0x7f) << 25) |
  ((rs2 & 31) << 20) |
  ((rs1 & 31) << 15) |
  ((f3 & 7) << 12) |
  ((imm & 31) << 7) |
  op;
function b(f3: number, rs1: number, rs2: number, off: number): number {
  const imm =
    (((off >> 12) & 1) << 31) |
    (((off >> 5) & 0x3f) << 25) |
    (((off >> 1) & 0xf) << 8) |
    (((off >> 11) & 1) << 7);
  return (imm | ((rs2 & 31) << 20) | ((rs1 & 31) << 15) | ((f3 & 7) << 12) | 0x63) >>> 0;
}
function j(rd: number, off: number): number {
  const imm =
    (((off >> 20) & 1) << 31) |
    (((off >> 1) & 0x3ff) << 21) |
    (((off >> 11) & 1) << 20) |
    (((off >> 12) & 0xff) << 12);
  return (imm | ((rd & 31) << 7) | 0x6f) >>> 0;
}
const u = (op: number, rd: number, imm20: number): number =>
  (((imm20 & 0xfffff) << 12) | ((rd & 31) << 7) | op) >>> 0;

/** CSRs the random code touches: numbers with whether writes are allowed. */
const CSRS: readonly (readonly [number, boolean])[] = [
  [0x001, true], // fflags
  [0x002, true], // frm
  [0x003, true], // fcsr
  [0x100, true], // sstatus
  [0x104, true], // sie
  [0x105, false], // stvec (the handler must stay)
  [0x106, true], // scounteren
  [0x10a, true], // senvcfg
  [0x140, true], // sscratch
  [0x141, true], // sepc
  [0x142, true], // scause
  [0x143, true], // stval
  [0x144, true], // sip
  [0x14d, false], // stimecmp (STIP would follow the wall clock)
  [0x180, false], // satp (written by paging cases' setup only)
  [0xc00, true], // cycle (read-only: writes are illegal)
  [0xc02, true], // instret
  [0xc03, true], // hpmcounter3: illegal
  [0x300, true], // mstatus: illegal from S
  [0x5a8, true], // an unassigned number
];

/** Valid OP-FP funct7 values (F and D: add, sub, mul, div, sgnj, minmax, sqrt, cmp, cvt, mv). */
const FP_F7 = [
  0x00, 0x01, 0x04, 0x05, 0x08, 0x09, 0x0c, 0x0d, 0x10, 0x11, 0x14, 0x15, 0x20, 0x21, 0x2c, 0x2d,
  0x50, 0x51, 0x60, 0x61, 0x68, 0x69, 0x70, 0x71, 0x78, 0x79,
];
const AMO_F5 = [0x00, 0x01, 0x02, 0x03, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c, 0x05];

/** Generates one 32-bit slot of random code at byte offset `at` of a `len`-slot program. */
function slot(rng: Rng, at: number, len: number, paging: boolean): number {
  const rd = 1 + rng.int(27); // never t3..t6
  const rs1 = rng.int(32);
  const rs2 = rng.int(32);
  const f3 = rng.int(8);
  const base = (): number =>
    paging && rng.chance(0.5) ? X.t3 : rng.chance(0.85) ? X.t4 : rng.int(32);
  const memImm = (): number => (rng.chance(0.8) ? rng.int(256) - 64 : rng.int(4096) - 2048);
  const fwd = (): number => 4 * (1 + rng.int(Math.max(1, Math.min(12, len - at / 4))));
  const off = (): number => (rng.chance(0.1) ? -4 * (1 + rng.int(6)) : fwd());
  switch (rng.int(22)) {
    case 0:
    case 1:
      return r(0x33, f3, rng.pick([0, 0x20, 1]), rd, rs1, rs2);
    case 2:
      return r(0x3b, f3, rng.pick([0, 0x20, 1]), rd, rs1, rs2);
    case 3:
    case 4:
      return i(rng.pick([0x13, 0x1b]), f3, rd, rs1, rng.u32());
    case 5:
      return u(rng.pick([0x37, 0x17]), rd, rng.u32());
    case 6:
    case 7:
      return i(0x03, f3, rd, base(), memImm());
    case 8:
    case 9:
      return s(0x23, f3, base(), rs2, memImm());
    case 10:
      return b(f3, rs1, rs2, off());
    case 11:
      return rng.chance(0.8) ? j(rng.pick([0, X.ra, rd]), fwd()) : i(0x67, 0, rd, rs1, rng.u32());
    case 12:
      return r(0x2f, rng.pick([2, 3, f3]), (rng.pick(AMO_F5) << 2) | rng.int(4), rd, base(), rs2);
    case 13:
      return i(0x07, rng.pick([2, 3, f3]), rng.int(32), base(), memImm());
    case 14:
      return s(0x27, rng.pick([2, 3, f3]), base(), rng.int(32), memImm());
    case 15:
    case 16: {
      const f7 = rng.pick(FP_F7);
      const src2 = f7 >= 0x50 && f7 < 0x70 && f7 !== 0x50 && f7 !== 0x51 ? rng.int(4) : rs2;
      return r(0x53, f3, f7, rng.int(32), rs1, src2);
    }
    case 17:
      return (
        (r(rng.pick([0x43, 0x47, 0x4b, 0x4f]), f3, rng.int(4), rng.int(32), rs1, rs2) |
          (rng.int(32) << 27)) >>>
        0
      );
    case 18: {
      const [csr, writable] = rng.pick(CSRS);
      // Read-only picks: csrrs/csrrc (or their immediate forms) with x0 / uimm 0 never write.
      const op = (writable ? 1 + rng.int(3) : 2 + rng.int(2)) + (rng.chance(0.3) ? 4 : 0);
      const src = writable ? rs1 : 0;
      return i(0x73, op, rd, src, csr);
    }
    case 19:
      return rng.pick([
        0x0ff0000f, // fence
        0x0000100f, // fence.i
        0x00100073, // ebreak
        r(0x73, 0, 0x09, 0, rs1, rs2), // sfence.vma
        0x10200073, // sret
      ]);
    case 20: {
      // Two RVC halves (random, so some are reserved/illegal encodings).
      const half = (): number => {
        const h = rng.int(0x10000);
        return (h & 3) === 3 ? h & ~1 : h;
      };
      return (half() | (half() << 16)) >>> 0;
    }
    default:
      return rng.u32();
  }
}

/** The fixed trap handler: count, resume at sepc + 4, stop after MAX_TRAPS traps. */
function handler(): number[] {
  return [
    i(0x13, 0, X.t6, X.t6, 1), // addi t6, t6, 1
    i(0x73, 2, X.t5, 0, 0x141), // csrr t5, sepc
    i(0x13, 0, X.t5, X.t5, 4), // addi t5, t5, 4
    i(0x73, 1, 0, X.t5, 0x141), // csrw sepc, t5
    i(0x13, 2, X.t5, X.t6, MAX_TRAPS), // slti t5, t6, MAX_TRAPS
    b(0, X.t5, 0, 8), // beq t5, x0, stop
    0x10200073, // sret
    ...stop(),
  ];
}

/** lui a7, EXP_EID >> 12; ecall: an SBI call the kernel forwards (the case's end). */
function stop(): number[] {
  return [u(0x37, X.a7, EXP_EID >>> 12), 0x00000073];
}

/** A generated case: RAM image, initial registers, and whether it runs under Sv39. */
export interface FuzzCase {
  readonly seed: number;
  readonly ram: Uint8Array;
  readonly x: readonly bigint[];
  readonly f: readonly bigint[];
  readonly sstatus: bigint;
  readonly satp: bigint;
}

function put(ram: Uint8Array, at: number, words: readonly number[]): void {
  const dv = new DataView(ram.buffer, ram.byteOffset);
  words.forEach((w, k) => {
    dv.setUint32(at + 4 * k, w >>> 0, true);
  });
}

/** Sv39 tables: an identity RWX gigapage over RAM, and random leaves under VBASE. */
function pageTables(rng: Rng, ram: Uint8Array): bigint {
  const dv = new DataView(ram.buffer, ram.byteOffset);
  const pte = (ppn: bigint, flags: number): bigint => (ppn << 10n) | BigInt(flags);
  const l1 = PT_ROOT + 0x1000;
  const l0 = PT_ROOT + 0x2000;
  const ramPpn = RAM_BASE >> 12n;
  // V R W X A D G = 0x1 0x2 0x4 0x8 0x40 0x80 0x20.
  dv.setBigUint64(PT_ROOT + 2 * 8, pte(ramPpn, 0xef), true);
  dv.setBigUint64(PT_ROOT + 1 * 8, pte((RAM_BASE + BigInt(l1)) >> 12n, 0x1), true);
  dv.setBigUint64(l1, pte((RAM_BASE + BigInt(l0)) >> 12n, 0x1), true);
  for (let k = 1; k < 8; k++) {
    // 2 MiB leaves: aligned over RAM, or misaligned (a page fault), or a random entry.
    const ppn = ramPpn + (rng.chance(0.7) ? 0n : BigInt(1 + rng.int(511)));
    const e = rng.chance(0.8) ? pte(ppn, (rng.int(256) & ~0x10) | 1) : BigInt(rng.u32());
    dv.setBigUint64(l1 + 8 * k, e, true);
  }
  for (let k = 0; k < 32; k++) {
    const page = BigInt(DATA / 4096 + rng.int(64));
    const flags = rng.chance(0.7) ? rng.int(256) | 0x41 : rng.int(256);
    dv.setBigUint64(l0 + 8 * k, pte(ramPpn + page, flags), true);
  }
  return (8n << 60n) | ((RAM_BASE + BigInt(PT_ROOT)) >> 12n);
}

/** The case of `seed`: `slots` random 32-bit slots, paging when `paging` (default: seed-chosen). */
export function makeCase(seed: number, slots = 96, paging?: boolean): FuzzCase {
  const rng = new Rng(seed);
  const ram = new Uint8Array(RAM_SIZE);
  const withPaging = paging ?? rng.chance(0.35);
  put(ram, HANDLER, handler());
  const code: number[] = [];
  for (let k = 0; k < slots; k++) code.push(slot(rng, 4 * k, slots, withPaging));
  put(ram, CODE, [...code, ...stop()]);
  for (let k = 0; k < 4096; k++) ram[DATA + k] = rng.int(256);
  // Some data words are valid code, for stores that rewrite code ahead (self-modifying code).
  for (let k = 0; k < 16; k++) {
    new DataView(ram.buffer, ram.byteOffset, ram.byteLength).setUint32(
      DATA + 4 * k,
      slot(rng, 0, slots, withPaging),
      true,
    );
  }
  const satp = withPaging ? pageTables(rng, ram) : 0n;
  const x = Array.from({ length: 32 }, () => rng.u64());
  x[0] = 0n;
  x[X.t3] = VBASE + BigInt(rng.int(32) * 4096 + rng.int(64) * 8);
  x[X.t4] = RAM_BASE + BigInt(DATA + 512 + rng.int(64) * 8);
  x[X.t5] = 0n;
  x[X.t6] = 0n;
  // Some registers point at code so that stores through them rewrite it.
  if (rng.chance(0.5)) x[1 + rng.int(27)] = RAM_BASE + BigInt(CODE + 4 * rng.int(slots));
  const f = Array.from({ length: 32 }, () => rng.u64());
  // FS = Initial, and SUM / MXR at random.
  const sstatus =
    (1n << 13n) | (rng.chance(0.5) ? 1n << 18n : 0n) | (rng.chance(0.5) ? 1n << 19n : 0n);
  return { seed, ram, x, f, sstatus, satp };
}

/** What a tier did with a case: the exits, then the final registers and RAM. */
export interface Outcome {
  readonly exits: string[];
  readonly regs: Uint8Array;
  readonly regNames: string[];
  readonly regSizes: number[];
  readonly ram: Uint8Array;
}

function exitText(e: VcpuExit): string {
  return JSON.stringify(e, (_, v: unknown) =>
    typeof v === "bigint" ? `0x${v.toString(16)}` : v instanceof Uint8Array ? [...v] : v,
  );
}

const ALIAS: Record<number, string> = { 28: "t3", 29: "t4", 30: "t5", 31: "t6" };
function xName(k: number): string {
  const names = ["zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1"];
  if (k < 10) return names[k] ?? "";
  if (k < 18) return `a${k - 10}`;
  if (k < 28) return `s${k - 16}`;
  return ALIAS[k] ?? "";
}

function setNamed(vcpu: SoftVcpu, name: string, value: bigint): void {
  const ids = vcpu.regList().filter((id) => {
    const d = decodeReg(id);
    return d.known && d.name === name;
  });
  const id = ids[0];
  if (id === undefined) throw new RangeError(`no register ${name} in the list`);
  vcpu.setOneReg(id, value);
}

/** Runs `c` on `tier` and returns what it ended with. */
export function runCase(c: FuzzCase, tier: Tier): Outcome {
  const vm = new SoftVm({
    mode: "inline",
    hartFactory: (hartId) => new Hart({ hartId, ...tier.options }),
    // The instruction budget ends every run alike; the time slice is only a safety net (a
    // trap storm with no handler to run retires nothing) and must never decide where a run
    // stops, so it is far longer than RUN_INSTRUCTIONS take on a loaded host.
    budget: { instructions: RUN_INSTRUCTIONS, timeSliceMs: 5000 },
  });
  try {
    const ram = allocGuestMemory(RAM_SIZE);
    ram.set(c.ram);
    vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: RAM_BASE, memory: ram });
    const vcpu = vm.createVcpu();
    for (let k = 1; k < 32; k++) setNamed(vcpu, `core.${xName(k)}`, c.x[k] ?? 0n);
    for (let k = 0; k < 32; k++) setNamed(vcpu, `fp_d.f${k}`, c.f[k] ?? 0n);
    setNamed(vcpu, "csr.sstatus", c.sstatus);
    setNamed(vcpu, "csr.stvec", RAM_BASE + BigInt(HANDLER));
    setNamed(vcpu, "csr.satp", c.satp);
    setNamed(vcpu, "core.pc", RAM_BASE + BigInt(CODE));
    const exits: string[] = [];
    for (let n = 0; n < MAX_RUNS; n++) {
      const e = vcpu.run();
      exits.push(exitText(e));
      if (e.kind === "mmio") {
        if (!e.isWrite) e.data.fill(0xa5);
        continue;
      }
      if (e.kind !== "intr") break;
    }
    // Everything in the list but the wall-clock time.
    const ids: RegId[] = vcpu.regList().filter((id) => {
      const d = decodeReg(id);
      return !(d.known && d.name === "timer.time");
    });
    const regNames = ids.map((id) => {
      const d = decodeReg(id);
      return d.known ? d.name : "?";
    });
    const regSizes = ids.map((id) => regSize(id));
    return { exits, regs: vcpu.getManyRegs(ids), regNames, regSizes, ram: ram.slice() };
  } finally {
    vm.close();
  }
}

/** The first difference between two outcomes, as one line, or undefined when identical. */
export function compareOutcomes(ref: Outcome, got: Outcome): string | undefined {
  const n = Math.max(ref.exits.length, got.exits.length);
  for (let k = 0; k < n; k++) {
    if (ref.exits[k] !== got.exits[k]) {
      return `exit ${k}: reference ${ref.exits[k] ?? "none"}, tier ${got.exits[k] ?? "none"}`;
    }
  }
  if (ref.regs.length !== got.regs.length) return "register lists differ in size";
  let at = 0;
  for (const [k, name] of ref.regNames.entries()) {
    // getManyRegs packs each register at its own size, in list order.
    const size = ref.regSizes[k] ?? 8;
    const a = ref.regs.subarray(at, at + size);
    const g = got.regs.subarray(at, at + size);
    if (a.some((v, k) => v !== g[k])) return `${name}: reference ${hex(a)}, tier ${hex(g)}`;
    at += size;
  }
  for (let k = 0; k < ref.ram.length; k++) {
    if (ref.ram[k] !== got.ram[k]) {
      return `RAM byte 0x${(Number(RAM_BASE) + k).toString(16)}: reference ${String(ref.ram[k])}, tier ${String(got.ram[k])}`;
    }
  }
  return undefined;
}

function hex(bytes: Uint8Array): string {
  return `0x${[...bytes]
    .reverse()
    .map((v) => v.toString(16).padStart(2, "0"))
    .join("")}`;
}

/** Runs seed `seed` on the reference and every tier; returns one line per mismatching tier. */
export function fuzzSeed(seed: number, tiers: readonly Tier[] = TIERS): string[] {
  const c = makeCase(seed);
  const ref = runCase(c, REFERENCE);
  const bad: string[] = [];
  for (const tier of tiers) {
    const diff = compareOutcomes(ref, runCase(c, tier));
    if (diff !== undefined) bad.push(`seed ${seed}, ${tier.name}: ${diff}`);
  }
  return bad;
}
