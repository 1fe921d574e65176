/**
 * `blockSize` (block.ts), which the engine's promotion weighs pcs with, measures exactly the
 * block `decodeBlock` makes at every halfword of a page: instruction count and bytes, across
 * jumps, SYSTEM instructions, illegal encodings, page-straddling instructions and the slot end.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { blockSize, decodeBlock } from "../../../src/backends/soft/riscv/block.js";
import { Slot } from "../../../src/backends/soft/riscv/memory.js";
import { I, R, place } from "./asm.js";

const GPA = 0x8000_0000;

/** A deterministic byte stream (xorshift32), biased towards plain 2- and 4-byte instructions. */
function fill(bytes: Uint8Array, seed: number): void {
  let x = seed;
  for (let i = 0; i < bytes.length; i += 2) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
    bytes[i + 1] = (x >>> 8) & 0xff;
  }
}

function sameAtEveryHalfword(slot: Slot, from: number, to: number): void {
  for (let off = from; off < to; off += 2) {
    const blk = decodeBlock(GPA + off, GPA + off, slot);
    const size = blockSize(GPA + off, slot);
    assert.equal(size & 0xff, blk.n, `count at offset 0x${off.toString(16)}`);
    assert.equal(size >>> 8, blk.bytes, `bytes at offset 0x${off.toString(16)}`);
  }
}

describe("blockSize()", () => {
  it("matches decodeBlock at every halfword of random pages", () => {
    const bytes = new Uint8Array(3 * 4096);
    for (const seed of [1, 0x9e3779b9, 12345]) {
      fill(bytes, seed);
      sameAtEveryHalfword(new Slot({ slot: 0, gpa: GPA, bytes, readonly: false }), 0, bytes.length);
    }
  });

  it("matches decodeBlock on long straight runs, jumps, SYSTEM and page-end straddlers", () => {
    const bytes = new Uint8Array(2 * 4096);
    // 100 4-byte additions (longer than a block), a jump, a CSR read, an ecall, zeros.
    place(bytes, 0, [
      ...Array.from({ length: 100 }, () => I.addi(R.a0, R.a0, 1)),
      I.jal(0, 8),
      I.addi(R.a1, R.a1, 1),
      I.ecall(),
    ]);
    // A 4-byte instruction straddling the first page's end, and one at the slot's very end.
    place(bytes, 4096 - 6, [I.addi(R.a0, R.a0, 1)]);
    bytes[4094] = 0x13;
    bytes[4095] = 0x05;
    bytes[2 * 4096 - 2] = 0x13;
    sameAtEveryHalfword(new Slot({ slot: 0, gpa: GPA, bytes, readonly: false }), 0, bytes.length);
  });
});
