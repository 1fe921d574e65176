/**
 * The fast interpreter goes on at cold jump targets (fast.ts `runFast`): one call runs across
 * taken branches and jumps, in its page and into pages the decode cache already looked up, while
 * the target stays cold, counting each target's heat exactly as the engine's boundary would;
 * it returns at the jump whose target would become hot (the engine counts that visit and
 * promotes), at a page it has not looked up, and at its budget. Promotion therefore comes at
 * the same visit as when every taken branch returned to the engine.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { I, R, li, place } from "./asm.js";
import { RAM_BASE as BASE, hartWith } from "./harness.js";
import { Core } from "../../../src/backends/soft/riscv/core.js";
import { fastEnd, runFast } from "../../../src/backends/soft/riscv/fast.js";
import { DecodeCache } from "../../../src/backends/soft/riscv/predecode.js";

const HEAT_SIZE = 1 << 14;
/** Offset of the two-instruction loop `addi t0, t0, 1; jal zero, -4`. */
const LOOP = 0x40;

/** A bare-mode core over `ram` at BASE, its decode cache, fresh heat counters, pc at `at`. */
function fastCore(ram: Uint8Array, at: number) {
  const c = new Core(0);
  c.mem.set([{ slot: 0, gpa: BASE, bytes: ram, readonly: false }]);
  c.pc = BASE + at;
  return { c, dc: new DecodeCache(c), heat: new Uint16Array(HEAT_SIZE) };
}

/** The heat counter of virtual pc `pc` (the engine's hash: engine.ts `compiledAt`). */
const heatIndex = (pc: number): number => ((pc | 0) >>> 1) & (HEAT_SIZE - 1);

function loopRam(): Uint8Array {
  const ram = new Uint8Array(3 * 4096);
  place(ram, LOOP, [I.addi(R.t0, R.t0, 1), I.jal(R.zero, -4)]);
  return ram;
}

describe("fast interpreter: runs across cold jump targets", () => {
  it("runFast() goes on around a cold loop up to its budget, counting the target's heat", () => {
    const { c, dc, heat } = fastCore(loopRam(), LOOP);
    assert.equal(runFast(c, dc, 50, heat, 1000), 50);
    assert.equal(c.icount, 50);
    assert.equal(c.x[2 * R.t0], 25, "25 iterations of the 2-instruction loop");
    // The 25th jump ended the run at the budget: counted by the engine, not here.
    assert.equal(heat[heatIndex(BASE + LOOP)], 24);
    assert.equal(c.pc, BASE + LOOP);
    assert.equal(fastEnd.boundary, true, "the run ended at a jump target");
  });

  it("runFast() returns at the jump whose target would reach `hot`, that visit uncounted", () => {
    const { c, dc, heat } = fastCore(loopRam(), LOOP);
    assert.equal(runFast(c, dc, 1000, heat, 5), 10, "four jumps counted, the fifth returns");
    assert.equal(heat[heatIndex(BASE + LOOP)], 4);
    assert.equal(c.pc, BASE + LOOP);
    assert.equal(fastEnd.boundary, true);
  });

  it("runFast() goes on into another page only once the decode cache has looked it up", () => {
    const ram = new Uint8Array(3 * 4096);
    // Page 0 jumps to page 1, which jumps back: a loop across the page boundary.
    place(ram, LOOP, [I.addi(R.t0, R.t0, 1), I.jal(R.zero, 4096)]);
    place(ram, LOOP + 4100, [I.addi(R.t1, R.t1, 1), I.jal(R.zero, -4104)]);
    const { c, dc, heat } = fastCore(ram, LOOP);
    assert.equal(
      runFast(c, dc, 100, heat, 1000),
      2,
      "page 1 not looked up yet: back to the engine",
    );
    assert.equal(c.pc, BASE + LOOP + 4100);
    assert.equal(
      runFast(c, dc, 100, heat, 1000),
      100,
      "both pages known: no return until the budget",
    );
    assert.equal((c.x[2 * R.t0] ?? 0) + (c.x[2 * R.t1] ?? 0), 51);
  });

  for (const visits of [7, 8]) {
    it(`a loop whose head is reached ${String(visits)} times at hot = 8 is ${visits < 8 ? "not " : ""}compiled`, () => {
      // s1 = visits + 1; loop: s1 -= 1; bne s1, zero, loop (taken `visits` times); ecall.
      const head = li(R.s1, BigInt(visits + 1));
      const { hart } = hartWith(
        [...head, I.addi(R.s1, R.s1, -1), I.bne(R.s1, R.zero, -4), I.ecall()],
        { hotThreshold: 8, tier: "wasm" },
      );
      assert.equal(hart.run(1e5).kind, "ecall");
      assert.equal(hart.getX(R.s1), 0n);
      assert.equal(hart.stats.compiled, visits < 8 ? 0 : 1);
    });
  }
});
