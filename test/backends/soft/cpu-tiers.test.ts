/**
 * The engine's tiers and code invalidation (engine.ts): cold code stays in the interpreter
 * until a pc is hot, and fence.i drops exactly the pages whose bytes changed, never the whole
 * cache.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { I, R, li, place } from "./asm.js";
import { RAM_BASE as BASE, hartWith } from "./harness.js";
import { F, body, caller } from "./call-loop.js";
import { eager, ENGINE_TIERS } from "./tiers.js";

/** Regions compiled so far (a call, so that assertions do not narrow the property). */
const compiledBy = (hart: { readonly stats: { readonly compiled: number } }): number =>
  hart.stats.compiled;
describe("engine tiers", () => {
  it("compiles nothing before a pc is hot, then compiles its region once", () => {
    const { hart, ram } = hartWith(caller(30), { hotThreshold: 50 });
    place(ram, F, body(1));
    assert.equal(hart.run(1e5).kind, "ecall");
    assert.equal(compiledBy(hart), 0, "30 visits stay interpreted");
    hart.setPc(BigInt(BASE));
    assert.equal(hart.run(1e5).kind, "ecall");
    const compiled = compiledBy(hart);
    assert.ok(compiled >= 1, "past 50 visits the function and the loop compile");
    hart.setPc(BigInt(BASE));
    assert.equal(hart.run(1e5).kind, "ecall");
    assert.equal(compiledBy(hart), compiled, "compiled code is reused, not rebuilt");
    assert.equal(hart.getX(R.a0), 1n);
  });

  it("fence.i drops only the page a write the hart did not see changed (no whole flush)", () => {
    const { hart, ram } = hartWith(caller(20), { hotThreshold: 1 });
    place(ram, F, body(1));
    assert.equal(hart.run(1e5).kind, "ecall");
    assert.equal(hart.getX(R.a0), 1n);
    const { compiled, invalidated, flushes, syncs } = hart.stats;
    // Another vCPU's store (the hart's own stores invalidate at once): only fence.i sees it.
    place(ram, F, body(2));
    hart.setPc(BigInt(BASE));
    assert.equal(hart.run(1e5).kind, "ecall");
    assert.equal(hart.getX(R.a0), 2n, "after fence.i the new code runs");
    const after = hart.stats;
    assert.equal(after.flushes, flushes, "no whole-cache flush");
    assert.equal(after.syncs, syncs + 1);
    // F's page (two blocks at most) was dropped and rebuilt; the caller's page was kept.
    assert.ok(after.invalidated - invalidated <= 2, `${after.invalidated - invalidated} dropped`);
    assert.ok(after.compiled - compiled <= 1, `${after.compiled - compiled} recompiled`);
  });
});

/**
 * fence.i compares a code page with its snapshot first (page-snapshot.ts): an instruction decoded
 * after another vCPU changed its bytes must still be checked precisely, also once the bytes are
 * back to what the snapshot holds.
 */
for (const tier of [
  ...ENGINE_TIERS,
  ...ENGINE_TIERS.filter((t) => t.options.translate).map(eager),
]) {
  const hot = tier.options.hotThreshold === 1 ? ", compiled at once" : "";
  describe(`fence.i and code changed behind the hart's back (${tier.name}${hot})`, () => {
    it("runs the bytes memory holds after fence.i, whatever was decoded in between", () => {
      const { hart, ram } = hartWith([], tier.options);
      const g = F + 0x100; // a second function in F's page
      place(ram, F, body(1));
      place(ram, g, body(5));
      let next = 0x4000;
      const call = (fn: number, fenceI: boolean): bigint => {
        const program = [
          ...(fenceI ? [I.fenceI()] : []),
          ...li(R.s2, BigInt(BASE + fn)),
          I.jalr(R.ra, R.s2, 0),
          I.ecall(),
        ];
        place(ram, next, program);
        hart.setPc(BigInt(BASE + next));
        next += 0x1000;
        assert.equal(hart.run(1e5).kind, "ecall");
        return hart.getX(R.a0);
      };
      assert.equal(call(F, false), 1n); // F's page is decoded from here on
      place(ram, g, body(6)); // another vCPU's store, not seen by the hart
      assert.equal(call(g, false), 6n, "g decoded from the new bytes");
      place(ram, g, body(5)); // and back to the bytes of the page's first decode
      assert.equal(call(g, true), 5n, "after fence.i g runs as memory holds it");
      place(ram, F, body(2));
      assert.equal(call(F, true), 2n, "after fence.i F runs as memory holds it");
    });

    it("re-checks every word of a page after fence.i, however many it decoded", () => {
      const { hart, ram } = hartWith([], tier.options);
      // 150 4-byte and 200 2-byte (c.addi a0, 1) additions, then ret: more words than a
      // decoded page's first trail holds.
      place(
        ram,
        F,
        Array.from({ length: 150 }, () => I.addi(R.a0, R.a0, 1)),
      );
      const rvc = F + 4 * 150;
      const view = new DataView(ram.buffer);
      for (let i = 0; i < 200; i++) view.setUint16(rvc + 2 * i, 0x0505, true);
      place(ram, rvc + 400, [I.jalr(0, R.ra, 0)]);
      const program = [I.fenceI(), I.addi(R.a0, R.zero, 0), ...li(R.s2, BigInt(BASE + F))];
      place(ram, 0x4000, [...program, I.jalr(R.ra, R.s2, 0), I.ecall()]);
      const run = (): bigint => {
        hart.setPc(BigInt(BASE + 0x4000));
        assert.equal(hart.run(1e5).kind, "ecall");
        return hart.getX(R.a0);
      };
      assert.equal(run(), 350n);
      view.setUint16(rvc + 2 * 190, 0x0509, true); // c.addi a0, 2, by another vCPU
      assert.equal(run(), 351n, "the 340th word changed");
      view.setUint32(F + 4 * 3, I.addi(R.a0, R.a0, 3), true);
      assert.equal(run(), 353n, "the 4th word changed");
    });
  });
}
