/**
 * The fast interpreter and its decode cache (fast.ts, predecode.ts): cold code runs from
 * instructions decoded once per page, so every way code can change under it must drop or
 * re-check the decoded page — the hart's own stores (at once, even into the running page),
 * fence.i after a write the hart did not see, the VMM's writes, memslot changes — and an
 * instruction straddling a page end still runs. Each case also runs on the reference
 * interpreter, which decodes afresh every time, and must end the same.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { I, R, li, place } from "./asm.js";
import { RAM_BASE as BASE, hartWith } from "./harness.js";
import { F, body, caller } from "./call-loop.js";
import type { HartOptions } from "../../../src/backends/soft/riscv/hart.js";

/** The fast tier alone (nothing is ever hot enough to compile) and the reference. */
const TIERS: readonly (readonly [string, HartOptions])[] = [
  ["fast interpreter", { translate: true, hotThreshold: 1e9 }],
  ["reference interpreter", { translate: false }],
];

const PATCH = 0xc0;
const TARGET = 0x100;
const NOP = I.addi(R.zero, R.zero, 0);

/**
 * A guest that runs `addi a0, zero, 1` at TARGET once (so it is decoded), then on a second pass
 * overwrites it with `addi a0, zero, 7` by a store in the same straight-line run that falls
 * into it (nops up to TARGET): a0 must end 7.
 */
function selfPatching(ram: Uint8Array): void {
  const head = [...li(R.s2, BigInt(BASE + TARGET)), I.addi(R.s1, R.zero, 2)];
  const loop = 4 * head.length;
  place(ram, 0, [
    ...head,
    I.addi(R.s1, R.s1, -1),
    I.beq(R.s1, R.zero, PATCH - (loop + 4)),
    I.jal(R.zero, TARGET - (loop + 8)),
  ]);
  const patch = [...li(R.t0, BigInt(I.addi(R.a0, R.zero, 7))), I.sw(R.t0, R.s2, 0)];
  place(ram, PATCH, [
    ...patch,
    ...new Array<number>((TARGET - PATCH) / 4 - patch.length).fill(NOP),
  ]);
  place(ram, TARGET, [
    I.addi(R.a0, R.zero, 1),
    I.bne(R.s1, R.zero, loop - (TARGET + 4)),
    I.ecall(),
  ]);
}

describe("fast interpreter (decode cache)", () => {
  for (const [name, options] of TIERS) {
    it(`${name}: a store into decoded code of the running page takes effect at once`, () => {
      const { hart, ram } = hartWith([], options);
      selfPatching(ram);
      assert.equal(hart.run(1e5).kind, "ecall");
      assert.equal(hart.getX(R.a0), 7n);
      assert.equal(hart.getX(R.s1), 0n, "both passes ran");
    });

    it(`${name}: fence.i re-checks a page a write the hart did not see changed`, () => {
      const { hart, ram } = hartWith(caller(3), options);
      place(ram, F, body(1));
      assert.equal(hart.run(1e5).kind, "ecall");
      assert.equal(hart.getX(R.a0), 1n);
      // Another vCPU's store: only the fence.i at the caller's start makes it visible.
      place(ram, F, body(2));
      hart.setPc(BigInt(BASE));
      assert.equal(hart.run(1e5).kind, "ecall");
      assert.equal(hart.getX(R.a0), 2n, "after fence.i the new code runs");
    });

    it(`${name}: the VMM's write (invalidateCode) and a memslot change drop decoded code`, () => {
      const { hart, ram } = hartWith(caller(3, false), options);
      place(ram, F, body(1));
      assert.equal(hart.run(1e5).kind, "ecall");
      place(ram, F, body(4));
      hart.invalidateCode(BASE + F);
      hart.setPc(BigInt(BASE));
      assert.equal(hart.run(1e5).kind, "ecall");
      assert.equal(hart.getX(R.a0), 4n, "the page the VMM wrote was decoded afresh");
      const fresh = ram.slice();
      place(fresh, F, body(5));
      hart.setMemslots([{ slot: 0, gpa: BASE, bytes: fresh, readonly: false }]);
      hart.setPc(BigInt(BASE));
      assert.equal(hart.run(1e5).kind, "ecall");
      assert.equal(hart.getX(R.a0), 5n, "new memslots: nothing decoded survives");
    });

    it(`${name}: instret read in the middle of a run counts every instruction before it`, () => {
      const adds = Array.from({ length: 5 }, (_, k) => I.addi(R.t0, R.t0, k));
      // csrrs a0, instret, zero (Zicntr: instret is CSR 0xC02).
      const { hart } = hartWith([...adds, I.csrrs(R.a0, 0xc02, R.zero), I.ecall()], options);
      assert.equal(hart.run(1e5).kind, "ecall");
      assert.equal(hart.getX(R.a0), 5n);
    });

    it(`${name}: a 4-byte instruction straddling a page end runs from both pages`, () => {
      const at = 0x1ffe;
      const { hart, ram } = hartWith([...li(R.t1, BigInt(BASE + at)), I.jalr(0, R.t1, 0)], options);
      const view = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
      const insn = I.addi(R.a0, R.zero, 9);
      view.setUint16(at, insn & 0xffff, true);
      view.setUint16(at + 2, insn >>> 16, true);
      view.setUint32(at + 4, I.ecall(), true);
      assert.equal(hart.run(1e5).kind, "ecall");
      assert.equal(hart.getX(R.a0), 9n);
      assert.equal(hart.getPc(), BigInt(BASE + at + 4));
    });
  }
});
