/**
 * The SMP fuzzer (smp-fuzz.ts) with fixed seeds on every tier, inline and threaded; many seeds:
 * `node scripts/fuzz-soft.mjs --smp`.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { SBI_EID } from "../../../src/backends/soft/sbi.js";
import { allocGuestMemory } from "../../../src/backends/soft/vm.js";
import type { SoftVcpu } from "../../../src/backends/soft/vcpu.js";
import { I, R, li, place } from "./asm.js";
import { get, set, RAM_BASE } from "./helpers.js";
import { amo, areaDiff, F5, makeSmpCase, runSmpCase, smpFuzzSeed } from "./smp-fuzz.js";
import { eager, ENGINE_TIERS, tierVm } from "./tiers.js";

/** Fixed seeds: one each of 2, 3 and 4 harts. */
const SEEDS = [0x5a1f0007, 0x5a1f0001, 0x5a1f0004];
const TIERS = ENGINE_TIERS.map(eager);

describe("SMP fuzz: atomics across vCPUs end as the interleaving-free model says", () => {
  it("the fixed seeds cover 2, 3 and 4 harts, and the model is not the starting area", () => {
    const cases = SEEDS.map((seed) => makeSmpCase(seed));
    assert.deepEqual([...new Set(cases.map((c) => c.harts))].sort(), [2, 3, 4]);
    for (const c of cases) assert.ok(areaDiff(c.expected, c.initial).length >= 12);
  });

  it("a lost update is caught: plain add in place of amoadd fails the check", async () => {
    // The same case with every amoadd.d turned into amoswap.d (last writer wins): the counters
    // then depend on the interleaving and cannot all match the model.
    const c = makeSmpCase(SEEDS[0] ?? 0);
    const swapped = c.code.map((words) =>
      words.map((w) =>
        (w & 0x7f) === 0x2f && w >>> 27 === 0 && ((w >>> 12) & 7) === 3 ? w | (1 << 27) : w,
      ),
    );
    const tier = TIERS[0];
    assert.ok(tier !== undefined);
    const out = await runSmpCase({ ...c, code: swapped }, "inline", tier);
    assert.equal(out.error, undefined);
    assert.notDeepEqual(areaDiff(c.expected, out.area), []);
  });

  for (const seed of SEEDS) {
    it(
      `seed 0x${seed.toString(16)} (${makeSmpCase(seed).harts} harts): inline and threaded, ${TIERS.map((t) => t.name).join(", ")}`,
      { timeout: 120_000 },
      async () => {
        assert.deepEqual(await smpFuzzSeed(seed, TIERS), []);
      },
    );
  }
});

/**
 * The reservation rule our SC implements (amo.ts): SC succeeds only if this hart's LR reserved
 * the address and the word still holds what LR read — so a store of a different value, an AMO
 * or another hart's successful SC between this hart's LR and SC makes it fail (unprivileged
 * spec "Load-Reserved/Store-Conditional": an SC must fail if a store from another hart to the
 * reservation set can be observed between the LR and the SC).
 */
describe("SC after another hart wrote the reserved word", () => {
  const WORD = 0x8000n;
  const OLD = 0x1111_2222_3333_4444n;
  const NEW = 0x5555_6666_7777_8888n;
  const mine = 0x0123n;
  const report = (tag: number): number[] => [
    ...li(R.a7, SBI_EID.EXPERIMENTAL_START),
    ...li(R.a6, BigInt(tag)),
    I.ecall(),
  ];
  /** Hart 0: lr.d; report 1; sc.d of `mine`; s1 = its result; report 2. */
  const hart0 = [
    ...li(R.t1, RAM_BASE + WORD),
    ...li(R.t0, mine),
    amo(F5.lr, true, false, false, R.t3, R.t1, R.zero),
    ...report(1),
    amo(F5.sc, true, false, false, R.t4, R.t1, R.t0),
    I.addi(R.s1, R.t4, 0),
    ...report(2),
  ];
  const other: Record<string, { code: number[]; fails: boolean; ends: bigint }> = {
    "nothing (the SC succeeds)": { code: [], fails: false, ends: mine },
    "a plain store of another value": { code: [I.sd(R.t0, R.t1, 0)], fails: true, ends: NEW },
    "an amoadd.d": {
      code: [amo(F5.add, true, true, true, R.t2, R.t1, R.t0)],
      fails: true,
      ends: OLD + NEW,
    },
    "its own LR/SC": {
      code: [
        amo(F5.lr, true, false, false, R.t2, R.t1, R.zero),
        amo(F5.sc, true, false, true, R.t3, R.t1, R.t0),
      ],
      fails: true,
      ends: NEW,
    },
  };
  for (const tier of TIERS) {
    for (const [what, { code, fails, ends }] of Object.entries(other)) {
      it(`${tier.name}: hart 1 does ${what} between hart 0's LR and SC`, () => {
        const vm = tierVm("inline", tier, { timeSliceMs: 20_000 });
        const ram = allocGuestMemory(1 << 20);
        const view = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
        view.setBigUint64(Number(WORD), OLD, true);
        place(ram, 0, hart0);
        place(ram, 0x1000, [...li(R.t1, RAM_BASE + WORD), ...li(R.t0, NEW), ...code, ...report(3)]);
        vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: RAM_BASE, memory: ram });
        const [v0, v1] = [vm.createVcpu(), vm.createVcpu()];
        v1.setMpState(0);
        set(v0, "core.pc", RAM_BASE);
        set(v1, "core.pc", RAM_BASE + 0x1000n);
        const tag = (v: SoftVcpu): bigint => {
          const exit = v.run();
          return exit.kind === "riscv_sbi" ? exit.functionId : -1n;
        };
        assert.equal(tag(v0), 1n);
        assert.equal(tag(v1), 3n);
        assert.equal(tag(v0), 2n);
        assert.equal(get(v0, "s1"), fails ? 1n : 0n, fails ? "the SC failed" : "the SC succeeded");
        assert.equal(view.getBigUint64(Number(WORD), true), BigInt.asUintN(64, ends));
        vm.close();
      });
    }
  }
});
