/**
 * The fast interpreter's AMO path (amo.ts `amoFast`, predecode.ts K.AMO): on a TLB hit it runs
 * LR/SC and every AMO on int32 halves, so each (operation, width, operands, reservation, private
 * or shared RAM) case here runs once through `amoFast` and once through the reference `execAmo`
 * on twin harts and must leave the same registers, memory and reservation. A program then runs
 * AMOs on the fast tier (warm TLB, an AMO into decoded code, a misaligned one) against the
 * reference interpreter.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { I, R, li, place, rType } from "./asm.js";
import { RAM_BASE as BASE, hartWith } from "./harness.js";
import { amoFast, execAmo, ramThreads, validF5 } from "../../../src/backends/soft/riscv/amo.js";
import type { Hart, HartOptions } from "../../../src/backends/soft/riscv/hart.js";

/** funct5 of every defined AMO (unprivileged spec chapter "A", Table "AMO encodings"). */
const F5 = { ADD: 0, SWAP: 1, LR: 2, SC: 3, XOR: 4, OR: 8, AND: 12, MIN: 16, MAX: 20 } as const;
const ALL_F5 = [...Object.values(F5), 24, 28]; // + MINU, MAXU
/** A data page that holds no code (write-TLB entries are made for it). */
const DATA = 0x3000;
const PC = BASE + 0x100;
/** The thread's own setting (false on the test runner's main thread), restored after a case. */
const saved = ramThreads.concurrent;

/** Operand pairs (memory, rs2) around the int32 half boundaries, signed and unsigned. */
const PAIRS: readonly (readonly [bigint, bigint])[] = [
  [0xffffffffn, 1n],
  [-1n, 1n],
  [0x8000000000000000n, 0x7fffffffffffffffn],
  [5n, 5n],
  [0x100000000n, 0xffffffffn],
  [-2n, 3n],
  [0x7fffffff80000000n, 0x7fffffff7fffffffn],
  [0x123456789abcdef0n, -0x123456789abcdef0n],
];

const amo = (f5: number, d: boolean, rd: number, rs1: number, rs2: number): number =>
  rType(0x2f, d ? 3 : 2, f5 << 2, rd, rs1, rs2);

/** A hart over 64 KiB of private or shared RAM, data at DATA, t0 → it, TLB entries for it. */
function twin(shared: boolean, mem: bigint, rs2: bigint): { hart: Hart; ram: Uint8Array } {
  const bytes = shared ? new Uint8Array(new SharedArrayBuffer(1 << 16)) : new Uint8Array(1 << 16);
  const { hart } = hartWith([], { ramSize: 1 << 16 });
  hart.setMemslots([{ slot: 0, gpa: BASE, bytes, readonly: false }]);
  new DataView(bytes.buffer).setBigInt64(DATA, mem, true);
  hart.setX(R.t0, BigInt(BASE + DATA));
  hart.setX(R.t1, BigInt.asUintN(64, rs2));
  hart.setX(R.a0, 0x1111n);
  const c = hart.core;
  const slot = c.mem.find(BASE + DATA);
  assert.ok(slot !== null);
  c.tr.fill(BASE + DATA, 0, BASE + DATA, slot, 12, false);
  c.tw.fill(BASE + DATA, 0, BASE + DATA, slot, 12, false);
  return { hart, ram: bytes };
}

/** Everything an AMO may change: x1..x31, the data word pair, the reservation. */
function state(hart: Hart, ram: Uint8Array): string {
  const c = hart.core;
  const x = Array.from({ length: 31 }, (_, i) => hart.getX(i + 1).toString(16));
  const data = new DataView(ram.buffer).getBigUint64(DATA, true).toString(16);
  return JSON.stringify({ x, data, res: [c.resAddr, c.resLo, c.resHi], pc: c.pc });
}

describe("amoFast (fast-interpreter AMOs on int32 halves)", () => {
  it("validF5() accepts exactly the defined funct5 values, LR only with rs2 = 0", () => {
    for (let f5 = 0; f5 < 32; f5++) {
      assert.equal(validF5(f5, 0), ALL_F5.includes(f5), `f5 ${f5}`);
      assert.equal(validF5(f5, 3), ALL_F5.includes(f5) && f5 !== F5.LR, `f5 ${f5} rs2 3`);
    }
  });

  for (const [shared, concurrent] of [
    [false, false],
    [true, false],
    [true, true],
  ] as const) {
    const ramKind = shared ? `shared (${concurrent ? "threaded" : "inline"})` : "private";
    it(`ends every AMO on ${ramKind} RAM exactly as execAmo does`, (t) => {
      ramThreads.concurrent = concurrent;
      t.after(() => (ramThreads.concurrent = saved));
      let ran = 0;
      for (const f5 of ALL_F5) {
        for (const d of [false, true]) {
          for (const [mem, rs2] of PAIRS) {
            // SC: with a matching reservation, a stale value, another address, none.
            const reservations: (readonly [number, bigint] | null)[] =
              f5 === F5.SC
                ? [[BASE + DATA, mem], [BASE + DATA, mem + 1n], [BASE, mem], null]
                : [null];
            for (const res of reservations) {
              for (const rd of [R.a0, R.zero, R.t1]) {
                const insn = amo(f5, d, rd, R.t0, f5 === F5.LR ? 0 : R.t1);
                const fast = twin(shared, mem, rs2);
                const ref = twin(shared, mem, rs2);
                for (const { hart } of [fast, ref]) {
                  const c = hart.core;
                  c.pc = PC;
                  if (res !== null) {
                    const v = BigInt.asIntN(64, d ? res[1] : BigInt.asIntN(32, res[1]));
                    c.resAddr = res[0];
                    c.resLo = Number(BigInt.asIntN(32, v));
                    c.resHi = Number(BigInt.asIntN(32, v >> 32n));
                  }
                }
                const what = `f5 ${f5} ${d ? "d" : "w"} mem ${mem} rs2 ${rs2} rd ${rd} res ${String(res)}`;
                const handled = amoFast(
                  fast.hart.core,
                  f5 | (d ? 32 : 0),
                  2 * rd,
                  2 * R.t0,
                  2 * R.t1,
                );
                const declines = concurrent && d && f5 !== F5.LR;
                assert.equal(handled, !declines, what);
                if (!handled) {
                  assert.equal(
                    state(fast.hart, fast.ram),
                    state(ref.hart, ref.ram),
                    `${what}: untouched`,
                  );
                  continue;
                }
                ran++;
                fast.hart.core.pc = PC + 4; // the fast loop carries the pc itself
                assert.ok(execAmo(ref.hart.core, insn, PC));
                assert.equal(state(fast.hart, fast.ram), state(ref.hart, ref.ram), what);
              }
            }
          }
        }
      }
      assert.ok(ran > 300, `${ran} cases ran through amoFast`);
    });
  }

  it("declines a misaligned address or a TLB miss, changing nothing", () => {
    for (const [addr, warm] of [
      [BASE + DATA + 4, true], // doubleword at a word boundary
      [BASE + DATA + 2, true],
      [BASE + DATA, false],
    ] as const) {
      const { hart, ram } = twin(false, 7n, 1n);
      if (!warm) hart.core.tw.flush();
      hart.setX(R.t0, BigInt(addr));
      const before = state(hart, ram);
      assert.equal(amoFast(hart.core, F5.ADD | 32, 2 * R.a0, 2 * R.t0, 2 * R.t1), false);
      assert.equal(state(hart, ram), before);
    }
  });
});

const TIERS: readonly (readonly [string, HartOptions])[] = [
  ["fast interpreter", { translate: true, hotThreshold: 1e9 }],
  ["reference interpreter", { translate: false }],
];

/**
 * A loop of LR/SC and AMOs on a data page the stores have put in the TLB, then an amoswap.w
 * that writes the next instruction of the running page (decoded code: the fast tier must run the
 * new one), then a misaligned amoadd.d, which traps to stvec = the ecall at TRAP.
 */
function amoProgram(ram: Uint8Array): void {
  const TRAP = 0x800;
  const data = BigInt(BASE + DATA);
  const loop = [
    I.sd(R.t1, R.t0, 0),
    I.ld(R.a1, R.t0, 0),
    amo(F5.LR, true, R.a2, R.t0, 0),
    amo(F5.SC, true, R.a3, R.t0, R.t1),
    amo(F5.ADD, true, R.a4, R.t0, R.t1),
    amo(F5.MAX, false, R.a5, R.t0, R.t2),
    amo(24, true, R.a6, R.t0, R.t2),
    amo(F5.LR, false, R.a7, R.t0, 0),
    amo(F5.SC, false, R.s2, R.t0, R.t2),
    amo(F5.XOR, true, R.s3, R.t0, R.t2),
    I.add(R.t1, R.t1, R.a4),
    I.addi(R.s1, R.s1, -1),
  ];
  const head = [
    ...li(R.t0, data),
    ...li(R.t1, 0x7ffffffffffffff0n),
    ...li(R.t2, -0x80000001n),
    ...li(R.s4, BigInt(BASE + TRAP)),
    I.csrrw(R.zero, 0x105, R.s4), // stvec
    I.addi(R.s1, R.zero, 5),
  ];
  const back = -4 * loop.length;
  const tail = [
    ...li(R.s5, BigInt(I.addi(R.s6, R.zero, 9))),
    I.addi(R.s6, R.zero, 1),
    // s4 = the address of the `addi s6, zero, 1` that follows the amoswap.w.
    I.jal(R.s4, 4),
    I.addi(R.s4, R.s4, 8),
    rType(0x2f, 2, F5.SWAP << 2, R.s7, R.s4, R.s5),
    I.addi(R.s6, R.zero, 1),
    I.addi(R.t0, R.t0, 4),
    amo(F5.ADD, true, R.s8, R.t0, R.t1),
    I.ecall(),
  ];
  place(ram, 0, [...head, ...loop, I.bne(R.s1, R.zero, back), ...tail]);
  place(ram, TRAP, [I.ecall()]);
}

describe("AMOs on the fast tier", () => {
  const results: string[] = [];
  for (const [name, options] of TIERS) {
    it(`${name}: LR/SC/AMOs, an AMO into decoded code and a misaligned AMO`, () => {
      const { hart, ram } = hartWith([], options);
      amoProgram(ram);
      assert.equal(hart.run(1e5).kind, "ecall");
      assert.equal(hart.getX(R.s6), 9n, "the instruction the AMO wrote ran");
      assert.equal(hart.core.pc, BASE + 0x800, "the misaligned amoadd.d trapped to stvec");
      assert.equal(hart.getX(R.s1), 0n, "the loop ran out");
      results.push(state(hart, ram));
      if (results.length === TIERS.length) assert.equal(results[0], results[1]);
    });
  }
});
