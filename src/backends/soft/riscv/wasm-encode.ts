/**
 * A minimal WebAssembly binary encoder for the wasm tier (wasm-tier.ts): one function body
 * builder with named structured-control labels, and a module writer for the shapes the tier
 * emits (imported functions, shared memory and optionally a funcref table; one exported
 * function). Encodings follow the
 * WebAssembly core specification 1.0, §5 "Binary Format".
 */

/** Value types (spec §5.3.1). */
export const T = { i32: 0x7f, i64: 0x7e, void: 0x40 } as const;

/** The opcodes the tier uses (spec §5.4). */
export const OP = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  brTable: 0x0e,
  ret: 0x0f,
  call: 0x10,
  callIndirect: 0x11,
  drop: 0x1a,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Load: 0x28,
  i64Load: 0x29,
  i64Load8S: 0x30,
  i64Load8U: 0x31,
  i64Load16S: 0x32,
  i64Load16U: 0x33,
  i64Load32S: 0x34,
  i64Load32U: 0x35,
  i32Store: 0x36,
  i64Store: 0x37,
  i64Store8: 0x3c,
  i64Store16: 0x3d,
  i64Store32: 0x3e,
  i32Const: 0x41,
  i64Const: 0x42,
  i32Eqz: 0x45,
  i32Eq: 0x46,
  i32Ne: 0x47,
  i32LtS: 0x48,
  i32LeS: 0x4c,
  i32GeS: 0x4e,
  i64Eqz: 0x50,
  i64Eq: 0x51,
  i64Ne: 0x52,
  i64LtS: 0x53,
  i64LtU: 0x54,
  i64GeS: 0x59,
  i64GeU: 0x5a,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32DivS: 0x6d,
  i32DivU: 0x6e,
  i32RemS: 0x6f,
  i32RemU: 0x70,
  i32And: 0x71,
  i32Or: 0x72,
  i32Shl: 0x74,
  i32ShrS: 0x75,
  i32ShrU: 0x76,
  i64Add: 0x7c,
  i64Sub: 0x7d,
  i64Mul: 0x7e,
  i64DivS: 0x7f,
  i64DivU: 0x80,
  i64RemS: 0x81,
  i64RemU: 0x82,
  i64And: 0x83,
  i64Or: 0x84,
  i64Xor: 0x85,
  i64Shl: 0x86,
  i64ShrS: 0x87,
  i64ShrU: 0x88,
  i32WrapI64: 0xa7,
  i64ExtendI32S: 0xac,
  i64ExtendI32U: 0xad,
} as const;

/** Appends unsigned LEB128 of a non-negative integer below 2^53. */
export function uleb(out: number[], v: number): void {
  let n = v;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
}

/** Appends signed LEB128 of a 64-bit value. */
export function sleb(out: number[], v: bigint): void {
  let n = BigInt.asIntN(64, v);
  for (;;) {
    const b = Number(n & 0x7fn);
    n >>= 7n;
    if ((n === 0n && (b & 0x40) === 0) || (n === -1n && (b & 0x40) !== 0)) {
      out.push(b);
      return;
    }
    out.push(b | 0x80);
  }
}

/**
 * Appends signed LEB128 of an integer number of magnitude below 2^53 (exact in a double), without
 * BigInt: the encoder emits thousands of constants per region, and BigInt arithmetic made it the
 * largest part of a region's compile time on a Linux boot.
 */
export function slebN(out: number[], v: number): void {
  let n = v;
  for (;;) {
    const q = Math.floor(n / 128);
    const b = n - q * 128; // 0..127 for negative n too: floor division is an arithmetic shift
    n = q;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return;
    }
    out.push(b | 0x80);
  }
}

/** A function body under construction; labels name the open blocks so branches find depths. */
export class FnBuilder {
  readonly code: number[] = [];
  private readonly locals: number[] = [];
  private readonly labels: (string | null)[] = [];
  private readonly nParams: number;

  constructor(nParams: number) {
    this.nParams = nParams;
  }

  /** A new local of type `t`; returns its index. */
  local(t: number): number {
    this.locals.push(t);
    return this.nParams + this.locals.length - 1;
  }

  /** Appends one or two raw bytes (fixed arity: a rest parameter allocated per call). */
  op(a: number, b?: number): this {
    this.code.push(a);
    if (b !== undefined) this.code.push(b);
    return this;
  }

  /** Opens `block`/`loop`/`if` (kind is the opcode) named `label` with result type `bt`. */
  open(kind: number, label: string | null = null, bt: number = T.void): this {
    this.labels.push(label);
    return this.op(kind, bt);
  }

  /** Closes the innermost construct. */
  end(): this {
    this.labels.pop();
    return this.op(OP.end);
  }

  private depth(label: string): number {
    const i = this.labels.lastIndexOf(label);
    if (i < 0) throw new Error(`wasm tier: branch to label ${label}, which is not open`);
    return this.labels.length - 1 - i;
  }

  /** `br` / `br_if` to a named label. */
  br(label: string, conditional = false): this {
    this.op(conditional ? OP.brIf : OP.br);
    uleb(this.code, this.depth(label));
    return this;
  }

  /** `br_table` over labels with a default. */
  brTable(labels: readonly string[], def: string): this {
    this.op(OP.brTable);
    uleb(this.code, labels.length);
    for (const l of labels) uleb(this.code, this.depth(l));
    uleb(this.code, this.depth(def));
    return this;
  }

  /** Opcode followed by one unsigned immediate (local.get/set/tee, call). */
  idx(opcode: number, i: number): this {
    this.op(opcode);
    uleb(this.code, i);
    return this;
  }

  /** `call_indirect` of type `type` through table 0 (index on the stack). */
  callIndirect(type: number): this {
    this.op(OP.callIndirect);
    uleb(this.code, type);
    return this.op(0x00);
  }

  i32(v: number): this {
    this.op(OP.i32Const);
    slebN(this.code, v | 0);
    return this;
  }

  /** The i64 constant `a + b` (integer numbers below 2^53 each; an inexact sum goes by BigInt). */
  i64n(a: number, b = 0): this {
    const v = a + b;
    if (!Number.isSafeInteger(v)) return this.i64(BigInt(a) + BigInt(b));
    this.op(OP.i64Const);
    slebN(this.code, v);
    return this;
  }

  i64(v: bigint): this {
    this.op(OP.i64Const);
    sleb(this.code, v);
    return this;
  }

  /** A load or store with alignment log2 `align` and constant offset. */
  mem(opcode: number, align: number, offset: number): this {
    this.op(opcode);
    uleb(this.code, align);
    uleb(this.code, offset);
    return this;
  }

  /** The body's locals declaration (the code and a final `end` follow it). */
  localsDecl(): number[] {
    const out: number[] = [];
    const groups: [number, number][] = [];
    for (const t of this.locals) {
      const g = groups[groups.length - 1];
      if (g?.[1] === t) g[0]++;
      else groups.push([1, t]);
    }
    uleb(out, groups.length);
    for (const [n, t] of groups) {
      uleb(out, n);
      out.push(t);
    }
    return out;
  }
}

function name(out: number[], s: string): void {
  uleb(out, s.length);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i));
}

function section(out: number[], id: number, body: number[]): void {
  out.push(id);
  uleb(out, body.length);
  for (const b of body) out.push(b);
}

/** A function type: parameter and result value types. */
export type FnType = readonly [readonly number[], readonly number[]];

/**
 * A module importing functions `env.<name>`, the shared memory `env.mem` (any size up to 4 GiB)
 * and, with `table`, the funcref table `env.tbl`, defining one function of type
 * `types[fnType]` exported as `run`.
 */
export function encodeModule(
  types: readonly FnType[],
  imports: readonly { name: string; type: number }[],
  fnType: number,
  body: FnBuilder,
  table = false,
): Uint8Array {
  const out = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  let b: number[] = [];
  uleb(b, types.length);
  for (const [ps, rs] of types) {
    b.push(0x60);
    uleb(b, ps.length);
    b.push(...ps);
    uleb(b, rs.length);
    b.push(...rs);
  }
  section(out, 1, b);
  b = [];
  uleb(b, imports.length + (table ? 2 : 1));
  for (const im of imports) {
    name(b, "env");
    name(b, im.name);
    b.push(0x00);
    uleb(b, im.type);
  }
  name(b, "env");
  name(b, "mem");
  // Limits flag 3 = shared with a maximum (threads proposal, merged in wasm 2.0 §5.3.4).
  b.push(0x02, 0x03, 0x01);
  uleb(b, 65536);
  if (table) {
    name(b, "env");
    name(b, "tbl");
    b.push(0x01, 0x70, 0x00, 0x01);
  }
  section(out, 2, b);
  b = [];
  uleb(b, 1);
  uleb(b, fnType);
  section(out, 3, b);
  b = [];
  uleb(b, 1);
  name(b, "run");
  b.push(0x00);
  uleb(b, imports.length);
  section(out, 7, b);
  // The code section, its body copied once, straight into the result (a region's body is
  // kilobytes; every copy through a number[] showed in compile time).
  const decl = body.localsDecl();
  const bodyLen = decl.length + body.code.length + 1;
  b = [];
  uleb(b, 1);
  uleb(b, bodyLen);
  out.push(10);
  uleb(out, b.length + bodyLen);
  for (const x of b) out.push(x);
  for (const x of decl) out.push(x);
  const bytes = new Uint8Array(out.length + body.code.length + 1);
  bytes.set(out);
  bytes.set(body.code, out.length);
  bytes[bytes.length - 1] = OP.end;
  return bytes;
}
