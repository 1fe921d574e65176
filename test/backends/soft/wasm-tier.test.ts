/**
 * The WebAssembly tier (wasm-tier.ts): hot regions compile to wasm, share the hart's register
 * file, and every exit (MMIO, rewritten code, division edge cases, budget ends inside loops)
 * leaves exactly the state the reference interpreter leaves. The random differential cases are
 * in fuzz.test.ts; the test guests run on this tier in cpu-guests.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { I, R, li, rType } from "./asm.js";
import { RAM_BASE as BASE, hartWith } from "./harness.js";
import type { Hart, HartOptions } from "../../../src/backends/soft/riscv/hart.js";
import { tierFromEnv } from "../../../src/backends/soft/riscv/hart.js";
import {
  generatedRegs,
  regionModule,
  regionRegs,
  SlowExits,
  slowExitOf,
  slowStatus,
  ST,
  WASM_REGION_MAX_INSNS,
} from "../../../src/backends/soft/riscv/wasm-tier.js";
import { decodeBlock } from "../../../src/backends/soft/riscv/block.js";
import { DEFAULT_HOT, WARM } from "../../../src/backends/soft/riscv/engine.js";
import { Slot } from "../../../src/backends/soft/riscv/memory.js";
import { FnBuilder, sleb } from "../../../src/backends/soft/riscv/wasm-encode.js";

const WASM: HartOptions = { translate: true, hotThreshold: 1, tier: "wasm" };
/** The wasm tier with the default promotion (DEFAULT_HOT visits, weighed every WARM). */
const WASM_DEFAULT_HOT: HartOptions = { translate: true, tier: "wasm" };
const REFERENCE: HartOptions = { translate: false };
/** An address outside RAM: loads there are MMIO exits. */
const MMIO = 0x1000_0000n;

const div =
  (f3: number, word = false) =>
  (rd: number, a: number, b: number) =>
    rType(word ? 0x3b : 0x33, f3, 1, rd, a, b);
const sub = (rd: number, a: number, b: number): number => rType(0x33, 0, 0x20, rd, a, b);

/** Architectural state a run leaves: stop, pc, instret, x1..x31. */
function state(hart: Hart, budget: number): string {
  const stop = hart.run(budget);
  const x = Array.from({ length: 31 }, (_, i) => hart.getX(i + 1).toString(16));
  const big = (_: string, v: unknown): unknown => (typeof v === "bigint" ? v.toString(16) : v);
  return JSON.stringify({ stop, pc: hart.getPc().toString(16), n: String(hart.instret), x }, big);
}

/** Runs `code` on the reference interpreter and on the wasm tier; both states must agree. */
function same(code: number[], budget = 1e5): Hart {
  const ref = hartWith(code, REFERENCE).hart;
  const wasm = hartWith(code, WASM).hart;
  assert.equal(state(wasm, budget), state(ref, budget));
  assert.ok(wasm.stats.compiled >= 1, "the wasm tier compiled the code");
  return wasm;
}

/** `n` iterations of `body` (counter s11), then `tail`. */
function loop(n: number, body: number[], tail: number[] = [I.ecall()]): number[] {
  return [
    ...li(R.s11, BigInt(n)),
    ...body,
    I.addi(R.s11, R.s11, -1),
    I.bne(R.s11, R.zero, -4 * (body.length + 1)),
    ...tail,
  ];
}

describe("wasm tier", () => {
  it("tierFromEnv() defaults to wasm, takes js or wasm and refuses anything else in one line", () => {
    assert.equal(tierFromEnv(undefined), "wasm");
    assert.equal(tierFromEnv(""), "wasm");
    assert.equal(tierFromEnv("js"), "js");
    assert.equal(tierFromEnv("wasm"), "wasm");
    assert.throws(
      () => tierFromEnv("jit"),
      (e: unknown) =>
        e instanceof RangeError &&
        e.message ===
          'Cannot create a soft hart: REGVISOR_SOFT_TIER is "jit"; set it to "js" or "wasm", or unset it',
    );
  });

  it("a region's module is valid wasm, and the register file is the hart's wasm memory", () => {
    const ram = new Uint8Array(8192);
    const slot = new Slot({ slot: 0, gpa: BASE, bytes: ram, readonly: false });
    const code = loop(3, [I.addi(R.a0, R.a0, 1), I.ld(R.a1, R.sp, 8)]);
    new DataView(ram.buffer, ram.byteOffset, ram.byteLength).setUint32(0, code[0] ?? 0, true);
    const { bytes } = regionModule([decodeBlock(BASE, BASE, slot)]);
    assert.ok(
      (
        globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }
      ).WebAssembly.validate(bytes),
    );
    const { hart } = hartWith(loop(10, [I.addi(R.a0, R.a0, 3)]), WASM);
    assert.equal(hart.run(1e4).kind, "ecall");
    assert.equal(hart.getX(R.a0), 30n);
    const core = hart.core;
    assert.equal(core.x.buffer, core.area.mem.buffer);
    hart.setX(R.a0, 7n); // written through ONE_REG's path, read by the next compiled run
    hart.setPc(BigInt(BASE));
    assert.equal(hart.run(1e4).kind, "ecall");
    assert.equal(hart.getX(R.a0), 37n);
  });

  it("an MMIO load inside a compiled loop exits with the interpreter's state", () => {
    const wasm = same([
      ...li(R.s0, MMIO),
      ...loop(
        5,
        [I.addi(R.a0, R.a0, 1), I.addi(R.a1, R.a1, 2)],
        [I.addi(R.a2, R.a2, 9), I.lw(R.a3, R.s0, 4), I.addi(R.a4, R.a4, 1)],
      ),
    ]);
    assert.equal(wasm.getX(R.a2), 9n, "instructions before the load retired");
    assert.equal(wasm.getX(R.a4), 0n, "the ones after it did not");
  });

  it("division by zero and INT_MIN / -1 give the RISC-V results, not wasm traps", () => {
    const wasm = same(
      loop(3, [
        ...li(R.t0, -(1n << 63n)),
        ...li(R.t1, -1n),
        div(4)(R.a0, R.t0, R.t1),
        div(6)(R.a1, R.t0, R.t1),
        div(4)(R.a2, R.t0, R.zero),
        div(7)(R.a3, R.t0, R.zero),
        div(4, true)(R.a4, R.t1, R.zero),
        div(5, true)(R.a5, R.t0, R.t1),
        sub(R.a6, R.zero, R.t1),
      ]),
    );
    assert.equal(wasm.getX(R.a0), 1n << 63n);
    assert.equal(wasm.getX(R.a1), 0n);
    assert.equal(wasm.getX(R.a2), (1n << 64n) - 1n);
  });

  it("a store that rewrites the running region ends it after the store (precise SMC)", () => {
    const patch = I.addi(R.a0, R.a0, 5);
    // li's length depends on the value: find the fixed point of "target after the prefix".
    let prefixWords = 0;
    for (let k = 0; k < 4; k++) {
      prefixWords =
        li(R.s0, BigInt(BASE + 4 * prefixWords)).length + li(R.s1, BigInt(patch)).length + 2;
    }
    const target = 4 * prefixWords; // byte offset of the instruction the loop rewrites
    const code = [
      ...li(R.s0, BigInt(BASE + target)),
      ...li(R.s1, BigInt(patch)),
      I.addi(R.s11, R.zero, 4),
      I.sw(R.s1, R.s0, 0),
      I.addi(R.a0, R.a0, 1), // at `target`: replaced by addi a0, a0, 5 on the first pass
      I.addi(R.s11, R.s11, -1),
      I.bne(R.s11, R.zero, -12),
      I.ecall(),
    ];
    assert.equal(code.indexOf(I.addi(R.a0, R.a0, 1)), prefixWords);
    const wasm = same(code);
    assert.equal(wasm.getX(R.a0), 20n);
  });

  it("budget ends inside a compiled loop agree with the interpreter at every slice", () => {
    const code = loop(1000, [I.addi(R.a0, R.a0, 1), I.sd(R.a0, R.sp, 0), I.ld(R.a1, R.sp, 0)]);
    const ref = hartWith([...li(R.sp, BigInt(BASE + 0x8000)), ...code], REFERENCE).hart;
    const wasm = hartWith([...li(R.sp, BigInt(BASE + 0x8000)), ...code], WASM).hart;
    for (const budget of [1, 7, 100, 333, 2000])
      assert.equal(state(wasm, budget), state(ref, budget));
  });

  it("number constants encode to the same LEB128 bytes as the BigInt path, inexact sums too", () => {
    const edges = [0, 1, -1, 63, 64, -64, -65, 127, 128, 2 ** 31 - 1, -(2 ** 31), 2 ** 32];
    const values = [...edges, 0x7fff_ffff_f000, -0x8000_0000_0000, 2 ** 53 - 1, -(2 ** 53 - 1)];
    let seed = 12345;
    for (let i = 0; i < 2000; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; // fixed LCG: the same values every run
      values.push(Math.floor((seed / 2 ** 32 - 0.5) * 2 ** (i % 54)));
    }
    for (const v of values) {
      const byNumber = new FnBuilder(0).i64n(v).code;
      const byBigInt: number[] = [0x42];
      sleb(byBigInt, BigInt(v));
      assert.deepEqual(byNumber, byBigInt, `i64.const ${String(v)}`);
      if (Math.abs(v) < 2 ** 31) {
        assert.deepEqual(new FnBuilder(0).i32(v).code.slice(1), byBigInt.slice(1), `i32 ${v}`);
      }
    }
    // pc + 4 beyond 2^53 is not exact as a double: the encoder adds as BigInt then.
    const big: number[] = [0x42];
    sleb(big, BigInt(2 ** 53) + 4n);
    assert.deepEqual(new FnBuilder(0).i64n(2 ** 53, 4).code, big);
  });

  it("a region stops gathering blocks at WASM_REGION_MAX_INSNS (TurboFan's compile time)", () => {
    // A loop of 8 blocks of 40 instructions each, chained by jumps inside one page: 320
    // instructions, one region under the JS tier's 600 cap, at least three under this one.
    const blocks = 8;
    const body: number[] = [];
    for (let b = 0; b < blocks; b++) {
      for (let i = 0; i < 39; i++) body.push(I.addi(R.a0 + (i % 4), R.a0 + (i % 4), b + 1));
      body.push(I.jal(R.zero, 4));
    }
    const wasm = same(loop(20, body));
    assert.ok(WASM_REGION_MAX_INSNS < blocks * 40);
    const least = Math.ceil((blocks * 40) / WASM_REGION_MAX_INSNS);
    assert.ok(wasm.stats.compiled >= least, `${wasm.stats.compiled} regions, want >= ${least}`);
  });

  it("regionRegs() finds the registers a generation pass touches and writes, on random code", () => {
    // The single-pass encoder trusts the scan: a register it missed would be neither loaded
    // nor stored (wrong results), one too many only costs a load. Random words hit every
    // opcode, including ones the tier hands to the interpreter.
    const ram = new Uint8Array(4096);
    const dv = new DataView(ram.buffer);
    const slot = new Slot({ slot: 0, gpa: BASE, bytes: ram, readonly: false });
    let seed = 0x2545f491;
    const next = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) | 0;
      return seed;
    };
    const opcodes = [0x37, 0x17, 0x6f, 0x67, 0x63, 0x03, 0x23, 0x13, 0x1b, 0x33, 0x3b, 0x0f, 0x73];
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 1024; i++) {
        const op = opcodes[(next() >>> 8) % opcodes.length] ?? 0x13;
        dv.setUint32(4 * i, ((next() & ~0x7f) | op) >>> 0, true);
      }
      const blocks = [0, 256, 512].map((off) => decodeBlock(BASE + off, BASE + off, slot));
      for (const inlineMiss of [false, true]) {
        const want = generatedRegs(blocks, inlineMiss);
        const got = regionRegs(blocks);
        assert.deepEqual(got.used, want.used, `round ${round}: used`);
        for (let r = 0; r < 32; r++) {
          assert.equal(got.written[r] === true, want.written[r] === true, `round ${round}: x${r}`);
        }
      }
    }
  });

  it("a long straight loop body is compiled after WARM visits, region after region across the page end", () => {
    // blake2s_compress_generic in a Linux boot: ~2350 straight instructions per iteration,
    // ~3000 iterations, never DEFAULT_HOT visits of any pc. Here 1100 instructions (4400 bytes:
    // the body crosses the page end) run 600 times.
    const body: number[] = [];
    for (let i = 0; i < 1100; i++) body.push(I.addi(R.a0 + (i % 5), R.a0 + ((i + 1) % 5), i));
    const iterations = 600;
    // The back branch cannot reach: a beq over a jal.
    const code = [
      ...li(R.s11, BigInt(iterations)),
      ...body,
      I.addi(R.s11, R.s11, -1),
      I.beq(R.s11, R.zero, 8),
      I.jal(R.zero, -4 * (body.length + 2)),
      I.ecall(),
    ];
    const ref = hartWith(code, REFERENCE).hart;
    const wasm = hartWith(code, WASM_DEFAULT_HOT).hart;
    assert.equal(state(wasm, 1e7), state(ref, 1e7));
    const s: Record<string, unknown> = { ...wasm.stats };
    // Promoted at WARM visits of the loop head; each region's cut-off continuation at its
    // first visit (8 regions per iteration at most 150 instructions each, over two pages).
    const regions = Number(s.compiled);
    assert.ok(regions >= Math.ceil(1100 / WASM_REGION_MAX_INSNS), `${String(regions)} regions`);
    const share = Number(s.wasmInsns) / Number(wasm.instret);
    assert.ok(share > (iterations - WARM - 2) / iterations - 0.02, `wasm share ${String(share)}`);
  });

  it("a short loop is still compiled only after DEFAULT_HOT visits", () => {
    const short = hartWith(loop(DEFAULT_HOT - 100, [I.addi(R.a0, R.a0, 1)]), WASM_DEFAULT_HOT);
    assert.equal(short.hart.run(1e6).kind, "ecall");
    assert.equal(short.hart.stats.compiled, 0);
    const hot = hartWith(loop(DEFAULT_HOT + 100, [I.addi(R.a0, R.a0, 1)]), WASM_DEFAULT_HOT);
    assert.equal(hot.hart.run(1e6).kind, "ecall");
    assert.equal(hot.hart.stats.compiled, 1);
  });

  it("a region imports only the helpers it calls (each import costs V8 a wrapper compile)", () => {
    const ram = new Uint8Array(4096);
    const dv = new DataView(ram.buffer);
    const slot = new Slot({ slot: 0, gpa: BASE, bytes: ram, readonly: false });
    const imports = (code: number[], inlineMiss: boolean): string[] => {
      code.forEach((w, i) => {
        dv.setUint32(4 * i, w >>> 0, true);
      });
      const { bytes } = regionModule([decodeBlock(BASE, BASE, slot)], 0, inlineMiss);
      const wasm = (
        globalThis as unknown as {
          WebAssembly: {
            Module: (new (b: Uint8Array) => object) & {
              imports(m: object): { name: string; kind: string }[];
            };
          };
        }
      ).WebAssembly;
      return wasm.Module.imports(new wasm.Module(bytes))
        .filter((i) => i.kind === "function")
        .map((i) => i.name);
    };
    const native = [I.addi(R.a0, R.a0, 1), I.ld(R.a1, R.sp, 8), I.sd(R.a1, R.sp, 16), I.ecall()];
    assert.deepEqual(imports(native, false), []);
    const mulh = rType(0x33, 1, 1, R.a2, R.a0, R.a1); // mulh runs in the interpreter
    assert.deepEqual(imports([mulh, ...native], false), ["ex"]);
    assert.deepEqual(imports(native, true), ["ld", "st", "ex"]);
  });

  it("a TLB-miss exit is named in the hart's SlowExits, not stored in wasm: a load is <= 72 bytes", () => {
    // Region creation cost on a Linux boot scales with the bytes V8 validates and Liftoff
    // compiles; loads and stores were 120 KB of the 190 KB per boot, at 94 bytes for a probed
    // load and 126 for a store reusing the previous probe when each miss exit stored its pc.
    const ram = new Uint8Array(4096);
    const dv = new DataView(ram.buffer);
    const slot = new Slot({ slot: 0, gpa: BASE, bytes: ram, readonly: false });
    const gen = (code: number[], exits = new SlowExits()): number => {
      code.forEach((w, i) => {
        dv.setUint32(4 * i, w >>> 0, true);
      });
      return regionModule([decodeBlock(BASE, BASE, slot)], 0, false, exits).bytes.length;
    };
    const bases = [R.a0, R.a1, R.a2, R.a3, R.a4, R.a5, R.a6, R.a7, R.t0];
    const loads = (n: number): number[] => [
      ...bases.slice(0, n).map((r, i) => I.ld(R.s1, r, 8 * i)),
      I.ecall(),
    ];
    const stores = (n: number): number[] => [
      ...bases.slice(0, n).map((r, i) => I.sd(r, R.s2, 8 * i)),
      I.ecall(),
    ];
    const load = gen(loads(9)) - gen(loads(8));
    const store = gen(stores(9)) - gen(stores(8));
    assert.ok(load <= 72, `a probed load takes ${load} bytes`);
    assert.ok(store <= 104, `a store after a store on the same base takes ${store} bytes`);
    // Every access has one exit, in program order, with the instructions retired before it; ids
    // go on across regions (the table is the hart's).
    const exits = new SlowExits();
    gen([I.addi(R.a0, R.a0, 1), I.ld(R.a1, R.sp, 8), I.sd(R.a1, R.sp, 16), I.ecall()], exits);
    gen(loads(1), exits);
    assert.deepEqual(exits.pc, [BASE + 4, BASE + 8, BASE]);
    assert.deepEqual(exits.done, [1, 2, 0]);
    assert.equal(slowExitOf(slowStatus(2)), 2);
    for (const st of [ST.OK, ST.EXC, ST.DIRTY, ST.SLOW]) assert.equal(slowExitOf(st), -1);
  });
});
