/* RV64M: MUL/MULH/MULHSU/MULHU, DIV/DIVU/REM/REMU and their W forms, including the spec's
   division-by-zero and overflow results (unprivileged spec, "M" chapter, table of corner
   cases): x/0 = -1, x%0 = x, MIN/-1 = MIN, MIN%-1 = 0. */
#include "rt.h"

#define R3(insn, a, b)                                                      \
  ({                                                                        \
    uint64_t r_;                                                            \
    __asm__ volatile(insn " %0, %1, %2" : "=r"(r_) : "r"((uint64_t)(a)), "r"((uint64_t)(b))); \
    r_;                                                                     \
  })

static const uint64_t vals[] = {0,
                                1,
                                2,
                                3,
                                0xffffffffffffffffull,
                                0x8000000000000000ull,
                                0x7fffffffffffffffull,
                                0x00000000ffffffffull,
                                0x0000000080000000ull,
                                0xffffffff80000000ull,
                                0x123456789abcdef0ull,
                                0xfedcba9876543210ull,
                                0x0000000100000001ull,
                                12345,
                                0xfffffffffffffff9ull};
#define N (sizeof(vals) / sizeof(vals[0]))

/* FNV-style mix of every result, compared against the same computation in C (the compiler's
   __int128 arithmetic is the reference for the high products). */
static void products(void) {
  uint64_t mul = 0, mulh = 0, mulhu = 0, mulhsu = 0, mulw = 0;
  uint64_t emul = 0, emulh = 0, emulhu = 0, emulhsu = 0, emulw = 0;
  for (unsigned i = 0; i < N; i++) {
    for (unsigned j = 0; j < N; j++) {
      volatile uint64_t va = vals[i], vb = vals[j];
      uint64_t a = va, b = vb;
      mul = mul * 31 + R3("mul", a, b);
      mulh = mulh * 31 + R3("mulh", a, b);
      mulhu = mulhu * 31 + R3("mulhu", a, b);
      mulhsu = mulhsu * 31 + R3("mulhsu", a, b);
      mulw = mulw * 31 + R3("mulw", a, b);
      emul = emul * 31 + a * b;
      emulh = emulh * 31 + (uint64_t)(((__int128)(int64_t)a * (__int128)(int64_t)b) >> 64);
      emulhu = emulhu * 31 + (uint64_t)(((unsigned __int128)a * b) >> 64);
      emulhsu = emulhsu * 31 + (uint64_t)(((__int128)(int64_t)a * (__int128)(unsigned __int128)b) >> 64);
      emulw = emulw * 31 + (uint64_t)(int64_t)(int32_t)((uint32_t)a * (uint32_t)b);
    }
  }
  check("mul", mul, emul);
  check("mulh", mulh, emulh);
  check("mulhu", mulhu, emulhu);
  check("mulhsu", mulhsu, emulhsu);
  check("mulw", mulw, emulw);
}

static void divisions(void) {
  uint64_t d = 0, du = 0, r = 0, ru = 0, dw = 0, duw = 0, rw = 0, ruw = 0;
  uint64_t ed = 0, edu = 0, er = 0, eru = 0, edw = 0, eduw = 0, erw = 0, eruw = 0;
  for (unsigned i = 0; i < N; i++) {
    for (unsigned j = 0; j < N; j++) {
      volatile uint64_t va = vals[i], vb = vals[j];
      uint64_t a = va, b = vb;
      d = d * 31 + R3("div", a, b);
      du = du * 31 + R3("divu", a, b);
      r = r * 31 + R3("rem", a, b);
      ru = ru * 31 + R3("remu", a, b);
      dw = dw * 31 + R3("divw", a, b);
      duw = duw * 31 + R3("divuw", a, b);
      rw = rw * 31 + R3("remw", a, b);
      ruw = ruw * 31 + R3("remuw", a, b);
      int64_t sa = (int64_t)a, sb = (int64_t)b;
      int32_t wa = (int32_t)a, wb = (int32_t)b;
      uint32_t ua = (uint32_t)a, ub = (uint32_t)b;
      /* Expected values per the spec's corner-case table. */
      uint64_t xd, xr, xdw, xrw;
      if (b == 0) {
        xd = ~0ull;
        xr = a;
      } else if (sa == (int64_t)0x8000000000000000ull && sb == -1) {
        xd = a;
        xr = 0;
      } else {
        xd = (uint64_t)(sa / sb);
        xr = (uint64_t)(sa % sb);
      }
      if (wb == 0) {
        xdw = ~0ull;
        xrw = (uint64_t)(int64_t)wa;
      } else if (wa == (int32_t)0x80000000 && wb == -1) {
        xdw = (uint64_t)(int64_t)wa;
        xrw = 0;
      } else {
        xdw = (uint64_t)(int64_t)(wa / wb);
        xrw = (uint64_t)(int64_t)(wa % wb);
      }
      ed = ed * 31 + xd;
      er = er * 31 + xr;
      edu = edu * 31 + (b == 0 ? ~0ull : a / b);
      eru = eru * 31 + (b == 0 ? a : a % b);
      edw = edw * 31 + xdw;
      erw = erw * 31 + xrw;
      eduw = eduw * 31 + (uint64_t)(int64_t)(int32_t)(ub == 0 ? 0xffffffffu : ua / ub);
      eruw = eruw * 31 + (uint64_t)(int64_t)(int32_t)(ub == 0 ? ua : ua % ub);
    }
  }
  check("div", d, ed);
  check("divu", du, edu);
  check("rem", r, er);
  check("remu", ru, eru);
  check("divw", dw, edw);
  check("divuw", duw, eduw);
  check("remw", rw, erw);
  check("remuw", ruw, eruw);
  check("div.by.zero", R3("div", 7, 0), ~0ull);
  check("divu.by.zero", R3("divu", 7, 0), ~0ull);
  check("rem.by.zero", R3("rem", 0xfffffffffffffff9ull, 0), 0xfffffffffffffff9ull);
  check("div.overflow", R3("div", 0x8000000000000000ull, ~0ull), 0x8000000000000000ull);
  check("rem.overflow", R3("rem", 0x8000000000000000ull, ~0ull), 0);
  check("divw.overflow", R3("divw", 0x80000000ull, ~0ull), 0xffffffff80000000ull);
  check("divuw.by.zero", R3("divuw", 5, 0x100000000ull), ~0ull);
  check("remuw.by.zero.sext", R3("remuw", 0x80000000ull, 0), 0xffffffff80000000ull);
}

int main(void) {
  products();
  divisions();
  return 0;
}
