/**
 * SBI RFENCE across vCPUs (SBI spec ch. 8; arch/riscv/kvm/vcpu_sbi_replace.c and tlb.c
 * `make_xfence_request`): remote fence.i and remote sfence.vma (all, a range, an ASID, an ASID
 * and a range, and the legacy v0.1 calls) act on exactly the harts the (hart_mask,
 * hart_mask_base) pair names, and once the call has returned a named hart runs no stale code
 * and uses no stale translation: KVM makes the request with KVM_REQUEST_WAIT, so the caller
 * resumes only after every running target has left guest mode and will honour it first.
 *
 * Inline vCPUs run round-robin (deterministic: each `run()` does one step of its program);
 * threaded vCPUs race for real, the caller rewriting a function the target keeps calling.
 * Every case runs on every tier, each compiling code on first sight (tiers.ts).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Hart } from "../../../src/backends/soft/riscv/hart.js";
import { SoftVm, allocGuestMemory } from "../../../src/backends/soft/vm.js";
import { SBI_EID, SBI_LEGACY } from "../../../src/backends/soft/sbi.js";
import type { SoftMode, SoftVcpu } from "../../../src/backends/soft/vcpu.js";
import type { VcpuExit } from "../../../src/backends/vcpu.js";
import { I, R, li, place } from "./asm.js";
import { get, set, RAM_BASE } from "./helpers.js";
import { eager, ENGINE_TIERS, tierHartModule, type EngineTier } from "./tiers.js";

const RAM_SIZE = 1 << 20;
/** Layout (offsets into RAM): hart 0's code, the other harts' code, the function they call. */
const CODE0 = 0x0;
const CODE1 = 0x1000;
const F = 0x2000;
const FLAG = 0x3000;
const ACK = 0x3008;
const MASK = 0x3010;
const SCRATCH = 0x3f00;
/** Sv39 tables and the two pages the virtual page VA maps to in turn. */
const ROOT = 0x10000;
const L1 = 0x11000;
const L0 = 0x12000;
const PAGE_A = 0x20000;
const PAGE_B = 0x21000;
const VA = 0x4000_0000n;
const ASID = 5n;
const VALUE_A = 0xaaaa_0001n;
const VALUE_B = 0xbbbb_0002n;
/** PTE bits (privileged spec §4.3.1): V R W X, A D. */
const PTE_LEAF = 0xcfn;
const PTE_DATA = 0xc7n;
const PTE_NEXT = 0x1n;
const pte = (offset: number, flags: bigint): bigint =>
  (((RAM_BASE + BigInt(offset)) >> 12n) << 10n) | flags;
const SATP = (8n << 60n) | (ASID << 44n) | ((RAM_BASE + BigInt(ROOT)) >> 12n);
const ALL = (1n << 64n) - 1n;

const EXP = SBI_EID.EXPERIMENTAL_START;
const report = (tag: number): number[] => [...li(R.a7, EXP), ...li(R.a6, BigInt(tag)), I.ecall()];
/** F's two instructions as the u64 one `sd` writes: `li a0, k; ret`. */
const fWord = (k: number): bigint =>
  (BigInt(I.jalr(0, R.ra, 0)) << 32n) | BigInt(I.addi(R.a0, R.zero, k));

/**
 * Hart 0: `sd t0, 0(t1)` (a code or page-table write the host chose), then the SBI call whose
 * arguments the host put in s6..s11 (a0..a4, a6) and t2 (a7); its error lands in s1; report.
 */
const HART0 = [
  I.sd(R.t0, R.t1, 0),
  I.addi(R.a0, R.s6, 0),
  I.addi(R.a1, R.s7, 0),
  I.addi(R.a2, R.s8, 0),
  I.addi(R.a3, R.s9, 0),
  I.addi(R.a4, R.s10, 0),
  I.addi(R.a6, R.s11, 0),
  I.addi(R.a7, R.t2, 0),
  I.ecall(),
  I.addi(R.s1, R.a0, 0),
  ...report(0),
];
/** Other harts: s4 = F(), s5 = the u64 at VA (Sv39); report; again. */
const OTHERS = [I.jalr(R.ra, R.s2, 0), I.addi(R.s4, R.a0, 0), I.ld(R.s5, R.s3, 0), ...report(1)];

interface Smp {
  readonly vm: SoftVm;
  readonly vcpus: readonly SoftVcpu[];
  /** The inline harts (empty in threaded mode), for their engine statistics. */
  readonly harts: readonly Hart[];
  readonly view: DataView;
}

/** `count` vCPUs on `tier`: vCPU 0 bare at CODE0, the others under Sv39 at CODE1, all running. */
function smp(
  mode: SoftMode,
  tier: EngineTier,
  count: number,
  extra?: (ram: Uint8Array) => void,
): Smp {
  const harts: Hart[] = [];
  const vm = new SoftVm({
    mode,
    hartFactory: (hartId) => {
      const hart = new Hart({ ...tier.options, hartId });
      harts[hartId] = hart;
      return hart;
    },
    hartModule: tierHartModule(tier.options),
    budget: { timeSliceMs: 20_000 },
  });
  const ram = allocGuestMemory(RAM_SIZE);
  const view = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
  place(ram, CODE0, [...HART0, I.jal(0, -4 * HART0.length)]);
  place(ram, CODE1, [...OTHERS, I.jal(0, -4 * OTHERS.length)]);
  view.setBigUint64(F, fWord(1), true);
  view.setBigUint64(ROOT + 8 * 2, pte(0, PTE_LEAF), true); // 0x80000000: 1 GiB identity
  view.setBigUint64(ROOT + 8 * 1, pte(L1, PTE_NEXT), true); // VA (L2 index 1)
  view.setBigUint64(L1, pte(L0, PTE_NEXT), true);
  view.setBigUint64(L0, pte(PAGE_A, PTE_DATA), true);
  view.setBigUint64(PAGE_A, VALUE_A, true);
  view.setBigUint64(PAGE_B, VALUE_B, true);
  extra?.(ram);
  vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: RAM_BASE, memory: ram });
  const vcpus = Array.from({ length: count }, (_, n) => {
    const vcpu = vm.createVcpu();
    if (n === 0) {
      set(vcpu, "core.pc", RAM_BASE + BigInt(CODE0));
      set(vcpu, "t1", RAM_BASE + BigInt(SCRATCH));
    } else {
      vcpu.setMpState(0); // KVM_MP_STATE_RUNNABLE
      set(vcpu, "core.pc", RAM_BASE + BigInt(CODE1));
      set(vcpu, "csr.satp", SATP);
      set(vcpu, "s2", RAM_BASE + BigInt(F));
      set(vcpu, "s3", VA);
    }
    return vcpu;
  });
  return { vm, vcpus, harts, view };
}

function tagOf(exit: VcpuExit): bigint {
  if (exit.kind !== "riscv_sbi") assert.fail(`unexpected exit ${exit.kind}`);
  assert.equal(exit.extensionId, EXP);
  return exit.functionId;
}

/** One SBI call on hart 0 (inline), after it stores `write.value` at `write.at`; its error. */
function call(
  s: Smp,
  eid: bigint,
  fid: bigint,
  args: readonly bigint[],
  write?: { at: number; value: bigint },
): bigint {
  const v0 = s.vcpus[0];
  assert.ok(v0 !== undefined);
  set(v0, "t0", write?.value ?? 0n);
  set(v0, "t1", RAM_BASE + BigInt(write?.at ?? SCRATCH));
  ["s6", "s7", "s8", "s9", "s10"].forEach((r, i) => {
    set(v0, r, args[i] ?? 0n);
  });
  set(v0, "s11", fid);
  set(v0, "t2", eid);
  assert.equal(tagOf(v0.run()), 0n);
  return get(v0, "s1");
}

/** One step of hart n ≥ 1 (inline): what F returned and what it read at VA. */
function step(s: Smp, n: number): { f: bigint; va: bigint } {
  const v = s.vcpus[n];
  assert.ok(v !== undefined);
  assert.equal(tagOf(v.run()), 1n);
  return { f: get(v, "s4"), va: get(v, "s5") };
}

/** Whether each hart dropped anything (code re-checks, whole flushes, translations). */
function marks(s: Smp): string[] {
  return s.harts.map((h) => `${h.stats.syncs}/${h.stats.flushes}/${h.core.mapGen}`);
}

function touched(before: readonly string[], after: readonly string[]): number[] {
  return after.flatMap((m, n) => (m === before[n] ? [] : [n]));
}

/** Hart masks and the harts (of 4) they name: SBI spec §3 "hart_mask, hart_mask_base". */
const MASKS: readonly { mask: bigint; base: bigint; harts: readonly number[] }[] = [
  { mask: 0b10n, base: 0n, harts: [1] },
  { mask: 0b101n, base: 1n, harts: [1, 3] },
  { mask: 0b1n, base: 2n, harts: [2] },
  { mask: 0b1110n, base: 0n, harts: [1, 2, 3] },
  { mask: 0n, base: ALL, harts: [0, 1, 2, 3] },
];

const TIERS = ENGINE_TIERS.map(eager);

describe("SBI RFENCE acts on exactly the harts named", () => {
  for (const tier of TIERS) {
    for (const { mask, base, harts } of MASKS) {
      it(`${tier.name}: remote fence.i to mask 0x${mask.toString(16)} base ${base === ALL ? "-1" : base} reaches harts ${harts.join(",")} only`, () => {
        const s = smp("inline", tier, 4);
        for (let n = 1; n < 4; n++) assert.equal(step(s, n).f, 1n, "F compiled and run");
        const before = marks(s);
        const err = call(s, SBI_EID.RFENCE, 0n, [mask, base], { at: F, value: fWord(2) });
        assert.equal(err, 0n);
        const seen = [1, 2, 3].map((n) => step(s, n).f);
        assert.deepEqual(
          touched(before, marks(s)),
          [...harts],
          "the harts that dropped code are exactly the named ones",
        );
        for (const n of harts) if (n > 0) assert.equal(seen[n - 1], 2n, `hart ${n} runs the new F`);
        s.vm.close();
      });
    }

    const SFENCES: readonly {
      name: string;
      eid: bigint;
      fid: bigint;
      args: (m: bigint) => bigint[];
    }[] = [
      { name: "sfence.vma (all)", eid: SBI_EID.RFENCE, fid: 1n, args: (m) => [m, 0n, 0n, 0n] },
      { name: "sfence.vma (size -1)", eid: SBI_EID.RFENCE, fid: 1n, args: (m) => [m, 0n, 0n, ALL] },
      {
        name: "sfence.vma (the page)",
        eid: SBI_EID.RFENCE,
        fid: 1n,
        args: (m) => [m, 0n, VA, 4096n],
      },
      {
        name: "sfence.vma.asid (all)",
        eid: SBI_EID.RFENCE,
        fid: 2n,
        args: (m) => [m, 0n, 0n, 0n, ASID],
      },
      {
        name: "sfence.vma.asid (the page)",
        eid: SBI_EID.RFENCE,
        fid: 2n,
        args: (m) => [m, 0n, VA, 4096n, ASID],
      },
      // Legacy calls take a pointer to the mask (hart 0 runs bare: a physical address).
      {
        name: "legacy remote_sfence_vma",
        eid: SBI_LEGACY.REMOTE_SFENCE_VMA,
        fid: 0n,
        args: () => [RAM_BASE + BigInt(MASK), VA, 4096n],
      },
      {
        name: "legacy remote_sfence_vma_asid",
        eid: SBI_LEGACY.REMOTE_SFENCE_VMA_ASID,
        fid: 0n,
        args: () => [RAM_BASE + BigInt(MASK), VA, 4096n, ASID],
      },
    ];
    for (const f of SFENCES) {
      it(`${tier.name}: remote ${f.name} to hart 2: it sees the new mapping, harts 1 and 3 are left alone`, () => {
        const s = smp("inline", tier, 4, (ram) => {
          new DataView(ram.buffer, ram.byteOffset, ram.byteLength).setBigUint64(MASK, 0b100n, true);
        });
        for (let n = 1; n < 4; n++) assert.equal(step(s, n).va, VALUE_A, "VA → page A, cached");
        const before = marks(s);
        // Hart 0 remaps VA to page B, then fences hart 2 only.
        const err = call(s, f.eid, f.fid, f.args(0b100n), { at: L0, value: pte(PAGE_B, PTE_DATA) });
        assert.equal(err, 0n);
        const after = [1, 2, 3].map((n) => step(s, n).va);
        assert.equal(after[1], VALUE_B, "hart 2 translates VA afresh after the fence");
        assert.deepEqual(touched(before, marks(s)), [2], "only hart 2 dropped anything");
        // The soft TLB keeps a translation until a fence: harts 1 and 3 still read page A,
        // which is what lets this test see a fence that never reached hart 2.
        assert.deepEqual([after[0], after[2]], [VALUE_A, VALUE_A]);
        s.vm.close();
      });
    }

    it(`${tier.name}: legacy remote_fence_i reads the mask from memory (harts 1 and 3)`, () => {
      const s = smp("inline", tier, 4, (ram) => {
        new DataView(ram.buffer, ram.byteOffset, ram.byteLength).setBigUint64(MASK, 0b1010n, true);
      });
      for (let n = 1; n < 4; n++) step(s, n);
      const before = marks(s);
      const err = call(s, SBI_LEGACY.REMOTE_FENCE_I, 0n, [RAM_BASE + BigInt(MASK)], {
        at: F,
        value: fWord(3),
      });
      assert.equal(err, 0n);
      const seen = [1, 2, 3].map((n) => step(s, n).f);
      assert.deepEqual(touched(before, marks(s)), [1, 3]);
      assert.equal(seen[0], 3n);
      assert.equal(seen[2], 3n);
      s.vm.close();
    });
  }
});

/** Rounds of the threaded handshake: hart 0 rewrites F, fences hart 1, raises the flag. */
const ROUNDS = 150;

/**
 * Hart 0: for seq = 1..ROUNDS, F := `li a0, seq; ret`, SBI remote fence.i to hart 1, flag := seq,
 * wait until hart 1 acknowledges seq; then report 10.
 */
function writerProgram(): number[] {
  const head = [
    ...li(R.s2, RAM_BASE + BigInt(F)),
    ...li(R.s4, RAM_BASE + BigInt(FLAG)),
    ...li(R.s5, RAM_BASE + BigInt(ACK)),
    ...li(R.s3, BigInt(ROUNDS)),
    ...li(R.t3, fWord(0) & ~0xfffn), // `ret` in the upper word, `addi a0, zero, 0` below
    I.addi(R.s6, R.zero, 0),
  ];
  const fence = [...li(R.a0, 0b10n), I.addi(R.a1, R.zero, 0), I.addi(R.a6, R.zero, 0)];
  const loop = [
    I.addi(R.s6, R.s6, 1),
    I.slli(R.t0, R.s6, 20), // the immediate of `addi a0, zero, seq`
    I.add(R.t0, R.t0, R.t3),
    I.addi(R.t0, R.t0, I.addi(R.a0, R.zero, 0) & 0xfff),
    I.sd(R.t0, R.s2, 0),
    ...fence,
    ...li(R.a7, SBI_EID.RFENCE),
    I.ecall(),
    I.sw(R.s6, R.s4, 0),
    I.lw(R.t1, R.s5, 0), // wait for the acknowledgement
    I.bne(R.t1, R.s6, -4),
  ];
  const back = I.bne(R.s6, R.s3, -4 * loop.length);
  return [...head, ...loop, back, ...report(10)];
}

/**
 * Hart 1: call F until the flag moves, call F once more (it must return the new flag: the
 * fence came before the flag), count mismatches in s8, acknowledge; report 11 after ROUNDS.
 */
function readerProgram(): number[] {
  const head = [
    ...li(R.s2, RAM_BASE + BigInt(F)),
    ...li(R.s4, RAM_BASE + BigInt(FLAG)),
    ...li(R.s5, RAM_BASE + BigInt(ACK)),
    ...li(R.s3, BigInt(ROUNDS)),
    I.addi(R.s7, R.zero, 0),
    I.addi(R.s8, R.zero, 0),
  ];
  const loop = [
    I.jalr(R.ra, R.s2, 0), // spin: F()
    I.lw(R.t0, R.s4, 0),
    I.beq(R.t0, R.s7, -8),
    I.jalr(R.ra, R.s2, 0),
    I.beq(R.a0, R.t0, 8),
    I.addi(R.s8, R.s8, 1),
    I.addi(R.s7, R.t0, 0),
    I.sw(R.t0, R.s5, 0),
  ];
  const back = I.bne(R.t0, R.s3, -4 * loop.length);
  return [...head, ...loop, back, ...report(11)];
}

async function untilReport(vcpu: SoftVcpu): Promise<bigint> {
  const runAsync = vcpu.runAsync;
  assert.ok(runAsync !== undefined);
  for (;;) {
    const exit = await runAsync();
    if (exit.kind === "intr") continue;
    return tagOf(exit);
  }
}

describe("a hart sees another hart's code write after a remote fence.i", () => {
  for (const mode of ["threaded", "inline"] as const) {
    for (const tier of TIERS) {
      it(
        `${mode}, ${tier.name}: ${ROUNDS} rewrites of a function the other hart keeps calling`,
        { timeout: 60_000 },
        async () => {
          const s = smp(mode, tier, 2, (ram) => {
            place(ram, CODE0, writerProgram());
            place(ram, CODE1, readerProgram());
          });
          const [v0, v1] = s.vcpus;
          assert.ok(v0 !== undefined && v1 !== undefined);
          set(v1, "csr.satp", 0n);
          if (mode === "threaded") {
            const tags = await Promise.all([untilReport(v0), untilReport(v1)]);
            assert.deepEqual(tags, [10n, 11n]);
          } else {
            // Round-robin in small, uneven slices so the handshake interleaves every way.
            const done = [false, false];
            for (let i = 0; done.includes(false) && i < 1_000_000; i++) {
              s.vcpus.forEach((v, n) => {
                if (done[n] === true) return;
                v.setRunBudget({ instructions: 7 + (i % 13), timeSliceMs: 20_000 });
                const exit = v.run();
                if (exit.kind !== "intr") {
                  tagOf(exit);
                  done[n] = true;
                }
              });
            }
            assert.deepEqual(done, [true, true]);
          }
          assert.equal(get(v1, "s7"), BigInt(ROUNDS), "hart 1 saw every round");
          assert.equal(get(v1, "s8"), 0n, "rounds in which hart 1 ran the old F after the fence");
          s.vm.close();
        },
      );
    }
  }
});

describe("harts fencing each other at once", () => {
  /** Each hart: ROUNDS × remote fence.i and sfence.vma to every hart (hart_mask_base -1). */
  const fencer = (tag: number): number[] => {
    const loop = [
      I.addi(R.a0, R.zero, 0),
      I.addi(R.a1, R.zero, -1),
      I.andi(R.a6, R.s3, 1), // fence.i, then sfence.vma, in turn
      ...li(R.a7, SBI_EID.RFENCE),
      I.ecall(),
      I.addi(R.s3, R.s3, -1),
    ];
    return [...li(R.s3, 400n), ...loop, I.bne(R.s3, R.zero, -4 * loop.length), ...report(tag)];
  };
  for (const tier of TIERS) {
    it(
      `threaded, ${tier.name}: 3 harts each fence all 3 harts 400 times without waiting on each other forever`,
      { timeout: 60_000 },
      async () => {
        const s = smp("threaded", tier, 3, (ram) => {
          place(ram, CODE0, fencer(20));
          place(ram, CODE1, fencer(21));
        });
        const tags = await Promise.all(s.vcpus.map(untilReport));
        assert.deepEqual(tags, [20n, 21n, 21n]);
        s.vm.close();
      },
    );
  }
});
