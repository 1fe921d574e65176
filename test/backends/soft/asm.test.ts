/**
 * The test assembler itself: encodings pinned against an independent assembler (the words below
 * are what `llvm-mc --triple=riscv64 -mattr=+a,+d --show-encoding` prints for the same text), and
 * `li` checked by running its output on the real hart.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { I, R, li, rType } from "./asm.js";
import { hartWith } from "./harness.js";

const GOLDEN: readonly [string, number, number][] = [
  ["addi a0, zero, 1", I.addi(R.a0, R.zero, 1), 0x00100513],
  ["addi t0, sp, -2048", I.addi(R.t0, R.sp, -2048), 0x80010293],
  ["slli a0, a0, 63", I.slli(R.a0, R.a0, 63), 0x03f51513],
  ["lui a0, 0x12345", I.lui(R.a0, 0x12345), 0x12345537],
  ["lui t1, 0xfffff", I.lui(R.t1, -1), 0xfffff337],
  ["add a0, a1, a2", I.add(R.a0, R.a1, R.a2), 0x00c58533],
  ["lb a0, -1(a1)", I.lb(R.a0, R.a1, -1), 0xfff58503],
  ["lhu a2, 2047(t0)", I.lhu(R.a2, R.t0, 2047), 0x7ff2d603],
  ["lwu a0, 0(a1)", I.lwu(R.a0, R.a1, 0), 0x0005e503],
  ["ld a0, 8(a1)", I.ld(R.a0, R.a1, 8), 0x0085b503],
  ["sb a0, 3(a1)", I.sb(R.a0, R.a1, 3), 0x00a581a3],
  ["sh a1, -2(sp)", I.sh(R.a1, R.sp, -2), 0xfeb11f23],
  ["sw a1, 0(t0)", I.sw(R.a1, R.t0, 0), 0x00b2a023],
  ["sd a1, 8(t0)", I.sd(R.a1, R.t0, 8), 0x00b2b423],
  ["beq a0, zero, 2048", I.beq(R.a0, R.zero, 2048), 0x000500e3],
  ["bne a0, a1, -8", I.bne(R.a0, R.a1, -8), 0xfeb51ce3],
  ["bne s1, t2, -4096", I.bne(R.s1, R.t2, -4096), 0x80749063],
  ["jal zero, -4", I.jal(R.zero, -4), 0xffdff06f],
  ["jal ra, 0xffffe", I.jal(R.ra, 0xffffe), 0x7ffff0ef],
  ["jal zero, -0x100000", I.jal(R.zero, -0x100000), 0x8000006f],
  ["jalr zero, 0(ra)", I.jalr(R.zero, R.ra, 0), 0x00008067],
  ["csrrw zero, sepc, a0", I.csrrw(R.zero, 0x141, R.a0), 0x14151073],
  ["csrrs a0, sip, zero", I.csrrs(R.a0, 0x144, R.zero), 0x14402573],
  ["csrrc a0, time, t6", I.csrrc(R.a0, 0xc01, R.t6), 0xc01fb573],
  ["lr.w a0, (a1)", I.lrW(R.a0, R.a1), 0x1005a52f],
  ["sc.w a2, a3, (a1)", I.scW(R.a2, R.a1, R.a3), 0x18d5a62f],
  ["amoadd.d a2, a0, (a1)", I.amoaddD(R.a2, R.a1, R.a0), 0x00a5b62f],
  ["fadd.d f1, f1, f2, dyn", rType(0x53, 7, 0x01, 1, 1, 2), 0x0220f0d3],
  ["ecall", I.ecall(), 0x00000073],
  ["ebreak", I.ebreak(), 0x00100073],
  ["sret", I.sret(), 0x10200073],
  ["wfi", I.wfi(), 0x10500073],
  ["fence.i", I.fenceI(), 0x0000100f],
];

const hex = (w: number): string => `0x${w.toString(16).padStart(8, "0")}`;

/** Runs `li a0, value; ecall` on the interpreter and returns a0. */
function runLi(value: bigint): bigint {
  const { hart } = hartWith([...li(R.a0, value), I.ecall()], { translate: false, ramSize: 4096 });
  const stop = hart.run(20);
  assert.equal(stop.kind, "ecall", `li(${value.toString(16)}) stopped with ${stop.kind}`);
  return hart.getX(R.a0);
}

/** Every word li may emit: lui, addi, slli — the fake hart's RV64I subset (no addiw). */
function liSubsetOnly(words: readonly number[]): boolean {
  return words.every((w) => {
    const op = w & 0x7f;
    const f3 = (w >> 12) & 7;
    return op === 0x37 || (op === 0x13 && (f3 === 0 || (f3 === 1 && w >>> 26 === 0)));
  });
}

describe("test assembler (asm.ts)", () => {
  it("encodes every instruction as llvm-mc does", () => {
    for (const [text, got, want] of GOLDEN) assert.equal(hex(got), hex(want), text);
  });

  it("rejects operands it cannot encode instead of truncating them", () => {
    assert.throws(() => I.addi(R.a0, R.a0, 2048), RangeError);
    assert.throws(() => I.addi(32, R.a0, 0), RangeError);
    assert.throws(() => I.sd(R.a0, R.a1, -2049), RangeError);
    assert.throws(() => I.bne(R.a0, R.a1, 3), RangeError);
    assert.throws(() => I.bne(R.a0, R.a1, 4096), RangeError);
    assert.throws(() => I.jal(R.zero, 1 << 20), RangeError);
    assert.throws(() => I.slli(R.a0, R.a0, 64), RangeError);
    assert.throws(() => I.csrrs(R.a0, 0x1000, 0), RangeError);
    assert.throws(() => I.lui(R.a0, 1 << 20), RangeError);
  });

  it("li loads boundary values exactly, in at most 8 lui/addi/slli words", () => {
    const edges = [
      [0n, 1],
      [-1n, 1],
      [2047n, 1],
      [-2048n, 1],
      [2048n, 2],
      [-2049n, 2],
      [0x1000_0000n, 1],
      [0x7fff_f7ffn, 2],
      [0x7fff_f800n, 3], // lui+addi would sign-extend to 0xffff_ffff_7fff_f800
      [0x7fff_ffffn, 3],
      [-(1n << 31n), 1],
      [0x8000_0000n, 2],
      [0xffff_ffffn, 3],
      [0x8000_1235n, 4],
      [1n << 62n, 2],
      [1n << 63n, 2],
      [0x7fff_ffff_ffff_f800n, 3],
      [0x7fff_ffff_ffff_ffffn, 3],
      [0x1234_5678_9abc_def0n, 8],
    ] as const;
    for (const [value, length] of edges) {
      const words = li(R.a0, value);
      assert.equal(words.length, length, `li(${value.toString(16)}) length`);
      assert.ok(liSubsetOnly(words), `li(${value.toString(16)}) uses only lui/addi/slli`);
      assert.equal(runLi(value), BigInt.asUintN(64, value), `li(${value.toString(16)})`);
    }
  });

  it("li loads any 64-bit value exactly (property)", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), (value) => {
        const words = li(R.a0, value);
        assert.ok(words.length <= 8 && liSubsetOnly(words));
        assert.equal(runLi(value), BigInt.asUintN(64, value));
      }),
      { numRuns: 300 },
    );
  });
});
