/**
 * The block translator: compiles a *region* — a hot block plus the blocks it can reach through
 * static branch/jump targets on the same page — into one JS function with `new Function`
 * (docs/soft-riscv-notes.md §2.3 tier 1). Inside the function a `switch` over block indices
 * replaces the dispatcher for intra-region control flow (loops over several blocks, if/else),
 * and registers stay in locals across blocks (codegen.ts).
 *
 * Contract with the run loop (engine.ts): `region(c, s)` starts at block `s`, runs until
 * control leaves the region, a helper traps or stops, a store rewrites the running code
 * (`c.codeDirty`), or fewer than `c.budget` instructions would remain after another block;
 * it sets `c.pc` and returns the number of instructions retired (a trapping instruction is
 * not counted; `c.exc` tells). Each instruction's pc is a constant, so helpers that trap
 * record the exact sepc. Interrupts are not polled inside: only instructions that never
 * appear in compiled code (CSR writes, sret, traps) can make one deliverable during a run.
 */
import type { Block } from "./block.js";
import type { Core } from "./core.js";
import { loadSlow, storeSlow } from "./access.js";
import { exec } from "./interp.js";
import { I64, div32, div64, mulh64 } from "./i64.js";
import { Gen, addrOf, bImm, branchCond, genPlain, iImm, jImm, pairLit } from "./codegen.js";

/** Helpers the generated code calls (passed in, so the code is a closure over constants). */
const HELPERS = { loadSlow, storeSlow, exec, div32, div64, mulh64, I64 };

/** A compiled region entered at block index `s`; returns instructions retired. */
export type RegionFn = (c: Core, s: number) => number;

/**
 * Default blocks per region. Measured on compute.elf (Node 20.20 / V8 11.3): 1 block ≈ 175
 * MIPS, 4 ≈ 70, 8 ≈ 24 — TurboFan recompiles large state-machine functions for 30-70 ms after
 * every "insufficient type feedback" deopt of a rarely taken path, and runs them in baseline
 * code meanwhile. So regions default to single blocks (a block that branches to its own start
 * still loops inside its function); larger regions stay available for other engines.
 */
export const DEFAULT_REGION_BLOCKS = 1;
/** Most instructions per region (bounds source size and compile time). */
export const REGION_MAX_INSNS = 600;

/** Leaves the current block for `target` after k instructions of it retired. */
function exitTo(g: Gen, target: number, k: number, index: ReadonlyMap<number, number>): void {
  const j = index.get(target);
  if (j !== undefined) {
    g.emit(`done += ${k}; if (done <= lim) { s = ${j}; continue; }`);
    g.writeBack();
    g.emit(`c.pc = ${target}; return done;`);
    return;
  }
  g.writeBack();
  g.emit(`c.pc = ${target}; return done + ${k};`);
}

/** Emits one block as a `case` body. */
function genBlock(g: Gen, b: Block, index: ReadonlyMap<number, number>): void {
  let pc = b.pc;
  const n = b.n;
  for (let k = 0; k < n; k++) {
    const insn = b.insns[k] ?? 0;
    const raw = b.raws[k] ?? 0;
    const len = b.lens[k] ?? 4;
    const op = insn & 0x7f;
    const rd = (insn >>> 7) & 31;
    if (op === 0x63) {
      const cond = branchCond(g, insn);
      if (cond !== null) {
        g.emit(`if (${cond}) {`);
        exitTo(g, pc + bImm(insn), k + 1, index);
        g.emit(`}`);
        pc += len;
        continue;
      }
    } else if (op === 0x6f) {
      const [ll, lh] = pairLit(pc + len);
      g.set(rd, ll, lh);
      exitTo(g, pc + jImm(insn), k + 1, index);
      return;
    } else if (op === 0x67 && ((insn >>> 12) & 7) === 0) {
      const [lo, hi] = addrOf(g, (insn >>> 15) & 31, iImm(insn));
      const [ll, lh] = pairLit(pc + len);
      g.set(rd, ll, lh);
      g.writeBack();
      g.emit(
        `if (${hi} >= -2097152 && ${hi} < 2097152) c.pc = ${hi} * 4294967296 + ((${lo} & -2) >>> 0); else c.setPcPair(${lo} & -2, ${hi});`,
      );
      g.emit(`return done + ${k + 1};`);
      return;
    }
    genPlain(g, insn, raw, pc, len, k);
    pc += len;
  }
  exitTo(g, pc, n, index);
}

/** JS body of a region (exported for tests and debugging). */
export function regionSource(blocks: readonly Block[]): string {
  const index = new Map(blocks.map((b, i) => [b.pc, i]));
  const scan = new Gen(true);
  for (const b of blocks) genBlock(scan, b, index);
  const g = new Gen(false, scan.used, scan.written);
  blocks.forEach((b, i) => {
    g.emit(`case ${i}: {`);
    genBlock(g, b, index);
    g.emit(`}`);
  });
  const maxN = Math.max(...blocks.map((b) => b.n));
  return [
    g.prologue(),
    `let done = 0; const lim = c.budget - ${maxN};`,
    `for (;;) { switch (s) {`,
    g.body(),
    `default: return done;`,
    `} }`,
  ].join("\n");
}

/** JS body of a one-block region. */
export function blockSource(b: Block): string {
  return regionSource([b]);
}

/** Compiles a region to a function bound to this hart's state. */
export function compileRegion(blocks: readonly Block[], c: Core): RegionFn {
  const body = regionSource(blocks);
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- generating JS per region is the translator's design (docs/soft-riscv-notes.md §2.3, tier 1)
  const factory = new Function(
    "x",
    "H",
    "rTL",
    "rTH",
    "rDV",
    "rOF",
    "wTL",
    "wTH",
    "wDV",
    "wOF",
    `"use strict"; return function region(c, s) {\n${body}\n};`,
  ) as (...args: unknown[]) => RegionFn;
  // new Function returns Function; the factory's shape is fixed by the source above.
  return factory(
    c.x,
    HELPERS,
    c.tr.tagLo,
    c.tr.tagHi,
    c.tr.dv,
    c.tr.off,
    c.tw.tagLo,
    c.tw.tagHi,
    c.tw.dv,
    c.tw.off,
  );
}

/** Static successors of a block: branch targets, the final jump's target, the fall-through. */
export function staticTargets(b: Block): number[] {
  const out: number[] = [];
  let pc = b.pc;
  for (let k = 0; k < b.n; k++) {
    const insn = b.insns[k] ?? 0;
    const op = insn & 0x7f;
    if (op === 0x63) out.push(pc + bImm(insn));
    if (k === b.n - 1) {
      if (op === 0x6f) out.push(pc + jImm(insn));
      else if (op !== 0x67) out.push(pc + (b.lens[k] ?? 4));
    }
    pc += b.lens[k] ?? 4;
  }
  return out;
}
