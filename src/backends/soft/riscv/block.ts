/**
 * Basic blocks: straight-line runs of instructions inside one guest-physical page, decoded
 * once (RVC expanded) and, once hot, compiled to a JS function by translate.ts.
 *
 * Conditional branches are side exits: the block continues on the fall-through path (a
 * superblock), which keeps blocks long on compiled loop code. A block ends after a jump
 * (JAL/JALR) or fence.i, before any SYSTEM-opcode instruction (CSR
 * access, ecall, ebreak, sret, wfi, sfence.vma: these run in the interpreter one at a time so
 * `instret`/`cycle` reads and interrupt enables are exact), before an illegal encoding, at the
 * page end, before an instruction that straddles the page end, or at MAX_BLOCK instructions.
 * A block whose first instruction is one of the excluded kinds is a one-instruction
 * "interpret-only" block.
 */
import type { Slot } from "./memory.js";
import type { RegionFn } from "./translate.js";
import { expandRvc } from "./rvc.js";

/** Longest block, in instructions. */
export const MAX_BLOCK = 64;

/** One decoded block. */
export class Block {
  /** Virtual pc of the first instruction (as a signed double). */
  readonly pc: number;
  /** Guest-physical address of the first instruction. */
  readonly pa: number;
  readonly slot: Slot;
  /** Expanded 32-bit instructions, their raw bits and their lengths (2 or 4). */
  readonly insns: Int32Array;
  readonly raws: Int32Array;
  readonly lens: Uint8Array;
  /** Bytes covered. */
  readonly bytes: number;
  /** Runs only in the interpreter (system instruction, illegal, page-straddling). */
  readonly interpOnly: boolean;
  /** The one instruction straddles the page end: it must be fetched (both pages) each time. */
  readonly straddles: boolean;
  /** The compiled region holding this block, and the block's index in it. */
  fn: RegionFn | null = null;
  entry = 0;
  /** The wasm tier's region: its index in the hart's dispatch table (-1: none). */
  tidx = -1;
  hits = 0;
  valid = true;

  constructor(
    pc: number,
    pa: number,
    slot: Slot,
    insns: number[],
    raws: number[],
    lens: number[],
    interpOnly: boolean,
    straddles = false,
  ) {
    this.pc = pc;
    this.pa = pa;
    this.slot = slot;
    this.insns = Int32Array.from(insns);
    this.raws = Int32Array.from(raws);
    this.lens = Uint8Array.from(lens);
    this.bytes = lens.reduce((a, b) => a + b, 0);
    this.interpOnly = interpOnly;
    this.straddles = straddles;
  }

  /** Number of instructions. */
  get n(): number {
    return this.insns.length;
  }

  /** True while guest memory still holds the bytes this block was decoded from. */
  matches(): boolean {
    if (this.straddles) return true; // fetched afresh every time it runs
    const dv = this.slot.dv;
    let off = this.pa - this.slot.gpa;
    for (let k = 0; k < this.raws.length; k++) {
      const raw = this.raws[k] ?? 0;
      const len = this.lens[k] ?? 4;
      if (off + len > this.slot.size) return false;
      const now = len === 2 ? dv.getUint16(off, true) : dv.getInt32(off, true);
      if (now !== (len === 2 ? raw & 0xffff : raw)) return false;
      off += len;
    }
    return true;
  }
}

/** How an instruction affects block formation. */
function classify(insn: number): "plain" | "end" | "exclude" {
  const op = insn & 0x7f;
  if (insn === 0 || op === 0x73) return "exclude";
  if (op === 0x6f || op === 0x67) return "end";
  if (op === 0x0f && ((insn >>> 12) & 7) === 1) return "end";
  return "plain";
}

/** The instructions of a block being formed (`form`), or null when only its size is wanted. */
interface BlockSink {
  readonly insns: number[];
  readonly raws: number[];
  readonly lens: number[];
}

/**
 * Forms the block at physical `pa` (inside `slot`) by the rules in the module comment, pushing
 * its instructions to `sink` if given; returns its instruction count | its bytes << 8 (at most
 * 256) | 1 << 20 if it is interpret-only (a count of 0: nothing decodable, an instruction
 * straddling the page end).
 */
function form(pa: number, slot: Slot, sink: BlockSink | null): number {
  const dv = slot.dv;
  let n = 0;
  let bytes = 0;
  let off = pa - slot.gpa;
  const pageEnd = off - (off % 4096) + 4096;
  let interpOnly = false;
  while (n < MAX_BLOCK && off + 2 <= pageEnd && off + 2 <= slot.size) {
    const h = dv.getUint16(off, true);
    let raw: number;
    let insn: number;
    let len: number;
    if ((h & 3) === 3) {
      if (off + 4 > pageEnd || off + 4 > slot.size) {
        interpOnly = n === 0;
        break;
      }
      raw = h | (dv.getUint16(off + 2, true) << 16);
      insn = raw;
      len = 4;
    } else {
      raw = h;
      insn = expandRvc(h);
      len = 2;
    }
    const kind = classify(insn);
    if (kind === "exclude" && n > 0) break;
    sink?.insns.push(insn);
    sink?.raws.push(raw);
    sink?.lens.push(len);
    n++;
    bytes += len;
    off += len;
    if (kind === "exclude") {
      interpOnly = true;
      break;
    }
    if (kind === "end") break;
  }
  return n | (bytes << 8) | (interpOnly ? 1 << 20 : 0);
}

/** Decodes the block at virtual pc / physical pa (inside `slot`). */
export function decodeBlock(pc: number, pa: number, slot: Slot): Block {
  const sink: BlockSink = { insns: [], raws: [], lens: [] };
  const size = form(pa, slot, sink);
  if ((size & 0xff) === 0) {
    // Nothing decodable (an instruction straddling the page end): interpret one step.
    return new Block(pc, pa, slot, [0], [0], [2], true, true);
  }
  return new Block(pc, pa, slot, sink.insns, sink.raws, sink.lens, (size & (1 << 20)) !== 0);
}

/**
 * The instruction count and bytes of the block `decodeBlock` would make at physical `pa`
 * (inside `slot`), as count | bytes << 8, without making it (the engine weighs hot pcs by the
 * length of their straight-line path: engine.ts `straight`).
 */
export function blockSize(pa: number, slot: Slot): number {
  const size = form(pa, slot, null) & 0xfffff;
  return (size & 0xff) === 0 ? 1 | (2 << 8) : size;
}
