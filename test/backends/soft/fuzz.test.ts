/**
 * The differential fuzzer with fixed seeds (fast enough for every test run); many seeds:
 * `node scripts/fuzz-soft.mjs`. See fuzz.ts for what a case contains and what is compared.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { REFERENCE, TIERS, fuzzSeed, makeCase, runCase } from "./fuzz.js";

/** Fixed seeds; both flavours (flat and Sv39) occur among them. */
const SEEDS = Array.from({ length: 16 }, (_, k) => 0x5eed0000 + k);

describe("differential fuzz: every tier ends like the reference interpreter", () => {
  it("a case is reproducible from its seed and exercises traps, exits and both flavours", () => {
    const a = runCase(makeCase(SEEDS[0] ?? 0), REFERENCE);
    const b = runCase(makeCase(SEEDS[0] ?? 0), REFERENCE);
    assert.deepEqual(a.exits, b.exits);
    assert.deepEqual(a.regs, b.regs);
    const flavours = new Set(SEEDS.map((seed) => makeCase(seed).satp !== 0n));
    assert.deepEqual([...flavours].sort(), [false, true]);
    // Traps happened: the handler's counter (t6) moved in most cases.
    const trapped = SEEDS.slice(0, 6).filter((seed) => {
      const out = runCase(makeCase(seed), REFERENCE);
      const k = out.regNames.indexOf("core.t6");
      const at = out.regSizes.slice(0, k).reduce((x, y) => x + y, 0);
      return out.regs.subarray(at, at + 8).some((v) => v !== 0);
    });
    assert.ok(trapped.length >= 4, `only ${trapped.length} of 6 cases trapped`);
  });

  for (const seed of SEEDS) {
    it(`seed 0x${seed.toString(16)}: ${TIERS.map((t) => t.name).join(", ")}`, () => {
      assert.deepEqual(fuzzSeed(seed), []);
    });
  }
});
