/**
 * Instruction emitters of the block translator: JS source for one RV64 instruction at a known
 * pc, over the register locals of a `Gen` (translate.ts assembles them into regions).
 *
 * Values are int32 lo/hi pairs (docs/soft-riscv-notes.md §2.2). Loads and stores inline the
 * soft-TLB hit path (aligned accesses, see tlb.ts) and call the shared slow paths otherwise;
 * 64-bit divide/mulh call the i64 helpers; every other instruction (AMOs, F/D, fence.i,
 * encodings the emitters do not specialise, reserved ones) calls the interpreter's `exec`, so
 * decoding and trap rules live in one place.
 */
import { MMIO_TAG } from "./access.js";
import { TWO32 } from "./i64.js";

/**
 * JS source under construction for one region. Register model: every x-register the region
 * reads or writes lives in a local (r{n}l, r{n}h) loaded at entry; all written registers are
 * stored back at every exit and before any helper that may observe x[], and all are reloaded
 * after a call into the interpreter. A first pass with `collect` set only gathers the sets.
 */
export class Gen {
  private readonly out: string[] = [];
  private tmp = 0;
  /** Registers read (collect pass: being gathered). */
  readonly used: Set<number>;
  /** Registers written. */
  readonly written: Set<number>;

  constructor(
    readonly collect: boolean,
    used: ReadonlySet<number> = new Set(),
    written: ReadonlySet<number> = new Set(),
  ) {
    this.used = new Set(used);
    this.written = new Set(written);
  }

  emit(s: string): void {
    if (!this.collect) this.out.push(s);
  }

  /** Every register with a local. */
  regs(): number[] {
    return [...new Set([...this.used, ...this.written])].sort((a, b) => a - b);
  }

  /** Declarations and entry loads. */
  prologue(): string {
    const regs = this.regs();
    if (regs.length === 0) return "";
    const decl = regs.map((r) => `r${r}l = x[${2 * r}], r${r}h = x[${2 * r + 1}]`);
    return `let ${decl.join(", ")};`;
  }

  body(): string {
    return this.out.join("\n");
  }

  /** `return` of k more instructions retired in the current block. */
  ret(k: number): string {
    return `return done + ${k};`;
  }

  /** Name of a fresh temporary. */
  t(): string {
    return `t${this.tmp++}`;
  }

  /** Register r's [lo, hi] expressions. */
  use(r: number): [string, string] {
    if (r === 0) return ["0", "0"];
    this.used.add(r);
    return [`r${r}l`, `r${r}h`];
  }

  /** Assigns register rd from two expressions, both evaluated on the old register values. */
  set(rd: number, lo: string, hi: string): void {
    if (rd === 0) return;
    this.written.add(rd);
    const h = this.t();
    // "| 0" keeps every register local an int32 (a uint32 from ">>>" would make TurboFan
    // carry the loop phis of the whole region as doubles).
    this.emit(`const ${h} = (${hi}) | 0; r${rd}l = (${lo}) | 0; r${rd}h = ${h};`);
  }

  /** Stores every written register back to x[]. */
  writeBack(): void {
    for (const r of [...this.written].sort((a, b) => a - b)) {
      this.emit(`x[${2 * r}] = r${r}l; x[${2 * r + 1}] = r${r}h;`);
    }
  }

  /** Reloads every register local from x[] (after the interpreter ran an instruction). */
  reload(): void {
    for (const r of this.regs()) this.emit(`r${r}l = x[${2 * r}]; r${r}h = x[${2 * r + 1}];`);
  }
}

export function lit(v: number): string {
  return v < 0 ? `(${v})` : `${v}`;
}

/** A signed double → its lo/hi words as literals. */
export function pairLit(v: number): [string, string] {
  return [lit(v | 0), lit(Math.floor(v / TWO32) | 0)];
}

export function iImm(insn: number): number {
  return insn >> 20;
}

function sImm(insn: number): number {
  return ((insn >> 20) & ~31) | ((insn >>> 7) & 31);
}

export function bImm(insn: number): number {
  return (
    ((insn >> 19) & ~0xfff) |
    ((insn << 4) & 0x800) |
    ((insn >>> 20) & 0x7e0) |
    ((insn >>> 7) & 0x1e)
  );
}

export function jImm(insn: number): number {
  return (
    ((insn >> 11) & ~0xfffff) | (insn & 0xff000) | ((insn >>> 9) & 0x800) | ((insn >>> 20) & 0x7fe)
  );
}

/** Emits `lo`, `hi` temps for rs + imm (64-bit add of a sign-extended constant). */
export function addrOf(g: Gen, rs: number, imm: number): [string, string] {
  const [l, h] = g.use(rs);
  const lo = g.t();
  const hi = g.t();
  if (imm === 0) {
    g.emit(`const ${lo} = ${l}, ${hi} = ${h};`);
  } else {
    const carry = `((${lo} >>> 0) < (${l} >>> 0) ? 1 : 0)`;
    g.emit(`const ${lo} = (${l} + ${imm}) | 0;`);
    g.emit(`const ${hi} = (${h} + ${imm < 0 ? -1 : 0} + ${carry}) | 0;`);
  }
  return [lo, hi];
}

/** 64-bit ALU ops on expressions; returns [lo, hi] expressions (may emit temps). */
function alu(
  g: Gen,
  f3: number,
  alt: boolean,
  a: [string, string],
  b: [string, string],
): [string, string] | null {
  const [al, ah] = a;
  const [bl, bh] = b;
  switch (f3) {
    case 0: {
      const lo = g.t();
      const x0 = g.t();
      g.emit(`const ${x0} = ${al};`);
      if (!alt) {
        g.emit(`const ${lo} = (${x0} + ${bl}) | 0;`);
        return [lo, `(${ah} + ${bh} + ((${lo} >>> 0) < (${x0} >>> 0) ? 1 : 0)) | 0`];
      }
      const y0 = g.t();
      g.emit(`const ${y0} = ${bl};`);
      g.emit(`const ${lo} = (${x0} - ${y0}) | 0;`);
      return [lo, `(${ah} - ${bh} - ((${x0} >>> 0) < (${y0} >>> 0) ? 1 : 0)) | 0`];
    }
    case 2:
      return [
        `((${ah} < ${bh}) || (${ah} === ${bh} && (${al} >>> 0) < (${bl} >>> 0)) ? 1 : 0)`,
        "0",
      ];
    case 3:
      return [
        `(((${ah} >>> 0) < (${bh} >>> 0)) || (${ah} === ${bh} && (${al} >>> 0) < (${bl} >>> 0)) ? 1 : 0)`,
        "0",
      ];
    case 4:
      return [`(${al} ^ ${bl})`, `(${ah} ^ ${bh})`];
    case 6:
      return [`(${al} | ${bl})`, `(${ah} | ${bh})`];
    case 7:
      return [`(${al} & ${bl})`, `(${ah} & ${bh})`];
    default:
      return null;
  }
}

/** Shift of a pair by a constant 0..63. kind: 0 sll, 1 srl, 2 sra. */
function shiftConst(l: string, h: string, sh: number, kind: number): [string, string] {
  if (sh === 0) return [l, h];
  if (kind === 0) {
    if (sh < 32) return [`(${l} << ${sh})`, `((${h} << ${sh}) | (${l} >>> ${32 - sh}))`];
    return ["0", `(${l} << ${sh - 32})`];
  }
  if (sh < 32) {
    return [
      `((${l} >>> ${sh}) | (${h} << ${32 - sh}))`,
      kind === 1 ? `(${h} >>> ${sh})` : `(${h} >> ${sh})`,
    ];
  }
  return kind === 1 ? [`(${h} >>> ${sh - 32})`, "0"] : [`(${h} >> ${sh - 32})`, `(${h} >> 31)`];
}

/** Shift of a pair by a register amount (low 6 bits). */
function shiftVar(g: Gen, l: string, h: string, s: string, kind: number): [string, string] {
  const sh = g.t();
  const lo = g.t();
  const hi = g.t();
  const a = g.t();
  const b = g.t();
  g.emit(`const ${a} = ${l}, ${b} = ${h}, ${sh} = ${s} & 63; let ${lo}, ${hi};`);
  if (kind === 0) {
    g.emit(
      `if (${sh} === 0) { ${lo} = ${a}; ${hi} = ${b}; } else if (${sh} < 32) { ${lo} = ${a} << ${sh}; ${hi} = (${b} << ${sh}) | (${a} >>> (32 - ${sh})); } else { ${lo} = 0; ${hi} = ${a} << (${sh} - 32); }`,
    );
  } else {
    const op = kind === 1 ? ">>>" : ">>";
    const fill = kind === 1 ? "0" : `${b} >> 31`;
    g.emit(
      `if (${sh} === 0) { ${lo} = ${a}; ${hi} = ${b}; } else if (${sh} < 32) { ${lo} = (${a} >>> ${sh}) | (${b} << (32 - ${sh})); ${hi} = ${b} ${op} ${sh}; } else { ${lo} = ${b} ${op} (${sh} - 32); ${hi} = ${fill}; }`,
    );
  }
  return [lo, `(${hi} | 0)`];
}

/** Emits a call into the interpreter for one instruction. */
export function fallback(
  g: Gen,
  insn: number,
  raw: number,
  pc: number,
  len: number,
  k: number,
): void {
  g.writeBack();
  g.emit(`H.exec(c, ${lit(insn)}, ${lit(raw)}, ${pc}, ${len});`);
  g.emit(`if (c.exc) ${g.ret(k)}`);
  g.emit(`if (c.codeDirty) ${g.ret(k + 1)}`);
  g.reload();
}

function genLoad(g: Gen, insn: number, pc: number, len: number, k: number): void {
  const f3 = (insn >>> 12) & 7;
  const rd = (insn >>> 7) & 31;
  const size = 1 << (f3 & 3);
  const [lo, hi] = addrOf(g, (insn >>> 15) & 31, iImm(insn));
  const i = g.t();
  const v = g.t();
  const vh = g.t();
  const mask = -4096 | (size - 1);
  g.emit(`const ${i} = (${lo} >>> 12) & 255; let ${v}, ${vh} = 0;`);
  g.emit(`if (rTL[${i}] === (${lo} & ${mask}) && rTH[${i}] === ${hi}) {`);
  g.emit(`const dv = rDV[${i}], o = rOF[${i}] + (${lo} & 4095);`);
  if (size === 1) g.emit(`${v} = dv.getUint8(o);`);
  else if (size === 2) g.emit(`${v} = dv.getUint16(o, true);`);
  else g.emit(`${v} = dv.getInt32(o, true);`);
  if (size === 8) g.emit(`${vh} = dv.getInt32(o + 4, true);`);
  g.emit(`} else {`);
  g.writeBack();
  const tag = rd | (f3 >= 4 ? MMIO_TAG.UNSIGNED : 0);
  g.emit(`${v} = H.loadSlow(c, ${lo}, ${hi}, ${size}, ${pc}, ${tag}, ${len}); ${vh} = c.rhi;`);
  g.emit(`if (c.exc) ${g.ret(k)}`);
  g.emit(`}`);
  switch (f3) {
    case 0:
      g.set(rd, `((${v} << 24) >> 24)`, `((${v} << 24) >> 31)`);
      break;
    case 1:
      g.set(rd, `((${v} << 16) >> 16)`, `((${v} << 16) >> 31)`);
      break;
    case 2:
      g.set(rd, v, `(${v} >> 31)`);
      break;
    case 3:
      g.set(rd, v, vh);
      break;
    default:
      g.set(rd, v, "0");
  }
}

function genStore(g: Gen, insn: number, pc: number, len: number, k: number): void {
  const f3 = (insn >>> 12) & 7;
  const size = 1 << f3;
  const [lo, hi] = addrOf(g, (insn >>> 15) & 31, sImm(insn));
  const [vl, vh] = g.use((insn >>> 20) & 31);
  const i = g.t();
  const mask = -4096 | (size - 1);
  g.emit(`const ${i} = (${lo} >>> 12) & 255;`);
  g.emit(`if (wTL[${i}] === (${lo} & ${mask}) && wTH[${i}] === ${hi}) {`);
  g.emit(`const dv = wDV[${i}], o = wOF[${i}] + (${lo} & 4095);`);
  if (size === 1) g.emit(`dv.setUint8(o, ${vl} & 255);`);
  else if (size === 2) g.emit(`dv.setUint16(o, ${vl} & 65535, true);`);
  else g.emit(`dv.setInt32(o, ${vl}, true);`);
  if (size === 8) g.emit(`dv.setInt32(o + 4, ${vh}, true);`);
  g.emit(`} else {`);
  g.writeBack();
  g.emit(`if (H.storeSlow(c, ${lo}, ${hi}, ${size}, ${vl}, ${vh}, ${pc}, ${len})) ${g.ret(k)}`);
  // The store rewrote this very block: stop after it, the rest must be fetched anew.
  g.emit(`if (c.codeDirty) { c.pc = ${pc + len}; ${g.ret(k + 1)} }`);
  g.emit(`}`);
}

function genOpImm(g: Gen, insn: number): boolean {
  const f3 = (insn >>> 12) & 7;
  const rd = (insn >>> 7) & 31;
  const rs = (insn >>> 15) & 31;
  const imm = iImm(insn);
  if (f3 === 1 || f3 === 5) {
    const top = (imm >>> 6) & 63;
    if ((f3 === 1 && imm >>> 6 !== 0) || (f3 === 5 && top !== 0 && top !== 0x10)) return false;
    const [l, h] = g.use(rs);
    const kind = f3 === 1 ? 0 : top === 0 ? 1 : 2;
    const [lo, hi] = shiftConst(l, h, imm & 63, kind);
    const tl = g.t();
    g.emit(`const ${tl} = ${lo};`);
    g.set(rd, tl, hi);
    return true;
  }
  if (f3 === 0 && rs === 0) {
    g.set(rd, lit(imm), lit(imm >> 31));
    return true;
  }
  if (f3 === 0 && imm === 0) {
    const [l, h] = g.use(rs);
    const tl = g.t();
    g.emit(`const ${tl} = ${l};`);
    g.set(rd, tl, h);
    return true;
  }
  const [l, h] = g.use(rs);
  const r = alu(g, f3, false, [l, h], [lit(imm), lit(imm >> 31)]);
  if (r === null) return false;
  const tl = g.t();
  g.emit(`const ${tl} = ${r[0]};`);
  g.set(rd, tl, r[1]);
  return true;
}

function genOpImm32(g: Gen, insn: number): boolean {
  const f3 = (insn >>> 12) & 7;
  const rd = (insn >>> 7) & 31;
  const imm = iImm(insn);
  const [l] = g.use((insn >>> 15) & 31);
  let e: string;
  if (f3 === 0) e = `((${l} + ${imm}) | 0)`;
  else if (f3 === 1 && imm >>> 5 === 0) e = `(${l} << ${imm & 31})`;
  else if (f3 === 5 && imm >>> 5 === 0) e = `((${l} >>> ${imm & 31}) | 0)`;
  else if (f3 === 5 && ((imm >>> 5) & 0x7f) === 0x20) e = `(${l} >> ${imm & 31})`;
  else return false;
  const t = g.t();
  g.emit(`const ${t} = ${e};`);
  g.set(rd, t, `(${t} >> 31)`);
  return true;
}

function genOp(g: Gen, insn: number): boolean {
  const f3 = (insn >>> 12) & 7;
  const f7 = insn >>> 25;
  const rd = (insn >>> 7) & 31;
  const a = g.use((insn >>> 15) & 31);
  const b = g.use((insn >>> 20) & 31);
  if (f7 === 1) {
    if (f3 !== 0) return false;
    const x0 = g.t();
    const y0 = g.t();
    const lo = g.t();
    g.emit(`const ${x0} = ${a[0]}, ${y0} = ${b[0]}, ${lo} = Math.imul(${x0}, ${y0});`);
    const hi = `(Math.round(((${x0} >>> 0) * (${y0} >>> 0) - (${lo} >>> 0)) / 4294967296) + Math.imul(${x0}, ${b[1]}) + Math.imul(${a[1]}, ${y0})) | 0`;
    const th = g.t();
    g.emit(`const ${th} = ${hi};`);
    g.set(rd, lo, th);
    return true;
  }
  let r: [string, string] | null;
  if (f7 === 0 && (f3 === 1 || f3 === 5)) r = shiftVar(g, a[0], a[1], b[0], f3 === 1 ? 0 : 1);
  else if (f7 === 0x20 && f3 === 5) r = shiftVar(g, a[0], a[1], b[0], 2);
  else if (f7 === 0 || (f7 === 0x20 && f3 === 0)) r = alu(g, f3, f7 === 0x20, a, b);
  else return false;
  if (r === null) return false;
  const tl = g.t();
  const th = g.t();
  g.emit(`const ${tl} = ${r[0]}, ${th} = ${r[1]};`);
  g.set(rd, tl, th);
  return true;
}

function genOp32(g: Gen, insn: number): boolean {
  const f3 = (insn >>> 12) & 7;
  const f7 = insn >>> 25;
  const rd = (insn >>> 7) & 31;
  const [a] = g.use((insn >>> 15) & 31);
  const [b] = g.use((insn >>> 20) & 31);
  let e: string;
  if (f7 === 0 && f3 === 0) e = `((${a} + ${b}) | 0)`;
  else if (f7 === 0x20 && f3 === 0) e = `((${a} - ${b}) | 0)`;
  else if (f7 === 0 && f3 === 1) e = `(${a} << (${b} & 31))`;
  else if (f7 === 0 && f3 === 5) e = `((${a} >>> (${b} & 31)) | 0)`;
  else if (f7 === 0x20 && f3 === 5) e = `(${a} >> (${b} & 31))`;
  else if (f7 === 1 && f3 === 0) e = `Math.imul(${a}, ${b})`;
  else if (f7 === 1 && f3 >= 4) e = `H.div32(${a}, ${b}, ${(f3 & 1) === 0}, ${f3 >= 6})`;
  else return false;
  const t = g.t();
  g.emit(`const ${t} = ${e};`);
  g.set(rd, t, `(${t} >> 31)`);
  return true;
}

function genDivMul(g: Gen, insn: number): boolean {
  const f3 = (insn >>> 12) & 7;
  if (insn >>> 25 !== 1 || f3 === 0) return false;
  const rd = (insn >>> 7) & 31;
  const a = g.use((insn >>> 15) & 31);
  const b = g.use((insn >>> 20) & 31);
  const t = g.t();
  if (f3 <= 3) {
    g.emit(`const ${t} = H.mulh64(${a[0]}, ${a[1]}, ${b[0]}, ${b[1]}, ${f3 !== 3}, ${f3 === 1});`);
  } else {
    g.emit(
      `const ${t} = H.div64(${a[0]}, ${a[1]}, ${b[0]}, ${b[1]}, ${(f3 & 1) === 0}, ${f3 >= 6});`,
    );
  }
  g.set(rd, t, "H.I64.hi");
  return true;
}

/** Emits one non-branch instruction; falls back to the interpreter for anything unusual. */
export function genPlain(
  g: Gen,
  insn: number,
  raw: number,
  pc: number,
  len: number,
  k: number,
): void {
  let done = false;
  switch (insn & 0x7f) {
    case 0x37: {
      const v = insn & 0xfffff000;
      g.set((insn >>> 7) & 31, lit(v), lit(v >> 31));
      done = true;
      break;
    }
    case 0x17: {
      const [l, h] = pairLit(pc + (insn & 0xfffff000));
      g.set((insn >>> 7) & 31, l, h);
      done = true;
      break;
    }
    case 0x03:
      if (((insn >>> 12) & 7) !== 7) {
        genLoad(g, insn, pc, len, k);
        done = true;
      }
      break;
    case 0x23:
      if (((insn >>> 12) & 7) <= 3) {
        genStore(g, insn, pc, len, k);
        done = true;
      }
      break;
    case 0x13:
      done = genOpImm(g, insn);
      break;
    case 0x1b:
      done = genOpImm32(g, insn);
      break;
    case 0x33:
      done = genOp(g, insn) || genDivMul(g, insn);
      break;
    case 0x3b:
      done = genOp32(g, insn);
      break;
    case 0x0f:
      done = ((insn >>> 12) & 7) === 0; // fence: nothing to order within one JS thread
      break;
    default:
      break;
  }
  if (!done) fallback(g, insn, raw, pc, len, k);
}

/** The JS condition of a branch instruction, or null for reserved funct3 values. */
export function branchCond(g: Gen, insn: number): string | null {
  const f3 = (insn >>> 12) & 7;
  if (f3 === 2 || f3 === 3) return null;
  const [al, ah] = g.use((insn >>> 15) & 31);
  const [bl, bh] = g.use((insn >>> 20) & 31);
  const lt = `${ah} < ${bh} || (${ah} === ${bh} && (${al} >>> 0) < (${bl} >>> 0))`;
  const ltu = `(${ah} >>> 0) < (${bh} >>> 0) || (${ah} === ${bh} && (${al} >>> 0) < (${bl} >>> 0))`;
  const conds = [
    `${al} === ${bl} && ${ah} === ${bh}`,
    `${al} !== ${bl} || ${ah} !== ${bh}`,
    "",
    "",
    lt,
    `!(${lt})`,
    ltu,
    `!(${ltu})`,
  ];
  return conds[f3] ?? null;
}
