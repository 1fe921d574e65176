/**
 * Unit tests of the hart's building blocks against independent oracles: the lo/hi 64-bit
 * arithmetic against BigInt, RVC expansion against GNU as (table below was produced by
 * assembling each compressed instruction and its 32-bit equivalent), and the FP fast path
 * (JS doubles + error-free transformations) against the exact BigInt path.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  I64,
  div32,
  div64,
  mul64,
  mulh64,
  sar64,
  shl64,
  shr64,
  toBigS,
  toBigU,
} from "../../../src/backends/soft/riscv/i64.js";
import { expandCompressed, expandRvc } from "../../../src/backends/soft/riscv/rvc.js";
import { Core } from "../../../src/backends/soft/riscv/core.js";
import { execFma, execOpFp } from "../../../src/backends/soft/riscv/fpu.js";
import {
  F32,
  F64,
  SF,
  sfAdd,
  sfDiv,
  sfFma,
  sfMul,
  sfSqrt,
} from "../../../src/backends/soft/riscv/softfloat.js";

/** Unsigned n-bit BigInts (fast-check 4 has no bigUintN). */
const bigU = (n: number): fc.Arbitrary<bigint> =>
  fc.bigInt({ min: 0n, max: (1n << BigInt(n)) - 1n });
const u64 = bigU(64);
/** 64-bit values biased towards the edges (0, ±1, powers of two, MIN/MAX). */
const edgy = fc.oneof(
  u64,
  fc.constantFrom(
    0n,
    1n,
    2n,
    (1n << 64n) - 1n,
    1n << 63n,
    (1n << 63n) - 1n,
    0xffffffffn,
    1n << 32n,
  ),
  fc.integer({ min: 0, max: 62 }).map((s) => 1n << BigInt(s)),
  bigU(21),
  bigU(37),
);
const lo = (v: bigint): number => Number(BigInt.asIntN(32, v));
const hi = (v: bigint): number => Number(BigInt.asIntN(32, v >> 32n));
const pair = (l: number): bigint => toBigU(l, I64.hi);

describe("i64 pair arithmetic agrees with BigInt", () => {
  it("mul64 / mulh / mulhu / mulhsu", () => {
    fc.assert(
      fc.property(edgy, edgy, (a, b) => {
        assert.equal(pair(mul64(lo(a), hi(a), lo(b), hi(b))), BigInt.asUintN(64, a * b));
        const sa = BigInt.asIntN(64, a);
        const sb = BigInt.asIntN(64, b);
        const h = (x: bigint, y: bigint): bigint => BigInt.asUintN(64, (x * y) >> 64n);
        assert.equal(pair(mulh64(lo(a), hi(a), lo(b), hi(b), true, true)), h(sa, sb));
        assert.equal(pair(mulh64(lo(a), hi(a), lo(b), hi(b), false, false)), h(a, b));
        assert.equal(pair(mulh64(lo(a), hi(a), lo(b), hi(b), true, false)), h(sa, b));
      }),
      { numRuns: 2000 },
    );
  });

  it("div64 / rem64 signed and unsigned, including x/0 and MIN/-1", () => {
    fc.assert(
      fc.property(edgy, edgy, (a, b) => {
        const sa = BigInt.asIntN(64, a);
        const sb = BigInt.asIntN(64, b);
        const want = {
          divu: b === 0n ? (1n << 64n) - 1n : a / b,
          remu: b === 0n ? a : a % b,
          div: b === 0n ? (1n << 64n) - 1n : BigInt.asUintN(64, sb === -1n ? -sa : sa / sb),
          rem: b === 0n ? a : BigInt.asUintN(64, sb === -1n ? 0n : sa % sb),
        };
        assert.equal(pair(div64(lo(a), hi(a), lo(b), hi(b), false, false)), want.divu);
        assert.equal(pair(div64(lo(a), hi(a), lo(b), hi(b), false, true)), want.remu);
        assert.equal(pair(div64(lo(a), hi(a), lo(b), hi(b), true, false)), want.div);
        assert.equal(pair(div64(lo(a), hi(a), lo(b), hi(b), true, true)), want.rem);
      }),
      { numRuns: 3000 },
    );
  });

  it("div32 family (W forms) with the spec's corner cases", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        fc.constantFrom(0, -1, 1, 7, -(2 ** 31)),
        (a, b) => {
          const ua = a >>> 0;
          const ub = b >>> 0;
          const div = b === 0 ? -1 : a === -(2 ** 31) && b === -1 ? a : Math.trunc(a / b) | 0;
          const rem = b === 0 ? a : a === -(2 ** 31) && b === -1 ? 0 : (a % b) | 0;
          assert.equal(div32(a, b, true, false), div);
          assert.equal(div32(a, b, true, true), rem);
          assert.equal(div32(a, b, false, false), b === 0 ? -1 : Math.floor(ua / ub) | 0);
          assert.equal(div32(a, b, false, true), b === 0 ? a : (ua % ub) | 0);
        },
      ),
    );
  });

  it("shifts by 0..63", () => {
    fc.assert(
      fc.property(u64, fc.integer({ min: 0, max: 63 }), (a, s) => {
        const sh = BigInt(s);
        assert.equal(pair(shl64(lo(a), hi(a), s)), BigInt.asUintN(64, a << sh));
        assert.equal(pair(shr64(lo(a), hi(a), s)), a >> sh);
        assert.equal(pair(sar64(lo(a), hi(a), s)), BigInt.asUintN(64, BigInt.asIntN(64, a) >> sh));
        assert.equal(toBigS(lo(a), hi(a)), BigInt.asIntN(64, a));
      }),
    );
  });
});

/** [compressed, expanded] pairs produced by GNU as 2.40 (see the file header). */
const RVC_PAIRS: readonly [number, number][] = [
  [0x1fe8, 0x3fc10513], // c.addi4spn a0, sp, 1020
  [0x3fe0, 0x0f87b407], // c.fld fs0, 248(a5)
  [0x5ef0, 0x07c6a603], // c.lw a2, 124(a3)
  [0x7cf8, 0x0f84b703], // c.ld a4, 248(s1)
  [0xa50c, 0x00b53427], // c.fsd fa1, 8(a0)
  [0xc3a4, 0x0497a023], // c.sw s1, 64(a5)
  [0xe468, 0x0ca43423], // c.sd a0, 200(s0)
  [0x0001, 0x00000013], // c.nop
  [0x1281, 0xfe028293], // c.addi t0, -32
  [0x257d, 0x01f5051b], // c.addiw a0, 31
  [0x50fd, 0xfff00093], // c.li ra, -1
  [0x7101, 0xe0010113], // c.addi16sp sp, -512
  [0x617d, 0x1f010113], // c.addi16sp sp, 496
  [0x7905, 0xfffe1937], // c.lui s2, 0xfffe1
  [0x637d, 0x0001f337], // c.lui t1, 31
  [0x93fd, 0x03f7d793], // c.srli a5, 63
  [0x8405, 0x40145413], // c.srai s0, 1
  [0x9afd, 0xfff6f693], // c.andi a3, -1
  [0x8c9d, 0x40f484b3], // c.sub s1, a5
  [0x8d2d, 0x00b54533], // c.xor a0, a1
  [0x8e55, 0x00d66633], // c.or a2, a3
  [0x8f7d, 0x00f77733], // c.and a4, a5
  [0x9c05, 0x4094043b], // c.subw s0, s1
  [0x9d21, 0x0085053b], // c.addw a0, s0
  [0x1ffe, 0x03ff9f93], // c.slli t6, 63
  [0x3ffe, 0x1f813f87], // c.fldsp ft11, 504(sp)
  [0x557e, 0x0fc12503], // c.lwsp a0, 252(sp)
  [0x60a2, 0x00813083], // c.ldsp ra, 8(sp)
  [0x8282, 0x00028067], // c.jr t0
  [0x857e, 0x01f00533], // c.mv a0, t6
  [0x9002, 0x00100073], // c.ebreak
  [0x9782, 0x000780e7], // c.jalr a5
  [0x942a, 0x00a40433], // c.add s0, a0
  [0xbfee, 0x1fb13c27], // c.fsdsp fs11, 504(sp)
  [0xdf86, 0x0e112e23], // c.swsp ra, 252(sp)
  [0xe022, 0x00813023], // c.sdsp s0, 0(sp)
  [0xaffd, 0x7fe0006f], // c.j .+2046
  [0xb001, 0x801ff06f], // c.j .-2048
  [0xd101, 0xf00500e3], // c.beqz a0, .-256
  [0xecfd, 0x0e049f63], // c.bnez s1, .+254
];

describe("RVC expansion", () => {
  it("matches GNU as for every instruction form", () => {
    for (const [c, e] of RVC_PAIRS) {
      assert.equal(expandCompressed(c) >>> 0, e, `0x${c.toString(16)}`);
    }
  });

  it("rejects reserved encodings", () => {
    // all-zero, c.addi4spn with 0, c.lwsp/c.ldsp x0, c.jr x0, c.addi16sp 0, c.lui 0, c.addiw x0.
    for (const c of [0x0000, 0x0004 & 0xffe3, 0x4002, 0x6002, 0x8002, 0x6101, 0x6281, 0x2001]) {
      assert.equal(expandCompressed(c), 0, `0x${c.toString(16)}`);
    }
    // Quadrant 0 funct3 = 4 is reserved.
    assert.equal(expandCompressed(0x8000), 0);
  });

  it("expandRvc gives every 16-bit value 0 or a 32-bit instruction, the same when asked again", () => {
    for (let c = 0; c < 65536; c++) {
      const e = expandRvc(c);
      if ((c & 3) === 3) assert.equal(e, 0);
      else {
        assert.ok(e === 0 || (e & 3) === 3);
        assert.equal(e, expandCompressed(c));
      }
      assert.equal(expandRvc(c), e);
    }
  });
});

/** Doubles whose bit patterns cover normals, subnormals, zeros, infinities and NaNs. */
const f64bits = fc.oneof(
  fc.double({ noNaN: true }).map((d) => {
    const v = new DataView(new ArrayBuffer(8));
    v.setFloat64(0, d, true);
    return v.getBigUint64(0, true);
  }),
  bigU(64),
  fc.constantFrom(0n, 1n << 63n, 0x7ff0000000000000n, 0x7ff8000000000000n, 0x7ff0000000000001n, 1n),
);
const f32bits = fc.oneof(
  fc.float({ noNaN: true }).map((f) => {
    const v = new DataView(new ArrayBuffer(4));
    v.setFloat32(0, f, true);
    return BigInt(v.getUint32(0, true));
  }),
  bigU(32),
);

/** OP-FP encoding: funct7, rs2, rm=RNE, rd=3, rs1=1. */
const opfp = (f7: number, rs2 = 2): number =>
  ((f7 << 25) | (rs2 << 20) | (1 << 15) | (3 << 7) | 0x53) >>> 0;

function runFp(
  single: boolean,
  setup: (c: Core) => void,
  insn: number,
  fma = false,
): [bigint, number] {
  const c = new Core(0);
  c.sstatus = 1 << 13;
  setup(c);
  if (fma) execFma(c, insn, insn);
  else execOpFp(c, insn, insn);
  const l = c.f[6] ?? 0;
  const h = c.f[7] ?? 0;
  return [single ? BigInt(l >>> 0) : toBigU(l, h), c.fflags];
}

function setF(c: Core, r: number, bits: bigint, single: boolean): void {
  c.f[2 * r] = lo(bits);
  c.f[2 * r + 1] = single ? -1 : hi(bits);
}

describe("FP fast path (JS doubles) agrees with the exact BigInt path, RNE", () => {
  const ops: readonly [string, number, (a: bigint, b: bigint, f: typeof F64) => bigint][] = [
    ["add", 0x00, (a, b, f) => sfAdd(a, b, f, 0)],
    ["sub", 0x04, (a, b, f) => sfAdd(a, b ^ (1n << BigInt(f.bits - 1)), f, 0)],
    ["mul", 0x08, (a, b, f) => sfMul(a, b, f, 0)],
    ["div", 0x0c, (a, b, f) => sfDiv(a, b, f, 0)],
  ];
  for (const [name, f7, ref] of ops) {
    for (const single of [false, true]) {
      it(`f${name}.${single ? "s" : "d"}: result bits and fflags`, () => {
        fc.assert(
          fc.property(single ? f32bits : f64bits, single ? f32bits : f64bits, (a, b) => {
            const fmt = single ? F32 : F64;
            const [got, flags] = runFp(
              single,
              (c) => {
                setF(c, 1, a, single);
                setF(c, 2, b, single);
              },
              opfp(f7 | (single ? 0 : 1)),
            );
            SF.flags = 0;
            const want = ref(a, b, fmt);
            assert.equal(got, want);
            assert.equal(flags, SF.flags);
          }),
          { numRuns: 1500 },
        );
      });
    }
  }

  it("fsqrt.d and fmadd.d", () => {
    fc.assert(
      fc.property(f64bits, f64bits, f64bits, (a, b, d) => {
        let [got, flags] = runFp(
          false,
          (c) => {
            setF(c, 1, a, false);
          },
          opfp(0x2d, 0),
        );
        SF.flags = 0;
        assert.equal(got, sfSqrt(a, F64, 0));
        assert.equal(flags, SF.flags);
        const fmadd = ((4 << 27) | (1 << 25) | (2 << 20) | (1 << 15) | (3 << 7) | 0x43) >>> 0;
        [got, flags] = runFp(
          false,
          (c) => {
            setF(c, 1, a, false);
            setF(c, 2, b, false);
            setF(c, 4, d, false);
          },
          fmadd,
          true,
        );
        SF.flags = 0;
        assert.equal(got, sfFma(a, b, d, F64, 0));
        assert.equal(flags, SF.flags);
      }),
      { numRuns: 1500 },
    );
  });

  it("the BigInt path agrees with JS arithmetic on finite doubles", () => {
    const bits = (d: number): bigint => {
      const v = new DataView(new ArrayBuffer(8));
      v.setFloat64(0, d, true);
      return v.getBigUint64(0, true);
    };
    fc.assert(
      fc.property(
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        (a, b) => {
          const r = (x: number): bigint => (Number.isNaN(x) ? 0x7ff8000000000000n : bits(x));
          assert.equal(sfAdd(bits(a), bits(b), F64, 0), r(a + b));
          assert.equal(sfMul(bits(a), bits(b), F64, 0), r(a * b));
          assert.equal(sfDiv(bits(a), bits(b), F64, 0), r(a / b));
          if (a >= 0) assert.equal(sfSqrt(bits(a), F64, 0), r(Math.sqrt(a)));
          SF.flags = 0;
        },
      ),
      { numRuns: 3000 },
    );
  });
});
