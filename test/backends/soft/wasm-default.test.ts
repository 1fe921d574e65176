/**
 * With the wasm tier the default (hart.ts `tierFromEnv`), suites that ask for "the translator"
 * without naming a tier run wasm regions; the JS translator (REGVISOR_SOFT_TIER=js) keeps its
 * own checks here: the test guests and the fixed fuzz seeds, each against the reference.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { I, R } from "./asm.js";
import { TEST_GUESTS, ensureGuests, guestElf, hartWith, runGuest } from "./harness.js";
import { fuzzSeed, type Tier } from "./fuzz.js";

const skip = ensureGuests(TEST_GUESTS);

/** The JS translator, named explicitly now that it is not the default. */
const JS_TIERS: readonly Tier[] = [
  { name: "js translator (hot 1)", options: { translate: true, hotThreshold: 1, tier: "js" } },
  {
    name: "js translator (hot 3, 8-block regions)",
    options: { translate: true, hotThreshold: 3, regionBlocks: 8, tier: "js" },
  },
];

describe("the JS translator tier, no longer the default", () => {
  it("a hart made without a tier compiles to wasm", () => {
    const saved = process.env.REGVISOR_SOFT_TIER;
    delete process.env.REGVISOR_SOFT_TIER;
    try {
      const { hart } = hartWith(
        [I.addi(R.a0, R.a0, 1), I.addi(R.s1, R.s1, -1), I.bne(R.s1, R.zero, -8), I.ecall()],
        { hotThreshold: 1 },
      );
      hart.setX(R.s1, 100n);
      assert.equal(hart.run(1e4).kind, "ecall");
      assert.equal(hart.getX(R.a0), 100n);
      const stats: Record<string, unknown> = { ...hart.stats };
      assert.ok(typeof stats.wasmInsns === "number" && stats.wasmInsns >= 200);
    } finally {
      if (saved !== undefined) process.env.REGVISOR_SOFT_TIER = saved;
    }
  });

  for (const name of TEST_GUESTS) {
    it(`${name} prints only PASS lines on the js tier (compile at once)`, { skip }, () => {
      const run = runGuest(guestElf(name), {
        translate: true,
        hotThreshold: 1,
        tier: "js",
        budget: 50_000_000,
      });
      assert.equal(run.end, "shutdown", `${name} ended with ${run.end}: ${run.detail}`);
      const lines = run.console.split("\n").filter((l) => l !== "");
      assert.ok(lines.length >= 5);
      assert.deepEqual(
        lines.filter((l) => !l.startsWith("PASS ")),
        [],
        run.console,
      );
    });
  }

  for (let k = 0; k < 8; k++) {
    const seed = 0x5eed0000 + k;
    it(`fuzz seed 0x${seed.toString(16)} ends like the reference on the js tier`, () => {
      assert.deepEqual(fuzzSeed(seed, JS_TIERS), []);
    });
  }
});
