/**
 * The fast interpreter computes pcs from the running page's address as int32 words (fast.ts):
 * AUIPC results and JAL/JALR link values carry into and borrow from the high word at a 4 GiB
 * boundary, and a JALR whose target lies more than 2 GiB from the page, or in another 4 GiB,
 * returns to the engine at that target. Each program runs in `runFast` and in the reference
 * `step`, which must end in the same registers and pc.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { I, R, li, place } from "./asm.js";
import { Core } from "../../../src/backends/soft/riscv/core.js";
import { fastEnd, runFast } from "../../../src/backends/soft/riscv/fast.js";
import { step } from "../../../src/backends/soft/riscv/interp.js";
import { DecodeCache } from "../../../src/backends/soft/riscv/predecode.js";

/** A 16 KiB slot across the 4 GiB boundary (bare mode: pcs are guest-physical). */
const HIGH = 0xffffe000;
/** A page near address 0. */
const LOW = 0x1000;

/** auipc rd, imm20 (the 20-bit field as unsigned). */
const auipc = (rd: number, imm20: number): number =>
  (((imm20 & 0xfffff) << 12) | (rd << 7) | 0x17) >>> 0;

/** Two cores over identical copies of the two slots, pc at `pc`. */
function cores(fill: (high: Uint8Array, low: Uint8Array) => void, pc: number): Core[] {
  return [0, 1].map(() => {
    const high = new Uint8Array(4 * 4096);
    const low = new Uint8Array(4096);
    fill(high, low);
    const c = new Core(0);
    c.mem.set([
      { slot: 0, gpa: LOW, bytes: low, readonly: false },
      { slot: 1, gpa: HIGH, bytes: high, readonly: false },
    ]);
    c.pc = pc;
    return c;
  });
}

/** Runs `c` in runFast calls until its ecall; returns each call's attempts. */
function runFastToEcall(c: Core): number[] {
  const dc = new DecodeCache(c);
  const heat = new Uint16Array(1 << 14);
  const calls: number[] = [];
  while (c.stop?.kind !== "ecall") {
    assert.ok(calls.length < 100, "the program reaches its ecall");
    c.exc = false;
    calls.push(runFast(c, dc, 1000, heat, 1000));
  }
  return calls;
}

function stepToEcall(c: Core): void {
  for (let n = 0; c.stop?.kind !== "ecall"; n++) {
    assert.ok(n < 1000, "the program reaches its ecall");
    step(c);
  }
}

function assertSameState(fast: Core, ref: Core): void {
  assert.deepEqual([...fast.x], [...ref.x], "registers");
  assert.equal(fast.pc, ref.pc, "pc");
  assert.equal(fast.icount, ref.icount, "instructions retired");
}

/** Register x`r` as an unsigned 64-bit value. */
const reg = (c: Core, r: number): bigint =>
  (BigInt(c.x[2 * r + 1] ?? 0) << 32n) | BigInt((c.x[2 * r] ?? 0) >>> 0);

describe("fast interpreter: pcs in int32 words", () => {
  it("AUIPC and JAL/JALR links carry into and borrow from the high word at 4 GiB", () => {
    const fill = (high: Uint8Array): void => {
      // At 0xfffff800: t0 = pc + 0x1000 (carries), t1 = pc - 0x1000; jump to the last word.
      place(high, 0x1800, [auipc(R.t0, 1), auipc(R.t1, 0xfffff), I.jal(R.zero, 0x7fc - 8)]);
      // At 0xfffffffc: jal ra to 0x1_0000_0004; its link 0x1_0000_0000 carries.
      place(high, 0x1ffc, [I.jal(R.ra, 8)]);
      // At 0x1_0000_0004: t2 = pc - 0x1000 (borrows), then jalr a0 back to 0xfffff810.
      place(high, 0x2004, [auipc(R.t2, 0xfffff), ...li(R.a1, 0xfffff810n), I.jalr(R.a0, R.a1, 0)]);
      // At 0xfffff810: the end.
      place(high, 0x1810, [I.ecall()]);
    };
    const [fast, ref] = cores(fill, HIGH + 0x1800);
    assert.ok(fast !== undefined && ref !== undefined);
    runFastToEcall(fast);
    stepToEcall(ref);
    assertSameState(fast, ref);
    assert.equal(reg(fast, R.t0), 0x1_0000_0800n);
    assert.equal(reg(fast, R.t1), 0xffffe804n);
    assert.equal(reg(fast, R.ra), 0x1_0000_0000n);
    assert.equal(reg(fast, R.t2), 0xfffff004n);
    assert.equal(reg(fast, R.a0), 0x1_0000_0004n + 4n * BigInt(li(R.a1, 0xfffff810n).length + 2));
  });

  it("a JALR more than 2 GiB away returns to the engine at its target", () => {
    // At 0x1000: a1 = 0xffffe000 (0xfffff000 bytes on: the int32 difference is negative).
    const fill = (high: Uint8Array, low: Uint8Array): void => {
      place(low, 0, [...li(R.a1, BigInt(HIGH)), I.jalr(R.ra, R.a1, 0)]);
      place(high, 0, [I.addi(R.t0, R.zero, 7), I.ecall()]);
    };
    const [fast, ref] = cores(fill, LOW);
    assert.ok(fast !== undefined && ref !== undefined);
    const n = li(R.a1, BigInt(HIGH)).length + 1;
    const dc = new DecodeCache(fast);
    const heat = new Uint16Array(1 << 14);
    assert.equal(runFast(fast, dc, 1000, heat, 1000), n, "the run ends at the far JALR");
    assert.equal(fast.pc, HIGH);
    assert.equal(fastEnd.boundary, true, "a control-flow boundary");
    assert.equal(reg(fast, R.ra), BigInt(LOW + 4 * n));
    runFastToEcall(fast);
    stepToEcall(ref);
    assertSameState(fast, ref);
    assert.equal(reg(fast, R.t0), 7n);
  });

  it("a JALR into another 4 GiB returns to the engine; a near one goes on", () => {
    const fill = (high: Uint8Array): void => {
      // At 0x1_0000_0000: jalr to 0xffffe000 (another high word), which jalrs to 0xffffe100
      // (same page: the run goes on) and ends.
      place(high, 0x2000, [...li(R.a1, BigInt(HIGH)), I.jalr(R.zero, R.a1, 0)]);
      place(high, 0, [I.jalr(R.ra, R.a1, 0x100)]);
      place(high, 0x100, [I.addi(R.t0, R.zero, 9), I.ecall()]);
    };
    const [fast, ref] = cores(fill, HIGH + 0x2000);
    assert.ok(fast !== undefined && ref !== undefined);
    const calls = runFastToEcall(fast);
    assert.equal(calls[0], li(R.a1, BigInt(HIGH)).length + 1, "returns at the far JALR");
    assert.equal(calls[1], 3, "the near JALR goes on to the ecall in the same call");
    stepToEcall(ref);
    assertSameState(fast, ref);
    assert.equal(reg(fast, R.ra), BigInt(HIGH + 4));
  });
});
