/**
 * SMP fuzzing of the soft backend's atomics (issue 13 point 2: LR/SC and AMOs correct across
 * vCPUs): 2–4 harts run seeded random sequences of AMOs (.w and .d, every operation, random
 * aq/rl, rd = x0 or not), LR/SC increment loops, a spinlock (amoswap.w.aq / amoswap.w.rl)
 * around a plain load-add-store, plain stores to each hart's own word beside the shared ones,
 * and plain loads of any shared word — all on one 512-byte shared area, each sequence repeated
 * `reps` times. Threaded (one Worker per vCPU over shared RAM, racing for real) or inline
 * (round-robin in seeded random slices, a quarter of them 1–8 instructions long, so a hart is
 * preempted anywhere, between its LR and its SC too).
 *
 * The check does not depend on the interleaving: every AMO except swap is commutative and
 * associative, an LR/SC loop adds its increment exactly once, the lock makes its plain
 * read-modify-write exact, and a hart's own word ends with its last store. So the model below
 * folds each hart's operations in any order and the shared area must end byte-identical to it.
 */
import { lookupReg } from "../../../src/abi/catalog.js";
import { Hart } from "../../../src/backends/soft/riscv/hart.js";
import { SBI_EID } from "../../../src/backends/soft/sbi.js";
import { SoftVm, allocGuestMemory } from "../../../src/backends/soft/vm.js";
import type { SoftMode, SoftVcpu } from "../../../src/backends/soft/vcpu.js";
import type { VcpuExit } from "../../../src/backends/vcpu.js";
import { I, R, li, place, rType } from "./asm.js";
import { Rng } from "./fuzz.js";
import { tierHartModule, type EngineTier } from "./tiers.js";

const RAM_BASE = 0x8000_0000n;
const RAM_SIZE = 1 << 20;
/** Each hart's code at CODE + n·CODE_STRIDE; the shared area at SHARED. */
const CODE = 0x1_0000;
const CODE_STRIDE = 0x1_0000;
const SHARED = 0x8_0000;
const AREA = 512;

/** Shared-area layout (byte offsets). */
const OFF = {
  /** amoadd.d counters, then amoadd.w counters. */
  addD: [0x00, 0x08, 0x10, 0x18],
  addW: [0x20, 0x24, 0x28, 0x2c],
  /** One word per other AMO operation, .d then .w. */
  opD: 0x40,
  opW: 0x80,
  /** LR/SC counters (.d, .w), among the harts' own words (stores to the same line). */
  lrscD: 0xc0,
  lrscW: 0xc8,
  own: 0xd0,
  /** The spinlock (.w) and the counter it guards (.d). */
  lock: 0x100,
  locked: 0x108,
  /** Each hart's amoswap target (its last swap wins). */
  swap: 0x140,
} as const;

/** AMO funct5 (unprivileged spec, "A" chapter, Table "AMO" encodings). */
export const F5 = {
  add: 0x00,
  swap: 0x01,
  lr: 0x02,
  sc: 0x03,
  xor: 0x04,
  or: 0x08,
  and: 0x0c,
  min: 0x10,
  max: 0x14,
  minu: 0x18,
  maxu: 0x1c,
} as const;
type AmoOp = "xor" | "or" | "and" | "min" | "max" | "minu" | "maxu";
const OPS: readonly AmoOp[] = ["xor", "or", "and", "min", "max", "minu", "maxu"];

/** amo<f5>.<w|d>{.aq}{.rl} rd, rs2, (rs1). */
export const amo = (
  f5: number,
  d: boolean,
  aq: boolean,
  rl: boolean,
  rd: number,
  rs1: number,
  rs2: number,
): number => rType(0x2f, d ? 3 : 2, (f5 << 2) | (aq ? 2 : 0) | (rl ? 1 : 0), rd, rs1, rs2);

/** One hart's effect on the model, applied once per repetition. */
type Effect = (m: Model) => void;

/** The shared area as the model sees it: u64/u32 little-endian words over the bytes. */
class Model {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get(off: number, d: boolean): bigint {
    return d ? this.view.getBigUint64(off, true) : BigInt(this.view.getUint32(off, true));
  }
  set(off: number, d: boolean, v: bigint): void {
    if (d) this.view.setBigUint64(off, BigInt.asUintN(64, v), true);
    else this.view.setUint32(off, Number(BigInt.asUintN(32, v)), true);
  }
}

function fold(op: AmoOp | "add", d: boolean, old: bigint, v: bigint): bigint {
  const bits = d ? 64 : 32;
  const s = (x: bigint): bigint => BigInt.asIntN(bits, x);
  const u = (x: bigint): bigint => BigInt.asUintN(bits, x);
  switch (op) {
    case "add":
      return u(old + v);
    case "xor":
      return u(old ^ v);
    case "or":
      return u(old | v);
    case "and":
      return u(old & v);
    case "min":
      return u(s(old) < s(v) ? old : v);
    case "max":
      return u(s(old) > s(v) ? old : v);
    case "minu":
      return u(old) < u(v) ? u(old) : u(v);
    case "maxu":
      return u(old) > u(v) ? u(old) : u(v);
  }
}

/** A generated SMP case: per hart its code and effects, and the shared area's start. */
export interface SmpCase {
  readonly seed: number;
  readonly harts: number;
  readonly reps: number;
  readonly code: readonly (readonly number[])[];
  readonly initial: Uint8Array;
  /** The shared area every interleaving must end with. */
  readonly expected: Uint8Array;
  /** Inline mode: the seed of the round-robin slice lengths. */
  readonly sliceSeed: number;
}

/** Register use: s0 shared base, s1 repetitions left, t0 operand, t1 address, t2..t4 scratch. */
function genOp(rng: Rng, hart: number, out: number[], effects: Effect[]): void {
  const d = rng.chance(0.5);
  const aq = rng.chance(0.5);
  const rl = rng.chance(0.5);
  const rd = rng.chance(0.2) ? R.zero : R.t2;
  const at = (off: number): number => I.addi(R.t1, R.s0, off);
  const kind = rng.int(8);
  if (kind <= 1) {
    // amoadd on a counter
    const off = rng.pick(d ? OFF.addD : OFF.addW);
    const v = d ? rng.u64() : BigInt(rng.u32());
    out.push(...li(R.t0, BigInt.asIntN(64, v)), at(off), amo(F5.add, d, aq, rl, rd, R.t1, R.t0));
    effects.push((m) => {
      m.set(off, d, fold("add", d, m.get(off, d), v));
    });
  } else if (kind <= 3) {
    const op = rng.pick(OPS);
    const off = (d ? OFF.opD : OFF.opW) + OPS.indexOf(op) * (d ? 8 : 4);
    const v = d ? rng.u64() : BigInt(rng.u32());
    const signed = d ? BigInt.asIntN(64, v) : BigInt.asIntN(32, v);
    out.push(...li(R.t0, signed), at(off), amo(F5[op], d, aq, rl, rd, R.t1, R.t0));
    effects.push((m) => {
      m.set(off, d, fold(op, d, m.get(off, d), v));
    });
  } else if (kind <= 5) {
    // LR/SC increment: retry until the SC succeeds.
    const off = d ? OFF.lrscD : OFF.lrscW;
    const inc = BigInt(rng.int(2000) - 1000);
    out.push(
      at(off),
      ...li(R.t0, inc),
      amo(F5.lr, d, aq, rl, R.t3, R.t1, R.zero),
      I.add(R.t3, R.t3, R.t0),
      amo(F5.sc, d, aq, rl, R.t4, R.t1, R.t3),
      I.bne(R.t4, R.zero, -12),
    );
    effects.push((m) => {
      m.set(off, d, fold("add", d, m.get(off, d), inc));
    });
  } else if (kind === 6) {
    // The lock: acquire with amoswap.w.aq, plain ld/add/sd, release with amoswap.w.rl.
    const inc = BigInt(rng.int(1000) + 1);
    out.push(
      at(OFF.lock),
      I.addi(R.t0, R.zero, 1),
      amo(F5.swap, false, true, false, R.t2, R.t1, R.t0),
      I.bne(R.t2, R.zero, -4),
      I.ld(R.t3, R.s0, OFF.locked),
      I.addi(R.t3, R.t3, Number(inc)),
      I.sd(R.t3, R.s0, OFF.locked),
      amo(F5.swap, false, false, true, R.zero, R.t1, R.zero),
    );
    effects.push((m) => {
      m.set(OFF.locked, true, m.get(OFF.locked, true) + inc);
    });
  } else if (rng.chance(0.5)) {
    // A plain store to this hart's own word, or an amoswap to its swap word: the last wins.
    const swap = rng.chance(0.5);
    const off = (swap ? OFF.swap : OFF.own) + 8 * hart;
    const v = rng.u64();
    out.push(...li(R.t0, BigInt.asIntN(64, v)));
    out.push(swap ? amo(F5.swap, true, aq, rl, rd, R.t1, R.t0) : I.sd(R.t0, R.s0, off));
    if (swap) out.splice(out.length - 1, 0, at(off));
    effects.push((m) => {
      m.set(off, true, v);
    });
  } else {
    // A plain load of any shared word (its value depends on the interleaving: not checked).
    const off = 8 * rng.int(AREA / 8);
    out.push(rng.chance(0.5) ? I.ld(R.t2, R.s0, off) : I.lw(R.t2, R.s0, off));
  }
}

const EXP = SBI_EID.EXPERIMENTAL_START;

/** The case for `seed`: 2–4 harts, `ops` operations each, repeated `reps` times. */
export function makeSmpCase(seed: number, ops = 16, reps = 30): SmpCase {
  const rng = new Rng(seed);
  const harts = 2 + rng.int(3);
  const initial = new Uint8Array(AREA);
  for (let i = 0; i < AREA; i++) initial[i] = rng.int(256);
  const start = new Model(initial);
  start.set(OFF.lock, false, 0n);
  const model = new Model(initial.slice());
  const code: number[][] = [];
  for (let h = 0; h < harts; h++) {
    const body: number[] = [];
    const effects: Effect[] = [];
    for (let k = 0; k < ops; k++) genOp(rng, h, body, effects);
    // Effects of one repetition, `reps` times (order is free: see the module comment).
    for (let r = 0; r < reps; r++) for (const e of effects) e(model);
    const jump = -4 * (body.length + 1);
    code.push([
      ...li(R.s0, RAM_BASE + BigInt(SHARED)),
      ...li(R.s1, BigInt(reps)),
      ...body,
      I.addi(R.s1, R.s1, -1),
      I.bne(R.s1, R.zero, jump),
      ...li(R.a7, EXP),
      ...li(R.a6, BigInt(h)),
      I.ecall(),
    ]);
  }
  return { seed, harts, reps, code, initial, expected: model.bytes, sliceSeed: rng.u32() };
}

/** What an SMP run left: the shared area, and why it failed if it did. */
export interface SmpOutcome {
  readonly area: Uint8Array;
  readonly error?: string;
}

const PC = lookupReg("riscv", "core.pc").id;
/** A run that has not ended by then failed (a lost SC, a lock never released, a hang). */
const DEADLINE_MS = 60_000;

function build(
  c: SmpCase,
  mode: SoftMode,
  tier: EngineTier,
): { vm: SoftVm; vcpus: SoftVcpu[]; ram: Uint8Array } {
  const vm = new SoftVm({
    mode,
    hartFactory: (hartId) => new Hart({ ...tier.options, hartId }),
    hartModule: tierHartModule(tier.options),
    budget: { timeSliceMs: 100 },
  });
  const ram = allocGuestMemory(RAM_SIZE);
  ram.set(c.initial, SHARED);
  c.code.forEach((words, h) => {
    place(ram, CODE + h * CODE_STRIDE, words);
  });
  vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: RAM_BASE, memory: ram });
  const vcpus = c.code.map((_, h) => {
    const vcpu = vm.createVcpu();
    if (h > 0) vcpu.setMpState(0); // KVM_MP_STATE_RUNNABLE
    vcpu.setOneReg(PC, RAM_BASE + BigInt(CODE + h * CODE_STRIDE));
    return vcpu;
  });
  return { vm, vcpus, ram };
}

/** undefined while hart `h` runs on (`intr`); "" when it reported its end; else what went wrong. */
function ended(exit: VcpuExit, h: number): string | undefined {
  if (exit.kind === "intr") return undefined;
  if (exit.kind === "riscv_sbi" && exit.extensionId === EXP && exit.functionId === BigInt(h)) {
    return "";
  }
  return `hart ${h} stopped with a ${exit.kind} exit${exit.kind === "internal_error" ? ` (${JSON.stringify(exit)})` : ""}`;
}

async function runThreaded(vcpus: readonly SoftVcpu[]): Promise<string | undefined> {
  const until = performance.now() + DEADLINE_MS;
  const one = async (vcpu: SoftVcpu, h: number): Promise<string | undefined> => {
    const runAsync = vcpu.runAsync;
    if (runAsync === undefined) return "threaded vCPU without runAsync";
    while (performance.now() < until) {
      const end = ended(await runAsync(), h);
      if (end !== undefined) return end === "" ? undefined : end;
    }
    return `hart ${h} had not ended after ${DEADLINE_MS} ms`;
  };
  const errors = await Promise.all(vcpus.map(one));
  return errors.find((e) => e !== undefined);
}

function runInline(vcpus: readonly SoftVcpu[], sliceSeed: number): string | undefined {
  const rng = new Rng(sliceSeed);
  const live = new Set(vcpus.keys());
  const until = performance.now() + DEADLINE_MS;
  while (live.size > 0) {
    if (performance.now() > until) return `harts ${[...live].join(",")} had not ended`;
    for (const h of [...live]) {
      const vcpu = vcpus[h];
      if (vcpu === undefined) continue;
      // Mostly long slices, some of 1-8 instructions: preemption anywhere without a compiled
      // region per instruction (each slice start is a region entry on the compiling tiers).
      const slice = rng.chance(0.25) ? 1 + rng.int(8) : 32 + rng.int(480);
      vcpu.setRunBudget({ instructions: slice, timeSliceMs: 100 });
      const end = ended(vcpu.run(), h);
      if (end === "") live.delete(h);
      else if (end !== undefined) return end;
    }
  }
  return undefined;
}

/** Runs `c` on `tier` in `mode`; the shared area it ended with (and an error if it failed). */
export async function runSmpCase(
  c: SmpCase,
  mode: SoftMode,
  tier: EngineTier,
): Promise<SmpOutcome> {
  const { vm, vcpus, ram } = build(c, mode, tier);
  try {
    const error = mode === "threaded" ? await runThreaded(vcpus) : runInline(vcpus, c.sliceSeed);
    const area = ram.slice(SHARED, SHARED + AREA);
    return error === undefined ? { area } : { area, error };
  } finally {
    vm.close();
  }
}

/** Names the shared words where `got` differs from the model (offset, expected, got). */
export function areaDiff(expected: Uint8Array, got: Uint8Array): string[] {
  const e = new DataView(expected.buffer, expected.byteOffset, expected.byteLength);
  const g = new DataView(got.buffer, got.byteOffset, got.byteLength);
  const out: string[] = [];
  for (let off = 0; off < AREA; off += 8) {
    const want = e.getBigUint64(off, true);
    const have = g.getBigUint64(off, true);
    if (want !== have)
      out.push(
        `+0x${off.toString(16)}: expected 0x${want.toString(16)}, got 0x${have.toString(16)}`,
      );
  }
  return out;
}

/** Every mismatch of seed `seed` on `tiers` × `modes`, one line each (empty: all passed). */
export async function smpFuzzSeed(
  seed: number,
  tiers: readonly EngineTier[],
  modes: readonly SoftMode[] = ["inline", "threaded"],
): Promise<string[]> {
  const c = makeSmpCase(seed);
  const lines: string[] = [];
  for (const mode of modes) {
    for (const tier of tiers) {
      const out = await runSmpCase(c, mode, tier);
      const diff = areaDiff(c.expected, out.area);
      if (out.error !== undefined || diff.length > 0) {
        const what = [out.error, ...diff.slice(0, 4)].filter((x) => x !== undefined).join("; ");
        lines.push(
          `smp seed 0x${seed.toString(16)} (${c.harts} harts) ${mode} ${tier.name}: ${what}`,
        );
      }
    }
  }
  return lines;
}
