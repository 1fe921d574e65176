/**
 * The wasm dispatcher (wasm-dispatch.ts): control goes from region to region without a return
 * to the run loop, also across a page-straddling instruction (the step stub) and between
 * regions at the same offset of neighbouring pages (the dispatch cache's hash), and every exit
 * still leaves exactly the reference interpreter's state.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { I, R, li, place } from "./asm.js";
import { hartWith } from "./harness.js";
import type { Hart, HartOptions } from "../../../src/backends/soft/riscv/hart.js";

const WASM: HartOptions = { translate: true, hotThreshold: 1, tier: "wasm" };
/** The wasm tier with the default promotion (DEFAULT_HOT visits, weighed every WARM). */
const WASM_DEFAULT_HOT: HartOptions = { translate: true, tier: "wasm" };
const REFERENCE: HartOptions = { translate: false };
/** An address outside RAM: loads there are MMIO exits. */
const MMIO = 0x1000_0000n;
/** instret's CSR number (privileged spec, table 2.2). */
const INSTRET = 0xc02;

/** Architectural state a run leaves: stop, pc, instret, x1..x31. */
function state(hart: Hart, budget: number): string {
  const stop = hart.run(budget);
  const x = Array.from({ length: 31 }, (_, i) => hart.getX(i + 1).toString(16));
  const big = (_: string, v: unknown): unknown => (typeof v === "bigint" ? v.toString(16) : v);
  return JSON.stringify({ stop, pc: hart.getPc().toString(16), n: String(hart.instret), x }, big);
}

/** Dispatcher entries from the run loop so far. */
function entries(hart: Hart): number {
  const s: Record<string, unknown> = { ...hart.stats };
  return Number(s.wasmEntries);
}

/** `n` filler instructions (a rotating chain of addi over a0..a4). */
function fill(n: number): number[] {
  return Array.from({ length: n }, (_, i) => I.addi(R.a0 + (i % 5), R.a0 + ((i + 1) % 5), i));
}

/**
 * A loop of `iterations` whose body is `before` filler instructions, then `straddler` at byte
 * 4094 (its second half in the next page), then `after` and the back branch; `setup` runs
 * first (it must fit below the loop).
 */
function straddlingLoop(
  iterations: number,
  before: number,
  straddler: number,
  after: number[],
  setup: number[] = [],
): Uint8Array {
  const ram = new Uint8Array(3 * 4096);
  const start = 4094 - 4 * before; // 2-byte aligned: jumps there need only RVC alignment
  const head = [...setup, ...li(R.s11, BigInt(iterations))];
  place(ram, 0, [...head, I.jal(R.zero, start - 4 * head.length)]);
  const branchAt = 4098 + 4 * after.length + 4;
  place(ram, start, [
    ...fill(before),
    straddler,
    ...after,
    I.addi(R.s11, R.s11, -1),
    I.bne(R.s11, R.zero, start - branchAt),
    I.ecall(),
  ]);
  return ram;
}

describe("wasm dispatcher", () => {
  it("a loop across a page-straddling instruction stays in wasm (the step stub runs it)", () => {
    const code = straddlingLoop(2000, 8, I.addi(R.a1, R.a1, 3), fill(8));
    const ref = hartWith(code, REFERENCE).hart;
    const wasm = hartWith(code, WASM).hart;
    assert.equal(state(wasm, 1e6), state(ref, 1e6));
    // Without the stub every iteration returned to the run loop at the straddler (2000 entries).
    assert.ok(entries(wasm) < 20, `${String(entries(wasm))} dispatcher entries`);
  });

  it("a straddler after a region and the code after it are promoted at their first visit", () => {
    // A 200-instruction path promotes the loop head after 512 visits (WARM rounds); the
    // straddler right after its region and the code after that, reached only by falling
    // through, would need DEFAULT_HOT visits each.
    const iterations = 3000;
    const code = straddlingLoop(iterations, 200, I.addi(R.a1, R.a1, 3), fill(8));
    const ref = hartWith(code, REFERENCE).hart;
    const wasm = hartWith(code, WASM_DEFAULT_HOT).hart;
    assert.equal(state(wasm, 1e7), state(ref, 1e7));
    assert.ok(entries(wasm) < iterations / 2, `${String(entries(wasm))} dispatcher entries`);
  });

  it("a straddling CSR read leaves to the run loop: instret counts what wasm retired", () => {
    // a2 += instret every iteration: a stale count (the dispatcher's instructions not yet
    // charged) would differ from the interpreter's.
    const code = straddlingLoop(300, 6, I.csrrs(R.a1, INSTRET, R.zero), [I.add(R.a2, R.a2, R.a1)]);
    const ref = hartWith(code, REFERENCE).hart;
    const wasm = hartWith(code, WASM).hart;
    assert.equal(state(wasm, 1e6), state(ref, 1e6));
  });

  it("a straddling MMIO load stops with the interpreter's state", () => {
    const code = straddlingLoop(50, 6, I.ld(R.a1, R.t0, 8), fill(4), li(R.t0, MMIO));
    const ref = hartWith(code, REFERENCE).hart;
    const wasm = hartWith(code, WASM).hart;
    assert.equal(state(wasm, 1e5), state(ref, 1e5));
  });

  it("regions at the same offset of neighbouring pages keep their dispatch cache entries", () => {
    // Three one-block regions 4 KiB apart, each jumping to the next: indexed by pc bits 1..10
    // they shared one cache entry and every jump returned to the run loop.
    const ram = new Uint8Array(4 * 4096);
    const at = (page: number): number => page * 4096 + 0x100;
    const head = li(R.s11, 1000n);
    place(ram, 0, [...head, I.jal(R.zero, at(0) - 4 * head.length)]);
    place(ram, at(0), [I.addi(R.a0, R.a0, 1), I.jal(R.zero, 4096 - 4)]);
    place(ram, at(1), [I.addi(R.a1, R.a1, 2), I.jal(R.zero, 4096 - 4)]);
    place(ram, at(2), [
      I.addi(R.s11, R.s11, -1),
      I.beq(R.s11, R.zero, 8),
      I.jal(R.zero, at(0) - at(2) - 8),
      I.ecall(),
    ]);
    const ref = hartWith(ram, REFERENCE).hart;
    const wasm = hartWith(ram, WASM).hart;
    assert.equal(state(wasm, 1e6), state(ref, 1e6));
    assert.ok(entries(wasm) < 20, `${String(entries(wasm))} dispatcher entries`);
  });
});
