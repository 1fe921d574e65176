/* F: arithmetic with exact fflags, rounding modes (static and dynamic), fused multiply-adds,
   min/max/compare NaN rules, fclass, sign injection, NaN-boxing, conversions with saturation. */
#include "fp.h"

#define S2(INSN, a, b) (uint32_t)FOP2("fmv.w.x", "fmv.x.w", INSN, a, b)
#define S3(INSN, a, b, c) (uint32_t)FOP3("fmv.w.x", "fmv.x.w", INSN, a, b, c)
#define SI(INSN, a, b) FTOI("fmv.w.x", INSN, a, b)
#define IS(INSN, a) (uint32_t)ITOF("fmv.x.w", INSN, a)

#define ONE 0x3f800000u
#define TWO 0x40000000u
#define THREE 0x40400000u
#define INF 0x7f800000u
#define NINF 0xff800000u
#define QNAN 0x7fc00000u
#define SNAN 0x7f800001u

static void arith(void) {
  checkf("fadd.s", S2("fadd.s ft2, ft0, ft1", ONE, TWO), THREE, 0);
  checkf("fadd.s.inexact", S2("fadd.s ft2, ft0, ft1", ONE, 0x30800000u), ONE, NX);
  checkf("fsub.s.inf.inf", S2("fsub.s ft2, ft0, ft1", INF, INF), QNAN, NV);
  checkf("fmul.s.overflow", S2("fmul.s ft2, ft0, ft1", 0x71800000u, 0x71800000u), INF, OF | NX);
  checkf("fmul.s.underflow", S2("fmul.s ft2, ft0, ft1", 0x0d800000u, 0x0d800000u), 0, UF | NX);
  checkf("fdiv.s.by.zero", S2("fdiv.s ft2, ft0, ft1", ONE, 0), INF, DZ);
  checkf("fdiv.s.zero.zero", S2("fdiv.s ft2, ft0, ft1", 0, 0), QNAN, NV);
  checkf("fdiv.s.third", S2("fdiv.s ft2, ft0, ft1", ONE, THREE), 0x3eaaaaabu, NX);
  checkf("fsqrt.s.exact", S2("fsqrt.s ft2, ft0", 0x40800000u, 0), TWO, 0);
  checkf("fsqrt.s.two", S2("fsqrt.s ft2, ft0", TWO, 0), 0x3fb504f3u, NX);
  checkf("fsqrt.s.neg", S2("fsqrt.s ft2, ft0", 0xbf800000u, 0), QNAN, NV);
  checkf("fsqrt.s.negzero", S2("fsqrt.s ft2, ft0", 0x80000000u, 0), 0x80000000u, 0);
  checkf("fadd.s.snan", S2("fadd.s ft2, ft0, ft1", SNAN, ONE), QNAN, NV);
  checkf("fadd.s.qnan.payload", S2("fadd.s ft2, ft0, ft1", 0x7fc12345u, ONE), QNAN, 0);
  checkf("fadd.s.zero.signs", S2("fadd.s ft2, ft0, ft1", 0x80000000u, 0), 0, 0);
  checkf("fadd.s.rdn.zero", S2("fadd.s ft2, ft0, ft1, rdn", ONE, 0xbf800000u), 0x80000000u, 0);
  checkf("fdiv.s.subnormal.exact", S2("fdiv.s ft2, ft0, ft1", 0x00800000u, TWO), 0x00400000u, 0);
  checkf("fmul.s.subnormal.tie", S2("fmul.s ft2, ft0, ft1", 0x00000001u, 0x3f000000u), 0, UF | NX);
  checkf("fmul.s.tiny.after.rounding", S2("fmul.s ft2, ft0, ft1", 0x3f800001u, 0x007fffffu),
         0x00800000u, NX);
}

static void rounding(void) {
  /* 1 + 2^-24 is exactly halfway between 1 and 1 + 2^-23. */
  checkf("fadd.s.rne", S2("fadd.s ft2, ft0, ft1, rne", ONE, 0x33800000u), ONE, NX);
  checkf("fadd.s.rtz", S2("fadd.s ft2, ft0, ft1, rtz", ONE, 0x33800000u), ONE, NX);
  checkf("fadd.s.rdn", S2("fadd.s ft2, ft0, ft1, rdn", ONE, 0x33800000u), ONE, NX);
  checkf("fadd.s.rup", S2("fadd.s ft2, ft0, ft1, rup", ONE, 0x33800000u), 0x3f800001u, NX);
  checkf("fadd.s.rmm", S2("fadd.s ft2, ft0, ft1, rmm", ONE, 0x33800000u), 0x3f800001u, NX);
  checkf("fmul.s.overflow.rtz", S2("fmul.s ft2, ft0, ft1, rtz", 0x71800000u, 0x71800000u),
         0x7f7fffffu, OF | NX);
  checkf("fmul.s.overflow.rdn.neg", S2("fmul.s ft2, ft0, ft1, rdn", 0xf1800000u, 0x71800000u),
         NINF, OF | NX);
  __asm__ volatile("fsrmi 3"); /* frm = RUP */
  checkf("fadd.s.dyn.rup", S2("fadd.s ft2, ft0, ft1", ONE, 0x33800000u), 0x3f800001u, NX);
  check("frm.read", csr_read(frm), 3);
  __asm__ volatile("fsrmi 0");
  csr_write(fcsr, 0xff);
  check("fcsr.layout", csr_read(fcsr), 0xff);
  check("fflags.view", csr_read(fflags), 0x1f);
  check("frm.view", csr_read(frm), 7);
  csr_write(fcsr, 0);
}

static void fma(void) {
  checkf("fmadd.s", S3("fmadd.s ft3, ft0, ft1, ft2", TWO, THREE, ONE), 0x40e00000u, 0);
  checkf("fmsub.s", S3("fmsub.s ft3, ft0, ft1, ft2", TWO, THREE, ONE), 0x40a00000u, 0);
  checkf("fnmsub.s", S3("fnmsub.s ft3, ft0, ft1, ft2", TWO, THREE, ONE), 0xc0a00000u, 0);
  checkf("fnmadd.s", S3("fnmadd.s ft3, ft0, ft1, ft2", TWO, THREE, ONE), 0xc0e00000u, 0);
  checkf("fmadd.s.inf.zero.qnan", S3("fmadd.s ft3, ft0, ft1, ft2", INF, 0, QNAN), QNAN, NV);
  /* (1 + 2^-12)^2 - 1 = 2^-11 + 2^-24, exact only when fused (unfused: 2^-11, inexact). */
  checkf("fmsub.s.fused", S3("fmsub.s ft3, ft0, ft1, ft2", 0x3f800800u, 0x3f800800u, ONE),
         0x3a000400u, 0);
}

static void minmax_cmp_class(void) {
  checkf("fmin.s.qnan", S2("fmin.s ft2, ft0, ft1", ONE, QNAN), ONE, 0);
  checkf("fmax.s.snan", S2("fmax.s ft2, ft0, ft1", SNAN, ONE), ONE, NV);
  checkf("fmin.s.both.nan", S2("fmin.s ft2, ft0, ft1", QNAN, 0x7fc00001u), QNAN, 0);
  checkf("fmin.s.zeros", S2("fmin.s ft2, ft0, ft1", 0, 0x80000000u), 0x80000000u, 0);
  checkf("fmax.s.zeros", S2("fmax.s ft2, ft0, ft1", 0x80000000u, 0), 0, 0);
  checkf("fmax.s", S2("fmax.s ft2, ft0, ft1", 0xc0000000u, ONE), ONE, 0);
  checkf("feq.s.qnan", SI("feq.s %0, ft0, ft1", QNAN, ONE), 0, 0);
  checkf("feq.s.snan", SI("feq.s %0, ft0, ft1", SNAN, ONE), 0, NV);
  checkf("flt.s.qnan", SI("flt.s %0, ft0, ft1", QNAN, ONE), 0, NV);
  checkf("fle.s", SI("fle.s %0, ft0, ft1", ONE, ONE), 1, 0);
  checkf("flt.s", SI("flt.s %0, ft0, ft1", 0xbf800000u, ONE), 1, 0);
  checkf("feq.s.zeros", SI("feq.s %0, ft0, ft1", 0x80000000u, 0), 1, 0);
  static const uint32_t cls[10] = {NINF, 0xbf800000u, 0x80000001u, 0x80000000u, 0,
                                   0x00000001u, ONE, INF, SNAN, QNAN};
  uint64_t got = 0;
  for (int i = 0; i < 10; i++) got |= SI("fclass.s %0, ft0", cls[i], 0) == (1u << i) ? 1u << i : 0;
  checkf("fclass.s", got, 0x3ff, 0);
  checkf("fsgnj.s", S2("fsgnj.s ft2, ft0, ft1", ONE, 0xc0000000u), 0xbf800000u, 0);
  checkf("fsgnjn.s", S2("fsgnjn.s ft2, ft0, ft1", ONE, 0xc0000000u), ONE, 0);
  checkf("fsgnjx.s", S2("fsgnjx.s ft2, ft0, ft1", 0xbf800000u, 0xc0000000u), ONE, 0);
  checkf("fsgnj.s.nan.payload", S2("fsgnjn.s ft2, ft0, ft0", 0x7f800001u, 0), 0xff800001u, 0);
}

static void boxing(void) {
  uint64_t r;
  __asm__ volatile("fmv.d.x ft0, %1\n fadd.s ft1, ft0, ft0\n fmv.x.d %0, ft1"
                   : "=r"(r)
                   : "r"(0x000000003f800000ull)
                   : "ft0", "ft1");
  check("nanbox.unboxed.input", r, 0xffffffff7fc00000ull);
  __asm__ volatile("fmv.d.x ft0, %1\n fsgnj.s ft1, ft0, ft0\n fmv.x.d %0, ft1"
                   : "=r"(r)
                   : "r"(0xfffffffe3f800000ull)
                   : "ft0", "ft1");
  check("nanbox.fsgnj.unboxed", r, 0xffffffff7fc00000ull);
  static volatile uint32_t mem = 0x40490fdbu;
  __asm__ volatile("flw ft0, 0(%1)\n fmv.x.d %0, ft0" : "=r"(r) : "r"(&mem) : "ft0");
  check("flw.boxes", r, 0xffffffff40490fdbull);
  __asm__ volatile("fmv.w.x ft0, %1\n fmv.x.w %0, ft0" : "=r"(r) : "r"(0x80000000ull) : "ft0");
  check("fmv.x.w.sext", r, 0xffffffff80000000ull);
  static volatile uint32_t out;
  __asm__ volatile("fmv.d.x ft0, %0\n fsw ft0, 0(%1)" ::"r"(0x1234567887654321ull), "r"(&out)
                   : "ft0", "memory");
  check("fsw.low.bits", out, 0x87654321u);
}

static void conversions(void) {
  const uint32_t p25 = 0x40200000u, m25 = 0xc0200000u; /* ±2.5 */
  checkf("fcvt.w.s.rne", SI("fcvt.w.s %0, ft0, rne", p25, 0), 2, NX);
  checkf("fcvt.w.s.rtz", SI("fcvt.w.s %0, ft0, rtz", m25, 0), (uint64_t)-2, NX);
  checkf("fcvt.w.s.rdn", SI("fcvt.w.s %0, ft0, rdn", m25, 0), (uint64_t)-3, NX);
  checkf("fcvt.w.s.rup", SI("fcvt.w.s %0, ft0, rup", p25, 0), 3, NX);
  checkf("fcvt.w.s.rmm", SI("fcvt.w.s %0, ft0, rmm", m25, 0), (uint64_t)-3, NX);
  checkf("fcvt.w.s.rne.odd", SI("fcvt.w.s %0, ft0, rne", 0x3fc00000u, 0), 2, NX);
  checkf("fcvt.w.s.exact", SI("fcvt.w.s %0, ft0, rtz", 0xc2f60000u, 0), (uint64_t)-123, 0);
  checkf("fcvt.w.s.nan", SI("fcvt.w.s %0, ft0, rtz", QNAN, 0), 0x7fffffff, NV);
  checkf("fcvt.w.s.big", SI("fcvt.w.s %0, ft0, rtz", 0x4f32d05eu, 0), 0x7fffffff, NV);
  checkf("fcvt.w.s.small", SI("fcvt.w.s %0, ft0, rtz", 0xcf32d05eu, 0), 0xffffffff80000000ull, NV);
  checkf("fcvt.wu.s.neg", SI("fcvt.wu.s %0, ft0, rtz", 0xbf800000u, 0), 0, NV);
  checkf("fcvt.wu.s.negfrac", SI("fcvt.wu.s %0, ft0, rtz", 0xbf000000u, 0), 0, NX);
  checkf("fcvt.wu.s.sext", SI("fcvt.wu.s %0, ft0, rtz", 0x4f32d05eu, 0), 0xffffffffb2d05e00ull, 0);
  checkf("fcvt.l.s.big", SI("fcvt.l.s %0, ft0, rtz", 0x5f000000u, 0), 0x7fffffffffffffffull, NV);
  checkf("fcvt.l.s.min", SI("fcvt.l.s %0, ft0, rtz", 0xdf000000u, 0), 0x8000000000000000ull, 0);
  checkf("fcvt.lu.s.inf", SI("fcvt.lu.s %0, ft0, rtz", INF, 0), ~0ull, NV);
  checkf("fcvt.lu.s.ninf", SI("fcvt.lu.s %0, ft0, rtz", NINF, 0), 0, NV);
  checkf("fcvt.s.w", IS("fcvt.s.w ft2, %2", (uint64_t)-5), 0xc0a00000u, 0);
  checkf("fcvt.s.w.round", IS("fcvt.s.w ft2, %2", 16777217), 0x4b800000u, NX);
  checkf("fcvt.s.w.rup", IS("fcvt.s.w ft2, %2, rup", 16777217), 0x4b800001u, NX);
  checkf("fcvt.s.wu", IS("fcvt.s.wu ft2, %2", 0xffffffffull), 0x4f800000u, NX);
  checkf("fcvt.s.wu.ignores.hi", IS("fcvt.s.wu ft2, %2", 0xffffffff00000003ull), 0x40400000u, 0);
  checkf("fcvt.s.l", IS("fcvt.s.l ft2, %2", (1ull << 62) + 1), 0x5e800000u, NX);
  checkf("fcvt.s.lu", IS("fcvt.s.lu ft2, %2", ~0ull), 0x5f800000u, NX);
  checkf("fcvt.s.l.neg", IS("fcvt.s.l ft2, %2", 0x8000000000000000ull), 0xdf000000u, 0);
}

int main(void) {
  arith();
  rounding();
  fma();
  minmax_cmp_class();
  boxing();
  conversions();
  return 0;
}
