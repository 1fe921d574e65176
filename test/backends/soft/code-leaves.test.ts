/**
 * The code look-up leaves (code-leaves.ts) that let `sfence.vma addr` skip the engine's cache
 * scans: a fence must be reported for every leaf a look-up of the current map generation went
 * through, however often it was fenced before; it may be skipped only for leaves none did.
 * (tlb-fence.test.ts runs the same rules through guests on every tier.)
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CodeLeaves } from "../../../src/backends/soft/riscv/code-leaves.js";

/** Sign-extended Sv39 kernel addresses as the engine holds them (signed doubles). */
const KERNEL_TEXT = -0x8000_0000 + 0x20_0000; // 0xffffffff80200000
const KERNEL_2M = 21;
const PAGE = 12;
const GIGA = 30;

describe("CodeLeaves", () => {
  it("take() reports a noted page once, and again after the page is noted again", () => {
    const leaves = new CodeLeaves();
    leaves.note(0, 0x8000_1234, PAGE);
    assert.equal(leaves.take(0, 0x8000_2000), false, "another page");
    assert.equal(leaves.take(0, 0x8000_1ffe), true);
    assert.equal(leaves.take(0, 0x8000_1000), false, "forgotten once fenced");
    // The same leaf noted again right after (the engine's one-entry memo must not skip it).
    leaves.note(0, 0x8000_1234, PAGE);
    assert.equal(leaves.take(0, 0x8000_1000), true);
  });

  it("take() reports every address inside a noted superpage, by its own leaf size", () => {
    const leaves = new CodeLeaves();
    leaves.note(3, KERNEL_TEXT + 0x1_2344, KERNEL_2M);
    leaves.note(3, 0x4000_0000 + 0x10, GIGA);
    assert.equal(leaves.take(3, KERNEL_TEXT - 0x1000), false, "the 2 MiB leaf below");
    assert.equal(leaves.take(3, KERNEL_TEXT + 0x20_0000), false, "the 2 MiB leaf above");
    assert.equal(leaves.take(3, KERNEL_TEXT + 0x1f_f000), true);
    assert.equal(leaves.take(3, 0x7fff_f000), true, "the last page of the 1 GiB leaf");
    assert.equal(leaves.take(3, KERNEL_TEXT), false);
  });

  it("a new map generation forgets the old leaves and reports the ones noted under it", () => {
    const leaves = new CodeLeaves();
    leaves.note(5, 0x8000_0000, PAGE);
    assert.equal(leaves.take(6, 0x8000_0000), false, "look-ups of generation 5 are retired");
    leaves.note(6, 0x8000_0000, PAGE);
    leaves.note(6, 0x9000_0000, PAGE);
    assert.equal(leaves.take(6, 0x9000_0000), true);
    assert.equal(leaves.take(6, 0x8000_0000), true);
    leaves.note(7, 0x8000_0000, PAGE);
    assert.equal(leaves.take(7, 0x8000_0000), true, "noted again under generation 7");
  });
});
