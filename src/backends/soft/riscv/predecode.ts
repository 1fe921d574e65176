/**
 * The decode cache of the fast interpreter (fast.ts): per guest-physical code page, each
 * instruction decoded once, on its first execution, into an operation word and an immediate, so
 * executing it again costs no fetch, no RVC expansion and no field extraction.
 *
 * Operation word (0 = not decoded yet) and immediate, one pair per halfword of the page, side by
 * side in `code` (word 2i the op word of halfword i, word 2i + 1 its immediate: one cache line
 * holds both, where two arrays cost two misses per first execution of a line of cold code).
 * The operation word:
 *
 *     bits 0..6   kind (K below)       bit 7       1 = 4-byte instruction, 0 = 2-byte (RVC)
 *     bits 8..12  rd                   bits 13..17 rs1          bits 18..22 rs2
 *
 * For K.EXEC and K.EXEC_END (instructions the reference `exec` runs) the immediate is the
 * expanded 32-bit instruction and bits 8..23 of a 2-byte one hold its raw bits (for stval).
 *
 * Invalidation, as for translated blocks (engine.ts): the bytes of every decoded instruction
 * are marked in the slot's code bitmap (memory.ts), so a store into them takes the slow path and
 * drops the page (`drop`, through `Core.onCodeWrite` → `Engine.invalidatePage`); memslot changes
 * drop everything (`clear`); fence.i (`sync`) makes every page re-check its decoded words
 * against memory before its next use (another vCPU may have written the bytes). Lookups are by
 * virtual page, valid for one `Core.mapGen` and privilege mode (satp writes, sfence.vma and
 * mode changes are the only events that change what an instruction fetch translates to;
 * `sfence.vma addr` drops only the look-ups inside the fenced leaf: `fenceVa`).
 */
import { fetchPage } from "./access.js";
import { validF5 } from "./amo.js";
import type { CodeLeaves } from "./code-leaves.js";
import type { Core } from "./core.js";
import type { Slot } from "./memory.js";
import { expandRvc } from "./rvc.js";

/** Operation kinds. Anything the fast loop does not inline is EXEC (continue) or EXEC_END. */
export const K = {
  NOP: 1,
  LUI: 2,
  AUIPC: 3,
  JAL: 4,
  JALR: 5,
  BEQ: 6,
  BNE: 7,
  BLT: 8,
  BGE: 9,
  BLTU: 10,
  BGEU: 11,
  LB: 12,
  LH: 13,
  LW: 14,
  LD: 15,
  LBU: 16,
  LHU: 17,
  LWU: 18,
  SB: 19,
  SH: 20,
  SW: 21,
  SD: 22,
  ADDI: 23,
  SLTI: 24,
  SLTIU: 25,
  XORI: 26,
  ORI: 27,
  ANDI: 28,
  SLLI: 29,
  SRLI: 30,
  SRAI: 31,
  ADDIW: 32,
  SLLIW: 33,
  SRLIW: 34,
  SRAIW: 35,
  ADD: 36,
  SUB: 37,
  SLL: 38,
  SLT: 39,
  SLTU: 40,
  XOR: 41,
  SRL: 42,
  SRA: 43,
  OR: 44,
  AND: 45,
  MUL: 46,
  MULH: 47,
  MULHSU: 48,
  MULHU: 49,
  DIV: 50,
  DIVU: 51,
  REM: 52,
  REMU: 53,
  ADDW: 54,
  SUBW: 55,
  SLLW: 56,
  SRLW: 57,
  SRAW: 58,
  MULW: 59,
  DIVW: 60,
  DIVUW: 61,
  REMW: 62,
  REMUW: 63,
  /** Run by the reference `exec`, then the loop goes on (FP, AMO, illegal encodings). */
  EXEC: 64,
  /** Run by `exec`, then the loop returns (SYSTEM, fence.i: they change what runs next). */
  EXEC_END: 65,
  /** A 4-byte instruction straddling the page end: the reference `step` fetches both pages. */
  STRADDLE: 66,
  /**
   * A valid LR/SC/AMO: bits 23..27 funct5, bit 28 set for a doubleword, the instruction in the
   * immediate (amo.ts `amoFast` runs it; what it cannot, `exec` runs as for EXEC).
   */
  AMO: 67,
} as const;

/** Halfwords per 4 KiB page. */
const SLOTS = 2048;
/** Trail flag: the instruction was read as 4 bytes. */
const LONG = 0x10000;
/** Most decoded pages kept; past this all are dropped (as the block cache does when full). */
export const MAX_PAGES = 1024;
/**
 * Entries of the virtual-page lookup (direct-mapped, indexed by page number): 2^10 spans 4 MiB
 * of code before two pages share an entry. Measured on a Linux 6.1 boot to /init: at 2^8 (1 MiB,
 * less than the kernel text a boot runs) ~11 K runFast entries and ~11 K cross-page jumps missed
 * (each a fetch translation, most of them a page-table walk: 27 K walks per boot); at 2^10 1.6 K
 * and 1.4 K did (17.7 K walks, 84 K runFast calls instead of 91 K); 2^12 did no better. `fenceVa`
 * scans it (a boot fences single pages ~400 times).
 */
const VBITS = 10;
const VSIZE = 1 << VBITS;

/** The decoded instructions of one guest-physical page. */
export class DecodedPage {
  /** Guest-physical address of the page. */
  readonly pa: number;
  readonly slot: Slot;
  /** Offset of the page inside the slot. */
  readonly off: number;
  /** Operation word (2i, 0: not decoded) and immediate (2i + 1) of halfword i. */
  readonly code: Int32Array;
  /**
   * The words decoded so far, in decode order, for fence.i's re-check: pairs of (halfword index
   * | LONG if it was read as 4 bytes, the bits it was decoded from). A plain array: a page of
   * boot code decodes ~320 instructions, and full-page typed arrays (12 KiB of a page's 28)
   * cost their page faults on every one of the ~400 pages a boot decodes; growing a typed
   * array by hand is a path the fast interpreter's optimized code (decode inlined) has no
   * feedback for until a boot reaches it, and a deoptimization of runFast then.
   */
  readonly trail: number[] = [];
  /** The cache's fence.i epoch this page was last checked against memory in. */
  epoch: number;
  valid = true;

  constructor(pa: number, slot: Slot, epoch: number) {
    this.pa = pa;
    this.slot = slot;
    this.off = pa - slot.gpa;
    this.epoch = epoch;
    this.code = new Int32Array(2 * SLOTS);
  }
}

/** Decodes the instruction at halfword `idx` of `p` from memory; returns the op word. */
function decodeFrom(p: DecodedPage, idx: number, out: { imm: number }): number {
  const dv = p.slot.dv;
  const off = p.off + 2 * idx;
  const h = dv.getUint16(off, true);
  if ((h & 3) !== 3) {
    const insn = expandRvc(h);
    return decodeInsn(insn, h, false, out);
  }
  if (idx === SLOTS - 1) {
    out.imm = 0;
    return K.STRADDLE | 128;
  }
  const insn = h | (dv.getUint16(off + 2, true) << 16);
  return decodeInsn(insn, insn, true, out);
}

/** The fields of an R/I/S/B type instruction as an op word of kind `kind`. */
function word(kind: number, insn: number, long: boolean): number {
  const rd = (insn >>> 7) & 31;
  const rs1 = (insn >>> 15) & 31;
  const rs2 = (insn >>> 20) & 31;
  return kind | (long ? 128 : 0) | (rd << 8) | (rs1 << 13) | (rs2 << 18);
}

/** EXEC/EXEC_END word: the expanded instruction in the immediate, raw RVC bits in 8..23. */
function execWord(kind: number, insn: number, raw: number, long: boolean, out: { imm: number }) {
  out.imm = insn;
  return kind | (long ? 128 : (raw & 0xffff) << 8);
}

const LOADS = [K.LB, K.LH, K.LW, K.LD, K.LBU, K.LHU, K.LWU] as const;
const STORES = [K.SB, K.SH, K.SW, K.SD] as const;
const BRANCHES = [K.BEQ, K.BNE, 0, 0, K.BLT, K.BGE, K.BLTU, K.BGEU] as const;
const OP_IMM = [K.ADDI, K.SLLI, K.SLTI, K.SLTIU, K.XORI, K.SRLI, K.ORI, K.ANDI] as const;
const OP_BASE = [K.ADD, K.SLL, K.SLT, K.SLTU, K.XOR, K.SRL, K.OR, K.AND] as const;
const OP_MUL = [K.MUL, K.MULH, K.MULHSU, K.MULHU, K.DIV, K.DIVU, K.REM, K.REMU] as const;
const OP32_MUL = [K.MULW, 0, 0, 0, K.DIVW, K.DIVUW, K.REMW, K.REMUW] as const;

/**
 * The op word (immediate in `out.imm`) of expanded instruction `insn`. Only encodings the
 * reference `exec` (interp.ts) certainly executes as the inlined kind are inlined; everything
 * else, illegal encodings included, goes to EXEC and so behaves exactly as the reference.
 */
export function decodeInsn(insn: number, raw: number, long: boolean, out: { imm: number }): number {
  const f3 = (insn >>> 12) & 7;
  const f7 = insn >>> 25;
  const rd = (insn >>> 7) & 31;
  let kind = 0;
  out.imm = insn >> 20;
  switch (insn & 0x7f) {
    case 0x37:
      out.imm = insn & 0xfffff000;
      kind = K.LUI;
      break;
    case 0x17:
      out.imm = insn & 0xfffff000;
      kind = K.AUIPC;
      break;
    case 0x6f:
      out.imm =
        ((insn >> 11) & ~0xfffff) |
        (insn & 0xff000) |
        ((insn >>> 9) & 0x800) |
        ((insn >>> 20) & 0x7fe);
      return word(K.JAL, insn, long);
    case 0x67:
      if (f3 === 0) return word(K.JALR, insn, long);
      break;
    case 0x63:
      out.imm =
        ((insn >> 19) & ~0xfff) |
        ((insn << 4) & 0x800) |
        ((insn >>> 20) & 0x7e0) |
        ((insn >>> 7) & 0x1e);
      kind = BRANCHES[f3] ?? 0;
      if (kind !== 0) return word(kind, insn, long);
      break;
    case 0x03:
      // Loads run even with rd = x0 (they may fault or reach MMIO).
      if (f3 !== 7) return word(LOADS[f3] ?? 0, insn, long);
      break;
    case 0x23:
      out.imm = ((insn >> 20) & ~31) | ((insn >>> 7) & 31);
      if (f3 <= 3) return word(STORES[f3] ?? 0, insn, long);
      break;
    case 0x13: {
      const top = insn >>> 26;
      if (f3 === 1 && top !== 0) break;
      if (f3 === 5 && top !== 0 && top !== 0x10) break;
      kind = f3 === 5 && top === 0x10 ? K.SRAI : (OP_IMM[f3] ?? 0);
      if (f3 === 1 || f3 === 5) out.imm = (insn >>> 20) & 63;
      break;
    }
    case 0x1b: {
      const sh = (insn >>> 20) & 31;
      if (f3 === 0) kind = K.ADDIW;
      else if (f3 === 1 && f7 === 0) kind = K.SLLIW;
      else if (f3 === 5 && f7 === 0) kind = K.SRLIW;
      else if (f3 === 5 && f7 === 0x20) kind = K.SRAIW;
      if (f3 !== 0) out.imm = sh;
      break;
    }
    case 0x33:
      if (f7 === 0) kind = OP_BASE[f3] ?? 0;
      else if (f7 === 1) kind = OP_MUL[f3] ?? 0;
      else if (f7 === 0x20 && f3 === 0) kind = K.SUB;
      else if (f7 === 0x20 && f3 === 5) kind = K.SRA;
      break;
    case 0x3b:
      if (f7 === 1) kind = OP32_MUL[f3] ?? 0;
      else if (f7 === 0 && f3 === 0) kind = K.ADDW;
      else if (f7 === 0 && f3 === 1) kind = K.SLLW;
      else if (f7 === 0 && f3 === 5) kind = K.SRLW;
      else if (f7 === 0x20 && f3 === 0) kind = K.SUBW;
      else if (f7 === 0x20 && f3 === 5) kind = K.SRAW;
      break;
    case 0x0f:
      if (f3 === 0) return K.NOP | (long ? 128 : 0);
      if (f3 === 1) return execWord(K.EXEC_END, insn, raw, long, out);
      break;
    case 0x73:
      return execWord(K.EXEC_END, insn, raw, long, out);
    case 0x2f:
      // Always 4 bytes (no RVC form); invalid encodings go to EXEC (illegal instruction).
      if ((f3 === 2 || f3 === 3) && validF5(insn >>> 27, (insn >>> 20) & 31)) {
        out.imm = insn;
        return word(K.AMO, insn, long) | ((insn >>> 27) << 23) | ((f3 & 1) << 28);
      }
      break;
    default:
      break;
  }
  if (kind === 0) return execWord(K.EXEC, insn, raw, long, out);
  // A register-writing instruction with rd = x0 does nothing (HINTs included).
  if (rd === 0) return K.NOP | (long ? 128 : 0);
  return word(kind, insn, long);
}

/** The per-hart decode cache (see the module comment). */
export class DecodeCache {
  private readonly core: Core;
  /** Decoded pages by guest-physical page number. */
  private readonly pages = new Map<number, DecodedPage>();
  /** Virtual-page lookup: tag (vpn, hi), the mapGen and mode it was made under, the page. */
  private readonly vLo = new Int32Array(VSIZE).fill(-1);
  private readonly vHi = new Int32Array(VSIZE);
  private readonly vGen = new Int32Array(VSIZE);
  private readonly vMode = new Int8Array(VSIZE);
  /** log2 of the size of the leaf each look-up's page was translated through. */
  private readonly vBits = new Uint8Array(VSIZE);
  private readonly vPage: (DecodedPage | null)[] = new Array<DecodedPage | null>(VSIZE).fill(null);
  /** Bumped by every fence.i: pages of an older epoch re-check their words before use. */
  private epoch = 0;
  private readonly scratch = { imm: 0 };
  /** Statistics: pages decoded, instructions decoded, pages dropped, re-checks after fence.i. */
  readonly stats = { pages: 0, insns: 0, dropped: 0, rechecks: 0 };

  /** Where the look-ups' leaves are noted (for the engine's `sfence.vma`); none: not noted. */
  private readonly leaves: CodeLeaves | null;

  constructor(core: Core, leaves: CodeLeaves | null = null) {
    this.core = core;
    this.leaves = leaves;
  }

  /**
   * The decoded page holding `c.pc` (`vpn` = bits 12..31 of its low word, high word
   * `hi`: small integers, which V8 passes unboxed), or null: the fetch trapped or stopped
   * (`c.exc` set), or the page is not wholly inside one memslot (then the caller uses the
   * reference `step`).
   */
  pageFor(vpn: number, hi: number): DecodedPage | null {
    const v = this.cachedPage(vpn, hi);
    if (v !== null) return v;
    const c = this.core;
    const i = vpn & (VSIZE - 1);
    c.ipc = c.pc;
    const lo = c.pc | 0;
    const r = fetchPage(c, lo, hi);
    if (r === null) return null;
    const pa = r.pa - (r.pa % 4096);
    if (pa < r.slot.gpa || pa + 4096 > r.slot.end) return null;
    const p = this.page(pa, r.slot);
    this.vLo[i] = vpn;
    this.vHi[i] = hi;
    this.vGen[i] = c.mapGen;
    this.vMode[i] = c.mode;
    this.vBits[i] = c.leafBits;
    this.vPage[i] = p;
    this.leaves?.note(c.mapGen, c.pc, c.leafBits);
    return p;
  }

  /**
   * The decoded page of virtual page (`vpn`, `hi`) if the virtual-page lookup holds it for the
   * current map and mode (no fetch, no side effect: null otherwise).
   */
  cachedPage(vpn: number, hi: number): DecodedPage | null {
    const c = this.core;
    const i = vpn & (VSIZE - 1);
    const v = this.vPage[i];
    if (
      v != null &&
      this.vLo[i] === vpn &&
      this.vHi[i] === hi &&
      this.vGen[i] === c.mapGen &&
      this.vMode[i] === c.mode &&
      v.valid &&
      v.epoch === this.epoch
    ) {
      return v;
    }
    return null;
  }

  /** Forgets the virtual-page look-ups inside the leaf that mapped virtual address `va`. */
  fenceVa(va: number): void {
    // As Engine.fenceVa: int32 work with no rarely taken path (V8 deoptimizes a loop at the
    // first run of a path it has no type feedback for); a look-up is dropped by moving it to
    // the previous map generation, which cachedPage never accepts. Same leaf (bits <= 30):
    // equal high words, page numbers equal above bit `bits` - 12.
    const gen = this.core.mapGen;
    const dead = (gen - 1) | 0;
    const vpn = (va | 0) >>> 12;
    const vaHi = Math.floor(va / 4294967296) | 0;
    const gens = this.vGen;
    const los = this.vLo;
    const his = this.vHi;
    const bits = this.vBits;
    for (let i = 0; i < VSIZE; i++) {
      const g = gens[i] ?? 0;
      const other = (((los[i] ?? 0) ^ vpn) >>> ((bits[i] ?? 12) - 12)) | ((his[i] ?? 0) ^ vaHi);
      gens[i] = ((g ^ gen) | other) === 0 ? dead : g;
    }
  }

  /** The decoded page at guest-physical `pa` (page-aligned), re-checked after a fence.i. */
  private page(pa: number, slot: Slot): DecodedPage {
    const key = pa / 4096;
    let p = this.pages.get(key);
    if (p !== undefined && p.epoch !== this.epoch) {
      this.stats.rechecks++;
      if (this.unchanged(p)) p.epoch = this.epoch;
      else this.drop(key);
      p = this.pages.get(key);
    }
    if (p === undefined) {
      if (this.pages.size >= MAX_PAGES) this.clear();
      p = new DecodedPage(pa, slot, this.epoch);
      this.pages.set(key, p);
      this.stats.pages++;
    }
    return p;
  }

  /** True while memory still holds the bits every decoded word of `p` was decoded from. */
  private unchanged(p: DecodedPage): boolean {
    const dv = p.slot.dv;
    const trail = p.trail;
    for (let k = 0; k < trail.length; k += 2) {
      const e = trail[k] ?? 0;
      const off = p.off + 2 * (e & 0xffff);
      const now = (e & LONG) !== 0 ? dv.getInt32(off, true) : dv.getUint16(off, true);
      if (now !== trail[k + 1]) return false;
    }
    return true;
  }

  /**
   * Decodes halfword `idx` of `p` (its first execution): stores the op word and immediate and
   * marks the instruction's bytes as code, so a store into them invalidates the page.
   */
  decode(p: DecodedPage, idx: number): number {
    const out = this.scratch;
    const w = decodeFrom(p, idx, out);
    p.code[2 * idx] = w;
    p.code[2 * idx + 1] = out.imm;
    const slot = p.slot;
    // A straddling instruction's second half is fetched afresh every time: only its first
    // half is code (re-checked, marked).
    const long = (w & 128) !== 0 && (w & 127) !== K.STRADDLE;
    const at = p.off + 2 * idx;
    const raw = long ? slot.dv.getInt32(at, true) : slot.dv.getUint16(at, true);
    p.trail.push(idx | (long ? LONG : 0), raw);
    this.stats.insns++;
    const page = p.off / 4096;
    const wasCode = slot.codePage[page] === 1;
    slot.markCode(at, long ? 4 : 2);
    // Stores to a code page must take the slow path (access.ts checks the bitmap there).
    if (!wasCode) this.core.tw.flushPhys(p.pa);
    return w;
  }

  /** Drops the decoded page of guest-physical page number `key` (its bytes were written). */
  drop(key: number): void {
    const p = this.pages.get(key);
    if (p === undefined) return;
    p.valid = false;
    this.pages.delete(key);
    this.stats.dropped++;
  }

  /** Drops every decoded page (memslot changes, restores, a full cache). */
  clear(): void {
    for (const p of this.pages.values()) p.valid = false;
    this.stats.dropped += this.pages.size;
    this.pages.clear();
    this.vPage.fill(null);
  }

  /** fence.i: every page re-checks its decoded words against memory before its next use. */
  sync(): void {
    this.epoch++;
  }
}
