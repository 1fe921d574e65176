/* Misaligned accesses: loads/stores of every width at every misalignment, within a page and
   across a page boundary, FP loads/stores, and the atomics, which must trap instead
   (LR → load address misaligned 4, AMO → store/AMO address misaligned 6, stval = address). */
#include "rt.h"

static uint8_t buf[8192] __attribute__((aligned(4096)));

static uint64_t ld_at(uint8_t *p, int size, int sign) {
  uint64_t r;
  switch (size * 2 + sign) {
    case 4: __asm__ volatile("lhu %0, 0(%1)" : "=r"(r) : "r"(p) : "memory"); break;
    case 5: __asm__ volatile("lh %0, 0(%1)" : "=r"(r) : "r"(p) : "memory"); break;
    case 8: __asm__ volatile("lwu %0, 0(%1)" : "=r"(r) : "r"(p) : "memory"); break;
    case 9: __asm__ volatile("lw %0, 0(%1)" : "=r"(r) : "r"(p) : "memory"); break;
    default: __asm__ volatile("ld %0, 0(%1)" : "=r"(r) : "r"(p) : "memory"); break;
  }
  return r;
}

static void st_at(uint8_t *p, int size, uint64_t v) {
  switch (size) {
    case 2: __asm__ volatile("sh %0, 0(%1)" ::"r"(v), "r"(p) : "memory"); break;
    case 4: __asm__ volatile("sw %0, 0(%1)" ::"r"(v), "r"(p) : "memory"); break;
    default: __asm__ volatile("sd %0, 0(%1)" ::"r"(v), "r"(p) : "memory"); break;
  }
}

static uint64_t expect(uint8_t *p, int size, int sign) {
  uint64_t v = 0;
  for (int i = size - 1; i >= 0; i--) v = (v << 8) | p[i];
  if (sign && size < 8 && (v >> (size * 8 - 1)) & 1) v |= ~0ull << (size * 8);
  return v;
}

static void sweep(const char *name, uint8_t *base) {
  int bad = 0;
  for (int size = 2; size <= 8; size *= 2) {
    for (int off = 1; off < size; off++) {
      uint8_t *p = base + off;
      for (int sign = 0; sign <= (size < 8); sign++)
        if (ld_at(p, size, sign) != expect(p, size, sign)) bad++;
      uint64_t v = 0x8877665544332211ull * (uint64_t)(off + size);
      st_at(p, size, v);
      uint64_t mask = size == 8 ? ~0ull : (1ull << (size * 8)) - 1;
      if (expect(p, size, 0) != (v & mask)) bad++;
    }
  }
  check(name, bad, 0);
}

int main(void) {
  reset_trap();
  for (int i = 0; i < 8192; i++) buf[i] = (uint8_t)(i * 7 + 0x81);
  sweep("misaligned.in.page", buf + 64);
  sweep("misaligned.cross.page", buf + 4096 - 8);
  check("misaligned.no.traps.visible", trap_count, 0);
  uint64_t r;
  __asm__ volatile("fld ft0, 0(%1)\n fmv.x.d %0, ft0" : "=r"(r) : "r"(buf + 4093) : "ft0", "memory");
  check("misaligned.fld.cross", r, expect(buf + 4093, 8, 0));
  __asm__ volatile("li t0, 0x3f800000\n fmv.w.x ft0, t0\n fsw ft0, 0(%0)" ::"r"(buf + 4094)
                   : "t0", "ft0", "memory");
  check("misaligned.fsw.cross", expect(buf + 4094, 4, 0), 0x3f800000);
  __asm__ volatile("flw ft0, 0(%1)\n fmv.x.w %0, ft0" : "=r"(r) : "r"(buf + 4094) : "ft0", "memory");
  check("misaligned.flw.cross", r, 0x3f800000);
  reset_trap();
  __asm__ volatile("lr.w %0, (%1)" : "=r"(r) : "r"(buf + 2) : "memory");
  check("lr.w.misaligned.cause", trap_cause, 4);
  check("lr.w.misaligned.tval", trap_tval, (uint64_t)(buf + 2));
  reset_trap();
  __asm__ volatile("amoadd.d %0, %2, (%1)" : "=r"(r) : "r"(buf + 4), "r"(1ull) : "memory");
  /* Store/AMO address misaligned (6); QEMU 7.2 reports 4 for AMOs, so either passes here and
     the unit tests pin 6. */
  check("amoadd.d.misaligned.cause", trap_cause == 6 || trap_cause == 4, 1);
  check("amoadd.d.misaligned.tval", trap_tval, (uint64_t)(buf + 4));
  reset_trap();
  __asm__ volatile("amoswap.w %0, %2, (%1)" : "=r"(r) : "r"(buf + 1), "r"(1ull) : "memory");
  check("amoswap.w.misaligned.cause", trap_cause == 6 || trap_cause == 4, 1);
  return 0;
}
