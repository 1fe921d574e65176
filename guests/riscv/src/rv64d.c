/* D: double arithmetic, fflags, fused multiply-add exactness, subnormals and tininess after
   rounding, conversions between formats and to/from 64-bit integers, NaN payload rules. */
#include "fp.h"

#define D2(INSN, a, b) FOP2("fmv.d.x", "fmv.x.d", INSN, a, b)
#define D3(INSN, a, b, c) FOP3("fmv.d.x", "fmv.x.d", INSN, a, b, c)
#define DI(INSN, a, b) FTOI("fmv.d.x", INSN, a, b)
#define ID(INSN, a) ITOF("fmv.x.d", INSN, a)

#define ONE 0x3ff0000000000000ull
#define TWO 0x4000000000000000ull
#define THREE 0x4008000000000000ull
#define TENTH 0x3fb999999999999aull
#define TEN 0x4024000000000000ull
#define INF 0x7ff0000000000000ull
#define NINF 0xfff0000000000000ull
#define QNAN 0x7ff8000000000000ull
#define SNAN 0x7ff0000000000001ull
#define MIN_NORMAL 0x0010000000000000ull

static void arith(void) {
  checkf("fadd.d", D2("fadd.d ft2, ft0, ft1", ONE, TWO), THREE, 0);
  checkf("fadd.d.tenths", D2("fadd.d ft2, ft0, ft1", TENTH, 0x3fc999999999999aull),
         0x3fd3333333333334ull, NX);
  checkf("fsub.d", D2("fsub.d ft2, ft0, ft1", ONE, ONE), 0, 0);
  checkf("fsub.d.rdn.zero", D2("fsub.d ft2, ft0, ft1, rdn", ONE, ONE), 0x8000000000000000ull, 0);
  checkf("fmul.d", D2("fmul.d ft2, ft0, ft1", THREE, TENTH), 0x3fd3333333333334ull, NX);
  checkf("fmul.d.exact", D2("fmul.d ft2, ft0, ft1", THREE, TWO), 0x4018000000000000ull, 0);
  checkf("fdiv.d.third", D2("fdiv.d ft2, ft0, ft1", ONE, THREE), 0x3fd5555555555555ull, NX);
  checkf("fdiv.d.third.rup", D2("fdiv.d ft2, ft0, ft1, rup", ONE, THREE), 0x3fd5555555555556ull, NX);
  checkf("fdiv.d.by.zero", D2("fdiv.d ft2, ft0, ft1", 0xbff0000000000000ull, 0), NINF, DZ);
  checkf("fdiv.d.inf.inf", D2("fdiv.d ft2, ft0, ft1", INF, INF), QNAN, NV);
  checkf("fsqrt.d.two", D2("fsqrt.d ft2, ft0", TWO, 0), 0x3ff6a09e667f3bcdull, NX);
  checkf("fsqrt.d.two.rtz", D2("fsqrt.d ft2, ft0, rtz", TWO, 0), 0x3ff6a09e667f3bccull, NX);
  checkf("fsqrt.d.exact", D2("fsqrt.d ft2, ft0", 0x4022000000000000ull, 0), THREE, 0);
  checkf("fsqrt.d.inf", D2("fsqrt.d ft2, ft0", INF, 0), INF, 0);
  checkf("fmul.d.overflow", D2("fmul.d ft2, ft0, ft1", 0x7fe0000000000000ull, TWO), INF, OF | NX);
  checkf("fmul.d.overflow.rtz", D2("fmul.d ft2, ft0, ft1, rtz", 0x7fe0000000000000ull, TWO),
         0x7fefffffffffffffull, OF | NX);
  checkf("fdiv.d.subnormal.exact", D2("fdiv.d ft2, ft0, ft1", MIN_NORMAL, TWO),
         0x0008000000000000ull, 0);
  checkf("fmul.d.subnormal.round", D2("fmul.d ft2, ft0, ft1", 1, 0x3ff8000000000000ull), 2,
         UF | NX);
  checkf("fdiv.d.underflow.zero", D2("fdiv.d ft2, ft0, ft1", 1, 0x4010000000000000ull), 0, UF | NX);
  checkf("fmul.d.tiny.after.rounding",
         D2("fmul.d ft2, ft0, ft1", 0x3ff0000000000001ull, 0x000fffffffffffffull), MIN_NORMAL, NX);
  checkf("fadd.d.snan", D2("fadd.d ft2, ft0, ft1", SNAN, ONE), QNAN, NV);
  checkf("fmul.d.inf.zero", D2("fmul.d ft2, ft0, ft1", INF, 0), QNAN, NV);
}

static void fma(void) {
  /* 0.1 * 10 - 1: exactly 2^-54 when fused (unfused gives 0). */
  checkf("fmsub.d.fused", D3("fmsub.d ft3, ft0, ft1, ft2", TENTH, TEN, ONE), 0x3c90000000000000ull, 0);
  checkf("fmadd.d", D3("fmadd.d ft3, ft0, ft1, ft2", TWO, THREE, ONE), 0x401c000000000000ull, 0);
  checkf("fnmadd.d", D3("fnmadd.d ft3, ft0, ft1, ft2", TWO, THREE, ONE), 0xc01c000000000000ull, 0);
  checkf("fnmsub.d", D3("fnmsub.d ft3, ft0, ft1, ft2", TWO, THREE, ONE), 0xc014000000000000ull, 0);
  checkf("fmadd.d.rounded", D3("fmadd.d ft3, ft0, ft1, ft2", TENTH, TENTH, TENTH),
         0x3fbc28f5c28f5c29ull, NX);
  checkf("fmadd.d.inf.minus.inf",
         D3("fmadd.d ft3, ft0, ft1, ft2", INF, ONE, NINF), QNAN, NV);
  checkf("fmadd.d.zero.signs", D3("fmadd.d ft3, ft0, ft1, ft2", 0x8000000000000000ull, ONE,
                                  0x8000000000000000ull), 0x8000000000000000ull, 0);
}

static void misc(void) {
  checkf("fmin.d.nan", D2("fmin.d ft2, ft0, ft1", QNAN, TWO), TWO, 0);
  checkf("fmax.d.zeros", D2("fmax.d ft2, ft0, ft1", 0x8000000000000000ull, 0), 0, 0);
  checkf("fmin.d", D2("fmin.d ft2, ft0, ft1", NINF, TWO), NINF, 0);
  checkf("feq.d.zeros", DI("feq.d %0, ft0, ft1", 0x8000000000000000ull, 0), 1, 0);
  checkf("fle.d.snan", DI("fle.d %0, ft0, ft1", SNAN, ONE), 0, NV);
  checkf("fclass.d.sub", DI("fclass.d %0, ft0", 0x8000000000000001ull, 0), 1 << 2, 0);
  checkf("fclass.d.qnan", DI("fclass.d %0, ft0", QNAN, 0), 1 << 9, 0);
  checkf("fclass.d.snan", DI("fclass.d %0, ft0", SNAN, 0), 1 << 8, 0);
  checkf("fclass.d.normal", DI("fclass.d %0, ft0", TWO, 0), 1 << 6, 0);
  checkf("fsgnjn.d.payload", D2("fsgnjn.d ft2, ft0, ft0", SNAN, 0), 0xfff0000000000001ull, 0);
  checkf("fsgnjx.d", D2("fsgnjx.d ft2, ft0, ft1", 0xc000000000000000ull, NINF), TWO, 0);
  static volatile uint64_t m = 0x7ff4000000000abcull, out;
  uint64_t r;
  __asm__ volatile("fld ft0, 0(%1)\n fsd ft0, 0(%2)\n fmv.x.d %0, ft0"
                   : "=r"(r)
                   : "r"(&m), "r"(&out)
                   : "ft0", "memory");
  check("fld.fsd.raw.snan", out, 0x7ff4000000000abcull);
  check("fmv.x.d.raw", r, 0x7ff4000000000abcull);
}

static void conversions(void) {
  checkf("fcvt.s.d", D2("fcvt.s.d ft2, ft0", TENTH, 0), 0xffffffff3dcccccdull, NX);
  checkf("fcvt.s.d.overflow", D2("fcvt.s.d ft2, ft0", 0x7e37e43c8800759cull, 0),
         0xffffffff7f800000ull, OF | NX);
  checkf("fcvt.s.d.overflow.rtz", D2("fcvt.s.d ft2, ft0, rtz", 0x7e37e43c8800759cull, 0),
         0xffffffff7f7fffffull, OF | NX);
  checkf("fcvt.s.d.nan", D2("fcvt.s.d ft2, ft0", SNAN, 0), 0xffffffff7fc00000ull, NV);
  checkf("fcvt.s.d.subnormal", D2("fcvt.s.d ft2, ft0", 0x36a0000000000000ull, 0),
         0xffffffff00000001ull, 0);
  checkf("fcvt.s.d.subnormal.tie", D2("fcvt.s.d ft2, ft0", 0x3690000000000000ull, 0),
         0xffffffff00000000ull, UF | NX);
  uint64_t r, f;
  __asm__ volatile("fsflags zero\n fmv.w.x ft0, %2\n fcvt.d.s ft1, ft0\n fmv.x.d %0, ft1\n frflags %1"
                   : "=&r"(r), "=&r"(f)
                   : "r"(0x7f800001ull)
                   : "ft0", "ft1");
  fl = f;
  checkf("fcvt.d.s.snan", r, QNAN, NV);
  __asm__ volatile("fsflags zero\n fmv.w.x ft0, %2\n fcvt.d.s ft1, ft0\n fmv.x.d %0, ft1\n frflags %1"
                   : "=&r"(r), "=&r"(f)
                   : "r"(0x3dcccccdull)
                   : "ft0", "ft1");
  fl = f;
  checkf("fcvt.d.s", r, 0x3fb99999a0000000ull, 0);
  checkf("fcvt.l.d.min", DI("fcvt.l.d %0, ft0, rtz", 0xc3e0000000000000ull, 0),
         0x8000000000000000ull, 0);
  checkf("fcvt.l.d.big", DI("fcvt.l.d %0, ft0, rtz", 0x43e0000000000000ull, 0),
         0x7fffffffffffffffull, NV);
  checkf("fcvt.lu.d", DI("fcvt.lu.d %0, ft0, rtz", 0x43efffffffffffffull, 0),
         0xfffffffffffff800ull, 0);
  checkf("fcvt.lu.d.nan", DI("fcvt.lu.d %0, ft0, rtz", QNAN, 0), ~0ull, NV);
  checkf("fcvt.w.d.rne", DI("fcvt.w.d %0, ft0, rne", 0x4004000000000000ull, 0), 2, NX);
  checkf("fcvt.w.d.neg.big", DI("fcvt.w.d %0, ft0, rtz", 0xc1e0000000200000ull, 0),
         0xffffffff80000000ull, NV);
  checkf("fcvt.wu.d.frac", DI("fcvt.wu.d %0, ft0, rup", 0x3fe0000000000000ull, 0), 1, NX);
  checkf("fcvt.d.l.round", ID("fcvt.d.l ft2, %2", (1ull << 53) + 1), 0x4340000000000000ull, NX);
  checkf("fcvt.d.l.round.rup", ID("fcvt.d.l ft2, %2, rup", (1ull << 53) + 1),
         0x4340000000000001ull, NX);
  checkf("fcvt.d.lu", ID("fcvt.d.lu ft2, %2", ~0ull), 0x43f0000000000000ull, NX);
  checkf("fcvt.d.w", ID("fcvt.d.w ft2, %2", 0xffffffff80000000ull), 0xc1e0000000000000ull, 0);
  checkf("fcvt.d.wu", ID("fcvt.d.wu ft2, %2", 0x12345678ffffffffull), 0x41efffffffe00000ull, 0);
  checkf("fmv.d.x", ID("fmv.d.x ft2, %2", 0x0123456789abcdefull), 0x0123456789abcdefull, 0);
}

int main(void) {
  arith();
  fma();
  misc();
  conversions();
  return 0;
}
