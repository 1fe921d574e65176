/* A guest for live-migration tests: it keeps rewriting DIRTY_PAGES pages (whole pages, pass after
   pass; every 8-byte word of page i in pass g holds g << 32 | i), prints one progress line
   "tick N" every TICK_NS of guest time, checks that guest time never goes backwards, and after
   TICKS ticks checks that every page holds what it last wrote there: a page lost or stale after
   a migration prints FAIL and ends with status 1. PASS ends with status 0. */
#include "../tests/sbi.h"

#ifndef DIRTY_PAGES
#define DIRTY_PAGES 1024
#endif
#ifndef TICKS
#define TICKS 25
#endif
/* The virt machine's timebase is 10 MHz (/cpus/timebase-frequency): 100 ms = 1,000,000 ticks. */
#define TICK 1000000UL
#define DIRTY_BASE 0x80400000UL

static unsigned long now(void) {
  unsigned long t;
  __asm__ volatile("csrr %0, time" : "=r"(t));
  return t;
}

static void put_num(unsigned long v) {
  char buf[24];
  int n = 0;
  do {
    buf[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) sbi_call(SBI_LEGACY_PUTCHAR, 0, buf[--n], 0, 0);
}

int main(void) {
  volatile unsigned long *area = (volatile unsigned long *)DIRTY_BASE;
  unsigned long pass = 1, page = 0, tick = 0;
  unsigned long start = now(), last = start;
  legacy_puts("dirty: start\n");
  while (tick < TICKS) {
    unsigned long value = pass << 32 | page;
    volatile unsigned long *p = area + page * 512;
    for (int w = 0; w < 512; w++) p[w] = value;
    if (++page == DIRTY_PAGES) {
      page = 0;
      pass++;
    }
    if ((page & 63) != 0) continue;
    unsigned long t = now();
    if (t < last) {
      legacy_puts("FAIL guest time went backwards\n");
      return 1;
    }
    last = t;
    if (t - start >= (tick + 1) * TICK) {
      tick++;
      legacy_puts("tick ");
      put_num(tick);
      legacy_puts(" pass ");
      put_num(pass);
      legacy_puts("\n");
    }
  }
  for (unsigned long i = 0; i < DIRTY_PAGES; i++) {
    /* Pages past the current one hold the previous pass, or nothing yet in pass 1. */
    unsigned long want = i < page ? pass << 32 | i : pass == 1 ? 0 : (pass - 1) << 32 | i;
    volatile unsigned long *p = area + i * 512;
    for (int w = 0; w < 512; w++) {
      if (p[w] != want) {
        legacy_puts("FAIL page ");
        put_num(i);
        legacy_puts(" word ");
        put_num((unsigned long)w);
        legacy_puts(" got pass ");
        put_num(p[w] >> 32);
        legacy_puts(" want pass ");
        put_num(want >> 32);
        legacy_puts("\n");
        return 1;
      }
    }
  }
  legacy_puts("PASS dirty ");
  put_num(DIRTY_PAGES);
  legacy_puts(" pages, ");
  put_num(pass);
  legacy_puts(" passes\n");
  return 0;
}
