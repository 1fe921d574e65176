/**
 * The fast interpreter: the tier that runs cold code (everything not yet compiled) when the
 * engine translates. It executes the decode cache's words (predecode.ts) in one loop, with the
 * page and the offset in it in locals:
 *
 * - at a taken branch or jump it counts the target's heat, as the engine does at a boundary, and
 *   goes on there while the target stays below `hot` and its page is this one or one the decode
 *   cache has looked up for the current map and mode (a Linux boot: 1.1 M calls became 0.32 M);
 *   otherwise it returns there (the engine counts that visit, finds or compiles the region);
 * - it returns after a trap or a stop (MMIO, ecall, WFI, fault), after a SYSTEM instruction or
 *   fence.i that made an interrupt ready, moved the deadline, jumped, or changed the mode, the
 *   map or the code (else it goes on as at a cold jump target), at the page end, when a store dropped the running page (self-modifying code: the next instruction
 *   is decoded afresh), and after `FAST_SLICE` instructions;
 * - loads and stores use the interpreter's TLB fast paths and slow paths (interp.ts,
 *   access.ts), AMOs and LR/SC amo.ts's `amoFast` on a TLB hit, everything not inlined here
 *   (FP, SYSTEM, illegal encodings, AMOs `amoFast` declines) runs in the reference `exec`, and a page-straddling instruction in the reference `step`, so every trap
 *   and exit leaves the state the reference interpreter would.
 *
 * The reference interpreter stays the oracle: the engine without translation runs `step` only,
 * and the differential fuzzer (test/backends/soft/fuzz.ts) compares the two.
 */
import type { Core } from "./core.js";
import { loadSlow, MMIO_TAG, storeSlow } from "./access.js";
import { amoFast } from "./amo.js";
import { div32, div64, I64, mul64, mulh64, TWO32 } from "./i64.js";
import { exec, execSystem, step } from "./interp.js";
import { K, type DecodeCache } from "./predecode.js";
import { EMPTY_VIEW } from "./tlb.js";

/**
 * Most instructions one call runs: bounds how long the engine goes without looking at the
 * timer deadline and the watched word (a call goes on across cold jump targets).
 */
export const FAST_SLICE = 512;
/**
 * The same while a timer deadline is pending (`Core.timerDueAt`): the engine looks at the clock
 * every 32 dispatches (engine.ts TIMER_DISPATCHES), so this bounds a due `stimecmp`'s wait to
 * ~8 K instructions (well under a millisecond). Linux always has a deadline pending, and since
 * a call goes on across cold jump targets most boot calls end here: 64 measured 213 K of 324 K
 * calls per boot ending at the slice.
 */
export const FAST_SLICE_TIMER = 256;

/** What the last `runFast` call ended at: a control-flow boundary (true) or not. */
export const fastEnd = { boundary: false };

/**
 * The virtual address of the page the running `runFast` call executes (set at its entry and at
 * every page change): an instruction's pc is `at.base + 2 * idx`. A field, not a local: V8
 * value-numbers the one `base + 2 * idx` of a local `base` across the switch's cases (the
 * slow-path calls, the exits) and schedules it, with its int32 test for the calls' boxing,
 * before the switch, on every instruction (perf annotate of a Linux boot put up to ~16 % of
 * runFast's own samples there, an upper bound: timer sampling skids past slow loads); a field
 * load in each case is a value of its own. NaN: a double field from the start (a small
 * integer first would change the field's representation later).
 */
const at = { base: Number.NaN };

/**
 * Runs instructions from `c.pc` until a boundary (see the module comment), at most
 * `budget` (≥ 1) of them; returns the instructions attempted (retired ones are added to
 * `c.icount`; a trapping one counts as attempted, as in the engine's budget). `heat` and `hot`
 * are the engine's boundary-visit counters (indexed by pc bits 1..) and promotion threshold.
 */
export function runFast(
  c: Core,
  dc: DecodeCache,
  budget: number,
  heat: Uint16Array,
  hot: number,
): number {
  const pc0 = c.pc;
  const lo = pc0 | 0;
  if (Number.isNaN(pc0) || (lo & 1) !== 0) return reference(c);
  let p = dc.pageFor(lo >>> 12, Math.floor(pc0 / TWO32) | 0);
  if (p === null) {
    if (c.exc) {
      // The fetch trapped (delivered) or stopped: that was this attempt.
      fastEnd.boundary = true;
      return 1;
    }
    return reference(c);
  }
  const x = c.x;
  let code = p.code;
  // The loop carries no pc: the instruction's pc is `at.base + 2 * idx`, computed where it is
  // needed, and the running page's address as int32 words. A double carried from iteration to
  // iteration and also passed to calls was kept boxed by V8, one heap number per instruction
  // (measured: 250 MB allocated per 20 M instructions, a scavenge every ~0.3 M).
  at.base = pc0 - (lo & 4095);
  /** Low and high words of the page's address (pcs, heat hashing, page lookups). */
  let baseLo = lo & -4096;
  let baseHi = Math.floor(pc0 / TWO32) | 0;
  /** Set by a taken branch or jump, whose target is `at.base + off`. */
  let jumped = false;
  let off = 0;
  const tr = c.tr;
  const tw = c.tw;
  const due = c.timerDueAt;
  const slice = due === Infinity ? FAST_SLICE : FAST_SLICE_TIMER;
  const max = budget < slice ? budget : slice;
  let idx = (lo & 4095) >>> 1;
  let n = 0;
  /** Instructions of this run already added to `c.icount` (before an `exec`, see there). */
  let done = 0;
  for (;;) {
    let w = code[2 * idx] ?? 0;
    if (w === 0) w = dc.decode(p, idx);
    const imm = code[2 * idx + 1] ?? 0;
    const len = 2 + ((w >>> 6) & 2);
    const rd2 = (w >>> 7) & 62;
    const a = (w >>> 12) & 62;
    const b = (w >>> 17) & 62;
    const alo = x[a] ?? 0;
    const ahi = x[a + 1] ?? 0;
    // rs2 of every kind, read up front like rs1 (one pair of loads rather than one per case).
    const blo = x[b] ?? 0;
    const bhi = x[b + 1] ?? 0;
    n++;
    // Every case is inline: a call with an int32 outside V8's 31-bit small-integer range
    // boxes it (a heap allocation), and register halves and addresses mostly are outside it.
    // Kinds are literals, each checked against K by `satisfies`: V8 makes a jump table only
    // of literal case labels, and `case K.X` compiled to a chain of compares that each loaded
    // the imported K through its module cell (hole check, map check, field load); measured
    // on straight-line runs of one kind: ADDW 13.4 → 6.9 ns, ADDI 11.0 → 6.7, LD 16.3 → 13.8.
    let rlo = 0;
    let rhi = 0;
    // Cases that write no register (or write it themselves) leave the block with `break wb`.
    wb: {
      switch (w & 127) {
        case 1 satisfies typeof K.NOP:
          break wb;
        case 2 satisfies typeof K.LUI:
          rlo = imm;
          rhi = imm >> 31;
          break;
        case 3 satisfies typeof K.AUIPC: {
          // pc + imm in int32 words: the page's low word has bits 0..11 clear.
          const t = baseLo | (2 * idx);
          const r = (t + imm) | 0;
          rlo = r;
          rhi = (baseHi + (imm >> 31) + (r >>> 0 < t >>> 0 ? 1 : 0)) | 0;
          break;
        }
        case 4 satisfies typeof K.JAL: {
          if (rd2 !== 0) {
            const t = baseLo | (2 * idx);
            const ret = (t + len) | 0;
            x[rd2] = ret;
            x[rd2 + 1] = (baseHi + (ret >>> 0 < t >>> 0 ? 1 : 0)) | 0;
          }
          off = 2 * idx + imm;
          jumped = true;
          break wb;
        }
        case 5 satisfies typeof K.JALR: {
          const tlo = (alo + imm) | 0;
          const thi = (ahi + (imm >> 31) + (tlo >>> 0 < alo >>> 0 ? 1 : 0)) | 0;
          if (rd2 !== 0) {
            const t = baseLo | (2 * idx);
            const ret = (t + len) | 0;
            x[rd2] = ret;
            x[rd2 + 1] = (baseHi + (ret >>> 0 < t >>> 0 ? 1 : 0)) | 0;
          }
          // The offset from the page stays an int32 (a double one, shared with the branches, made
          // every jump convert to and from float64): a target more than 2 GiB away, or in another
          // 4 GiB (kernel <-> user, a pc past 2^53), returns to the engine, which counts its heat
          // as here.
          // (The int32 difference is the true one when its sign is the unsigned comparison's.)
          const d = ((tlo & ~1) - baseLo) | 0;
          if (thi !== baseHi || (tlo & ~1) >>> 0 >= baseLo >>> 0 !== d >= 0) {
            c.setPcPair(tlo & ~1, thi);
            return boundary(c, n, done);
          }
          off = d;
          jumped = true;
          break wb;
        }
        case 6 satisfies typeof K.BEQ:
          if (alo === blo && ahi === bhi) {
            off = 2 * idx + imm;
            jumped = true;
          }
          break wb;
        case 7 satisfies typeof K.BNE:
          if (alo !== blo || ahi !== bhi) {
            off = 2 * idx + imm;
            jumped = true;
          }
          break wb;
        case 8 satisfies typeof K.BLT: {
          if (ahi < bhi || (ahi === bhi && alo >>> 0 < blo >>> 0)) {
            off = 2 * idx + imm;
            jumped = true;
          }
          break wb;
        }
        case 9 satisfies typeof K.BGE: {
          if (!(ahi < bhi || (ahi === bhi && alo >>> 0 < blo >>> 0))) {
            off = 2 * idx + imm;
            jumped = true;
          }
          break wb;
        }
        case 10 satisfies typeof K.BLTU: {
          const ubhi = bhi >>> 0;
          const uhi = ahi >>> 0;
          if (uhi < ubhi || (uhi === ubhi && alo >>> 0 < blo >>> 0)) {
            off = 2 * idx + imm;
            jumped = true;
          }
          break wb;
        }
        case 11 satisfies typeof K.BGEU: {
          const ubhi = bhi >>> 0;
          const uhi = ahi >>> 0;
          if (!(uhi < ubhi || (uhi === ubhi && alo >>> 0 < blo >>> 0))) {
            off = 2 * idx + imm;
            jumped = true;
          }
          break wb;
        }
        case 12 satisfies typeof K.LB:
        case 13 satisfies typeof K.LH:
        case 14 satisfies typeof K.LW:
        case 15 satisfies typeof K.LD:
        case 16 satisfies typeof K.LBU:
        case 17 satisfies typeof K.LHU:
        case 18 satisfies typeof K.LWU: {
          const f3 = (w & 127) - (12 satisfies typeof K.LB);
          const size = 1 << (f3 & 3);
          const vlo = (alo + imm) | 0;
          const vhi = (ahi + (imm >> 31) + (vlo >>> 0 < alo >>> 0 ? 1 : 0)) | 0;
          const ti = (vlo >>> 12) & 255;
          if (tr.tagLo[ti] === (vlo & (-4096 | (size - 1))) && tr.tagHi[ti] === vhi) {
            const dv = tr.dv[ti] ?? EMPTY_VIEW;
            const off = (tr.off[ti] ?? 0) + (vlo & 4095);
            if (rd2 === 0) break wb;
            // Four reads rather than one per kind (a smaller graph): LB/LH sign-extend by
            // shifts, LWU's high word is zero.
            if (f3 === 3) {
              rlo = dv.getInt32(off, true);
              rhi = dv.getInt32(off + 4, true);
            } else {
              if (size === 4) rlo = dv.getInt32(off, true);
              else {
                const sh = f3 < 4 ? 32 - 8 * size : 0;
                rlo = ((size === 2 ? dv.getUint16(off, true) : dv.getUint8(off)) << sh) >> sh;
              }
              rhi = f3 < 4 ? rlo >> 31 : 0;
            }
            break;
          }
          if (loadMiss(c, rd2, f3, vlo, vhi, at.base + 2 * idx, len)) return trapped(c, n, done);
          break wb;
        }
        case 19 satisfies typeof K.SB:
        case 20 satisfies typeof K.SH:
        case 21 satisfies typeof K.SW:
        case 22 satisfies typeof K.SD: {
          const f3 = (w & 127) - (19 satisfies typeof K.SB);
          const size = 1 << f3;
          const vlo = (alo + imm) | 0;
          const vhi = (ahi + (imm >> 31) + (vlo >>> 0 < alo >>> 0 ? 1 : 0)) | 0;
          const ti = (vlo >>> 12) & 255;
          if (tw.tagLo[ti] === (vlo & (-4096 | (size - 1))) && tw.tagHi[ti] === vhi) {
            // Write entries never map a page holding decoded or translated code (tlb.ts).
            const dv = tw.dv[ti] ?? EMPTY_VIEW;
            const off = (tw.off[ti] ?? 0) + (vlo & 4095);
            const v = blo;
            if (f3 === 0) dv.setInt8(off, v);
            else if (f3 === 1) dv.setInt16(off, v, true);
            else {
              dv.setInt32(off, v, true);
              if (f3 === 3) dv.setInt32(off + 4, bhi, true);
            }
            break wb;
          }
          if (storeSlow(c, vlo, vhi, size, blo, bhi, at.base + 2 * idx, len))
            return trapped(c, n, done);
          if (!p.valid) {
            c.pc = at.base + 2 * idx + len;
            return sequential(c, n, done);
          }
          break wb;
        }
        case 23 satisfies typeof K.ADDI: {
          const r = (alo + imm) | 0;
          rhi = (ahi + (imm >> 31) + (r >>> 0 < alo >>> 0 ? 1 : 0)) | 0;
          rlo = r;
          break;
        }
        case 24 satisfies typeof K.SLTI:
          rlo = ahi < imm >> 31 || (ahi === imm >> 31 && alo >>> 0 < imm >>> 0) ? 1 : 0;
          rhi = 0;
          break;
        case 25 satisfies typeof K.SLTIU: {
          const ih = (imm >> 31) >>> 0;
          rlo = ahi >>> 0 < ih || (ahi >>> 0 === ih && alo >>> 0 < imm >>> 0) ? 1 : 0;
          rhi = 0;
          break;
        }
        case 26 satisfies typeof K.XORI:
          rlo = alo ^ imm;
          rhi = ahi ^ (imm >> 31);
          break;
        case 27 satisfies typeof K.ORI:
          rlo = alo | imm;
          rhi = ahi | (imm >> 31);
          break;
        case 28 satisfies typeof K.ANDI:
          rlo = alo & imm;
          rhi = ahi & (imm >> 31);
          break;
        case 29 satisfies typeof K.SLLI:
        case 38 satisfies typeof K.SLL: {
          const sh = (w & 127) === (29 satisfies typeof K.SLLI) ? imm : blo & 63;
          if (sh === 0) {
            rlo = alo;
            rhi = ahi;
          } else if (sh < 32) {
            rlo = alo << sh;
            rhi = (ahi << sh) | (alo >>> (32 - sh));
          } else {
            rlo = 0;
            rhi = alo << (sh - 32);
          }
          break;
        }
        case 30 satisfies typeof K.SRLI:
        case 42 satisfies typeof K.SRL: {
          const sh = (w & 127) === (30 satisfies typeof K.SRLI) ? imm : blo & 63;
          if (sh === 0) {
            rlo = alo;
            rhi = ahi;
          } else if (sh < 32) {
            rlo = (alo >>> sh) | (ahi << (32 - sh));
            rhi = ahi >>> sh;
          } else {
            rlo = ahi >>> (sh - 32);
            rhi = 0;
          }
          break;
        }
        case 31 satisfies typeof K.SRAI:
        case 43 satisfies typeof K.SRA: {
          const sh = (w & 127) === (31 satisfies typeof K.SRAI) ? imm : blo & 63;
          if (sh === 0) {
            rlo = alo;
            rhi = ahi;
          } else if (sh < 32) {
            rlo = (alo >>> sh) | (ahi << (32 - sh));
            rhi = ahi >> sh;
          } else {
            rlo = ahi >> (sh - 32);
            rhi = ahi >> 31;
          }
          break;
        }
        case 32 satisfies typeof K.ADDIW: {
          const r = (alo + imm) | 0;
          rlo = r;
          rhi = r >> 31;
          break;
        }
        case 33 satisfies typeof K.SLLIW: {
          const r = alo << imm;
          rlo = r;
          rhi = r >> 31;
          break;
        }
        case 34 satisfies typeof K.SRLIW: {
          const r = (alo >>> imm) | 0;
          rlo = r;
          rhi = r >> 31;
          break;
        }
        case 35 satisfies typeof K.SRAIW: {
          const r = alo >> imm;
          rlo = r;
          rhi = r >> 31;
          break;
        }
        case 36 satisfies typeof K.ADD: {
          const r = (alo + blo) | 0;
          rhi = (ahi + bhi + (r >>> 0 < alo >>> 0 ? 1 : 0)) | 0;
          rlo = r;
          break;
        }
        case 37 satisfies typeof K.SUB: {
          rhi = (ahi - bhi - (alo >>> 0 < blo >>> 0 ? 1 : 0)) | 0;
          rlo = (alo - blo) | 0;
          break;
        }
        case 39 satisfies typeof K.SLT: {
          rlo = ahi < bhi || (ahi === bhi && alo >>> 0 < blo >>> 0) ? 1 : 0;
          rhi = 0;
          break;
        }
        case 40 satisfies typeof K.SLTU: {
          rlo = ahi >>> 0 < bhi >>> 0 || (ahi === bhi && alo >>> 0 < blo >>> 0) ? 1 : 0;
          rhi = 0;
          break;
        }
        case 41 satisfies typeof K.XOR:
          rlo = alo ^ blo;
          rhi = ahi ^ bhi;
          break;
        case 44 satisfies typeof K.OR:
          rlo = alo | blo;
          rhi = ahi | bhi;
          break;
        case 45 satisfies typeof K.AND:
          rlo = alo & blo;
          rhi = ahi & bhi;
          break;
        case 54 satisfies typeof K.ADDW: {
          const r = (alo + blo) | 0;
          rlo = r;
          rhi = r >> 31;
          break;
        }
        case 55 satisfies typeof K.SUBW: {
          const r = (alo - blo) | 0;
          rlo = r;
          rhi = r >> 31;
          break;
        }
        case 56 satisfies typeof K.SLLW: {
          const r = alo << (blo & 31);
          rlo = r;
          rhi = r >> 31;
          break;
        }
        case 57 satisfies typeof K.SRLW: {
          const r = (alo >>> (blo & 31)) | 0;
          rlo = r;
          rhi = r >> 31;
          break;
        }
        case 58 satisfies typeof K.SRAW: {
          const r = alo >> (blo & 31);
          rlo = r;
          rhi = r >> 31;
          break;
        }
        case 59 satisfies typeof K.MULW: {
          const r = Math.imul(alo, blo);
          rlo = r;
          rhi = r >> 31;
          break;
        }
        case 67 satisfies typeof K.AMO:
        case 64 satisfies typeof K.EXEC:
          // An AMO amoFast declines (TLB miss, misaligned, shared doubleword) runs in exec.
          if ((w & 127) === (67 satisfies typeof K.AMO) && amoFast(c, (w >>> 23) & 63, rd2, a, b))
            break wb;
          // CSR reads of instret/cycle inside exec see every instruction retired before.
          c.icount += n - 1 - done;
          done = n - 1;
          exec(c, imm, (w & 128) !== 0 ? imm : (w >>> 8) & 0xffff, at.base + 2 * idx, len);
          if (c.exc) return trapped(c, n, done);
          if (c.stop !== null || !p.valid) {
            c.pc = at.base + 2 * idx + len;
            return sequential(c, n, done);
          }
          break wb;
        case 65 satisfies typeof K.EXEC_END: {
          // CSR reads of instret/cycle inside exec see every instruction retired before.
          c.icount += n - 1 - done;
          done = n - 1;
          execSystem(c, imm, (w & 128) !== 0 ? imm : (w >>> 8) & 0xffff, at.base + 2 * idx, len);
          if (c.exc) return trapped(c, n, done);
          // Goes on at the next instruction, as after a jump to a cold target, when the SYSTEM
          // instruction changed nothing the engine must see first: no stop, no interrupt ready,
          // the same deadline, pc sequential, and this page still what the current map, mode and
          // fence.i epoch fetch (`cachedPage`). Linux saves and restores sstatus.SIE around
          // critical sections: ~27 K of a boot's ~124 K calls ended at a csrr/csrc/csrs.
          const next = idx + (len >>> 1);
          if (
            c.stop !== null ||
            c.irqReady ||
            n >= max ||
            next >= 2048 ||
            c.timerDueAt !== due ||
            c.pc !== at.base + 2 * next ||
            dc.cachedPage(baseLo >>> 12, baseHi) !== p
          ) {
            return boundary(c, n, done);
          }
          const h = ((baseLo + 2 * next) >>> 1) & (heat.length - 1);
          const visits = (heat[h] ?? 0) + 1;
          if (visits >= hot) return boundary(c, n, done);
          heat[h] = visits;
          idx = next;
          continue;
        }
        case 66 satisfies typeof K.STRADDLE:
          c.pc = at.base + 2 * idx;
          c.icount += n - 1 - done;
          step(c);
          fastEnd.boundary = true;
          return n;
        default:
          // MUL, MULH*, DIV*, REM* and their W forms: helpers (i64.ts).
          muldiv(x, w & 127, rd2, a, b);
          break wb;
      }
      // The ALU kinds above leave their result here: one pair of stores for all of them, so the
      // switch's cases are pure arithmetic (a smaller graph for TurboFan to optimize).
      x[rd2] = rlo;
      x[rd2 + 1] = rhi;
    }
    if (jumped) {
      // A taken branch or jump: go on at the target without returning to the engine while it
      // is cold (its heat stays below `hot` after counting this visit, exactly as the engine
      // would count it) and its page is this one or an already looked-up one.
      jumped = false;
      const tlo = (baseLo + off) | 0;
      if (n >= max) {
        c.pc = at.base + off;
        return boundary(c, n, done);
      }
      const h = (tlo >>> 1) & (heat.length - 1);
      const visits = (heat[h] ?? 0) + 1;
      if (visits >= hot) {
        c.pc = at.base + off;
        return boundary(c, n, done);
      }
      if (off < 0 || off >= 4096) {
        const target = at.base + off;
        const thi = Math.floor(target / TWO32) | 0;
        const q = dc.cachedPage(tlo >>> 12, thi);
        if (q === null) {
          c.pc = target;
          return boundary(c, n, done);
        }
        p = q;
        code = q.code;
        at.base = target - (tlo & 4095);
        baseLo = tlo & -4096;
        baseHi = thi;
      }
      heat[h] = visits;
      idx = (tlo & 4095) >>> 1;
      continue;
    }
    idx += len >>> 1;
    if (idx >= 2048 || n >= max) {
      c.pc = at.base + 2 * idx;
      return sequential(c, n, done);
    }
  }
}

/** A page the cache cannot hold, or an unfetchable pc: one reference step. */
function reference(c: Core): number {
  step(c);
  fastEnd.boundary = true;
  return 1;
}

/**
 * Ends the run with `n` attempts all retired (`done` of them already counted), `c.pc` already
 * set by a jump or `exec`.
 */
function boundary(c: Core, n: number, done: number): number {
  c.icount += n - done;
  fastEnd.boundary = true;
  return n;
}

/** Ends the run in sequential flow (page end, slice end, code dropped, a stop); pc set. */
function sequential(c: Core, n: number, done: number): number {
  c.icount += n - done;
  fastEnd.boundary = false;
  return n;
}

/** The n-th attempt trapped or stopped (pc set by the trap or the stop): n - 1 retired. */
function trapped(c: Core, n: number, done: number): number {
  c.icount += n - 1 - done;
  fastEnd.boundary = true;
  return n;
}

/** Writes a loaded value to x[rd] extended as load `f3` (LB, LH, LW, LD, LBU, LHU, LWU). */
function loadResult(x: Int32Array, rd2: number, f3: number, v: number, hi: number): void {
  switch (f3) {
    case 0:
      x[rd2] = (v << 24) >> 24;
      x[rd2 + 1] = (v << 24) >> 31;
      return;
    case 1:
      x[rd2] = (v << 16) >> 16;
      x[rd2 + 1] = (v << 16) >> 31;
      return;
    case 2:
      x[rd2] = v;
      x[rd2 + 1] = v >> 31;
      return;
    case 3:
      x[rd2] = v;
      x[rd2 + 1] = hi;
      return;
    default:
      x[rd2] = v;
      x[rd2 + 1] = 0;
  }
}

/** A load that missed the read TLB (access.ts `loadSlow`); true if it trapped or stopped. */
function loadMiss(
  c: Core,
  rd2: number,
  f3: number,
  vlo: number,
  vhi: number,
  pc: number,
  len: number,
): boolean {
  const tag = (rd2 >>> 1) | (f3 >= 4 ? MMIO_TAG.UNSIGNED : 0);
  const v = loadSlow(c, vlo, vhi, 1 << (f3 & 3), pc, tag, len);
  if (c.exc) return true;
  if (rd2 !== 0) loadResult(c.x, rd2, f3, v, c.rhi);
  return false;
}

/** The M-extension kinds (rd ≠ x0): semantics as interp.ts `op` and `op32`. */
function muldiv(x: Int32Array, kind: number, rd2: number, a: number, b: number): void {
  const alo = x[a] ?? 0;
  const ahi = x[a + 1] ?? 0;
  const blo = x[b] ?? 0;
  const bhi = x[b + 1] ?? 0;
  let lo: number;
  switch (kind) {
    case K.MUL:
      lo = mul64(alo, ahi, blo, bhi);
      break;
    case K.MULH:
    case K.MULHSU:
    case K.MULHU:
      lo = mulh64(alo, ahi, blo, bhi, kind !== K.MULHU, kind === K.MULH);
      break;
    case K.DIV:
    case K.DIVU:
    case K.REM:
    case K.REMU:
      lo = div64(alo, ahi, blo, bhi, kind === K.DIV || kind === K.REM, kind >= K.REM);
      break;
    case K.DIVW:
    case K.DIVUW:
    case K.REMW:
    case K.REMUW:
      lo = div32(alo, blo, kind === K.DIVW || kind === K.REMW, kind >= K.REMW);
      x[rd2] = lo;
      x[rd2 + 1] = lo >> 31;
      return;
    default:
      throw new Error(`fast interpreter: unknown operation kind ${String(kind)}`);
  }
  x[rd2] = lo;
  x[rd2 + 1] = I64.hi;
}
