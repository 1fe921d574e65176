/* A guest for live-migration tests: it keeps rewriting DIRTY_PAGES pages (whole pages, pass after
   pass; every 8-byte word of page i in pass g holds g << 32 | i), prints one progress line
   "tick N" every TICK_NS of guest time, checks that guest time never goes backwards, and after
   TICKS ticks checks that every page holds what it last wrote there: a page lost or stale after
   a migration prints FAIL and ends with status 1. PASS ends with status 0.

   Built with -DHARTS=2 (run with --cpus 2), hart 0 starts hart 1 through SBI HSM and each hart
   rewrites its own half of the pages; hart 1's lines read "hart1 tick N …", hart 0 prints PASS
   once both halves checked out. Lines are printed under a lock, so they never mix. */
#include "../tests/sbi.h"

#ifndef DIRTY_PAGES
#define DIRTY_PAGES 1024
#endif
#ifndef TICKS
#define TICKS 25
#endif
#ifndef HARTS
#define HARTS 1
#endif
/* The virt machine's timebase is 10 MHz (/cpus/timebase-frequency): 100 ms = 1,000,000 ticks. */
#define TICK 1000000UL
#define DIRTY_BASE 0x80400000UL
/* SBI HSM (SBI spec v2.0 ch. 9): hart_start(hartid, start_addr, opaque). */
#define SBI_HSM 0x48534D
#define HSM_HART_START 0

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

static volatile int console_lock;
static volatile int halves_ok;
static volatile int halves_done;
unsigned long hart1_stack[512];

static void lock(void) {
  while (__atomic_exchange_n(&console_lock, 1, __ATOMIC_ACQUIRE) != 0) {
  }
}

static void unlock(void) { __atomic_store_n(&console_lock, 0, __ATOMIC_RELEASE); }

/* Rewrites pages [first, first + count) until TICKS ticks passed, then checks them: the number
   of passes when all hold what they last got, else 0. */
static unsigned long dirty(unsigned long hart, unsigned long first, unsigned long count) {
  volatile unsigned long *area = (volatile unsigned long *)DIRTY_BASE;
  unsigned long pass = 1, page = 0, tick = 0;
  unsigned long start = now(), last = start;
  while (tick < TICKS) {
    unsigned long value = pass << 32 | (first + page);
    volatile unsigned long *p = area + (first + page) * 512;
    for (int w = 0; w < 512; w++) p[w] = value;
    if (++page == count) {
      page = 0;
      pass++;
    }
    if ((page & 63) != 0) continue;
    unsigned long t = now();
    if (t < last) {
      lock();
      legacy_puts("FAIL guest time went backwards\n");
      unlock();
      return 0;
    }
    last = t;
    if (t - start >= (tick + 1) * TICK) {
      tick++;
      lock();
      if (hart != 0) legacy_puts("hart1 ");
      legacy_puts("tick ");
      put_num(tick);
      legacy_puts(" pass ");
      put_num(pass);
      legacy_puts("\n");
      unlock();
    }
  }
  for (unsigned long i = 0; i < count; i++) {
    /* Pages past the current one hold the previous pass, or nothing yet in pass 1. */
    unsigned long want = i < page ? pass << 32 | (first + i)
                         : pass == 1 ? 0
                                     : (pass - 1) << 32 | (first + i);
    volatile unsigned long *p = area + (first + i) * 512;
    for (int w = 0; w < 512; w++) {
      if (p[w] != want) {
        lock();
        legacy_puts("FAIL page ");
        put_num(first + i);
        legacy_puts(" word ");
        put_num((unsigned long)w);
        legacy_puts(" got pass ");
        put_num(p[w] >> 32);
        legacy_puts(" want pass ");
        put_num(want >> 32);
        legacy_puts("\n");
        unlock();
        return 0;
      }
    }
  }
  return pass;
}

/* Hart 1's C entry: its half, then report and park. */
__attribute__((noreturn)) void hart1_main(void) {
  int ok = dirty(1, DIRTY_PAGES / 2, DIRTY_PAGES / 2) != 0;
  __atomic_fetch_add(&halves_ok, ok, __ATOMIC_RELEASE);
  __atomic_fetch_add(&halves_done, 1, __ATOMIC_RELEASE);
  for (;;) __asm__ volatile("wfi");
}

/* Hart 1's entry (SBI HSM hart_start: a0 = hart id): its own stack, then hart1_main. */
__asm__(".globl hart1_entry\n"
        "hart1_entry:\n"
        "  la sp, hart1_stack + 4096\n"
        "  j hart1_main\n");
void hart1_entry(void);

int main(void) {
  legacy_puts("dirty: start\n");
  unsigned long mine = DIRTY_PAGES;
  if (HARTS == 2) {
    struct sbiret r = sbi_call(SBI_HSM, HSM_HART_START, 1, (long)hart1_entry, 0);
    if (r.error != 0) {
      legacy_puts("FAIL hart 1 did not start (run with --cpus 2)\n");
      return 1;
    }
    mine = DIRTY_PAGES / 2;
  }
  unsigned long passes = dirty(0, 0, mine);
  if (HARTS == 2) {
    while (__atomic_load_n(&halves_done, __ATOMIC_ACQUIRE) == 0) {
    }
    if (__atomic_load_n(&halves_ok, __ATOMIC_ACQUIRE) != 1) passes = 0;
  }
  if (passes == 0) return 1;
  legacy_puts("PASS dirty ");
  put_num(DIRTY_PAGES);
  legacy_puts(" pages, ");
  put_num(passes);
  legacy_puts(" passes\n");
  return 0;
}
