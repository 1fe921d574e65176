/* RV64A: LR/SC (success, failure after a store to the line, failure without reservation,
   reservation cleared by SC) and every AMO in W and D forms, W results sign-extended. */
#include "rt.h"

static volatile uint64_t cell;
static volatile uint64_t cell2;

#define AMO(insn, addr, v)                                                         \
  ({                                                                               \
    uint64_t r_;                                                                   \
    __asm__ volatile(insn " %0, %2, (%1)" : "=r"(r_) : "r"(addr), "r"((uint64_t)(v)) : "memory"); \
    r_;                                                                            \
  })

static void amo_d(void) {
  volatile uint64_t *p = &cell;
  *p = 10;
  check("amoswap.d", AMO("amoswap.d", p, 20), 10);
  check("amoswap.d.mem", *p, 20);
  check("amoadd.d", AMO("amoadd.d", p, 0xffffffffffffffffull), 20);
  check("amoadd.d.mem", *p, 19);
  *p = 0xff00ff00ff00ff00ull;
  AMO("amoxor.d", p, 0xffffffffffffffffull);
  check("amoxor.d", *p, 0x00ff00ff00ff00ffull);
  AMO("amoand.d", p, 0x0000ffff0000ffffull);
  check("amoand.d", *p, 0x000000ff000000ffull);
  AMO("amoor.d", p, 0xf000000000000000ull);
  check("amoor.d", *p, 0xf00000ff000000ffull);
  *p = 5;
  AMO("amomin.d", p, 0xfffffffffffffffeull);
  check("amomin.d", *p, 0xfffffffffffffffeull);
  AMO("amomax.d", p, 3);
  check("amomax.d", *p, 3);
  AMO("amominu.d", p, 0xfffffffffffffffeull);
  check("amominu.d", *p, 3);
  AMO("amomaxu.d", p, 0xfffffffffffffffeull);
  check("amomaxu.d", *p, 0xfffffffffffffffeull);
}

static void amo_w(void) {
  volatile uint32_t *p = (volatile uint32_t *)&cell;
  cell = 0x1111111180000000ull;
  check("amoadd.w.sext", AMO("amoadd.w", p, 1), 0xffffffff80000000ull);
  check("amoadd.w.mem", cell, 0x1111111180000001ull);
  check("amoswap.w", AMO("amoswap.w", p, 0x7fffffff), 0xffffffff80000001ull);
  AMO("amomin.w", p, 0x80000000u);
  check("amomin.w", cell, 0x1111111180000000ull);
  AMO("amomax.w", p, 0x7ffffffe);
  check("amomax.w", cell, 0x111111117ffffffeull);
  AMO("amominu.w", p, 0xffffffffu);
  check("amominu.w", cell, 0x111111117ffffffeull);
  AMO("amomaxu.w", p, 0xffffffffu);
  check("amomaxu.w", cell, 0x11111111ffffffffull);
  AMO("amoand.w", p, 0x0f0f0f0fu);
  AMO("amoor.w", p, 0x10000000u);
  AMO("amoxor.w", p, 0x00000001u);
  check("amo.logic.w", cell, 0x111111111f0f0f0eull);
}

static void lrsc(void) {
  uint64_t v, rc;
  cell2 = 42;
  __asm__ volatile("lr.d %0, (%2)\n addi %0, %0, 1\n sc.d %1, %0, (%2)"
                   : "=&r"(v), "=&r"(rc)
                   : "r"(&cell2)
                   : "memory");
  check("lr.sc.d.success", rc, 0);
  check("lr.sc.d.value", cell2, 43);
  __asm__ volatile("sc.d %0, %1, (%2)" : "=&r"(rc) : "r"(7ull), "r"(&cell2) : "memory");
  check("sc.d.no.reservation", rc != 0, 1);
  check("sc.d.no.reservation.mem", cell2, 43);
  __asm__ volatile("lr.d %0, (%2)\n sd zero, 0(%2)\n sc.d %1, %0, (%2)"
                   : "=&r"(v), "=&r"(rc)
                   : "r"(&cell2)
                   : "memory");
  /* A store to the reserved location may or may not break the reservation; both are legal,
     but memory must hold one of the two values. */
  check("lr.sd.sc.d.consistent", (rc == 0 && cell2 == 43) || (rc != 0 && cell2 == 0), 1);
  uint32_t *w = (uint32_t *)&cell2;
  cell2 = 0xaaaaaaaa80000000ull;
  __asm__ volatile("lr.w %0, (%2)\n sc.w %1, %3, (%2)"
                   : "=&r"(v), "=&r"(rc)
                   : "r"(w), "r"(0x12345678ull)
                   : "memory");
  check("lr.w.sext", v, 0xffffffff80000000ull);
  check("sc.w.success", rc, 0);
  check("sc.w.mem", cell2, 0xaaaaaaaa12345678ull);
  /* A spinlock built on amoswap.w.aq / amoswap.w.rl. */
  static volatile uint32_t lock;
  int acquired = 0;
  for (int i = 0; i < 3; i++) {
    uint64_t old;
    __asm__ volatile("amoswap.w.aq %0, %1, (%2)" : "=r"(old) : "r"(1ull), "r"(&lock) : "memory");
    if (old == 0) acquired++;
    __asm__ volatile("amoswap.w.rl zero, zero, (%0)" ::"r"(&lock) : "memory");
  }
  check("spinlock", acquired, 3);
}

int main(void) {
  amo_d();
  amo_w();
  lrsc();
  return 0;
}
