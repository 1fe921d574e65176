/* The x86-64 live-migration test guest (the RISC-V one's twin: guests/riscv/migrate/dirty.c).
   Long mode as `regvisor run` starts an ELF64 (paging on, 4 GiB identity map, stack at the top
   of RAM). It keeps rewriting DIRTY_PAGES pages at 4 MiB (every 8-byte word of page i in pass g
   holds g << 32 | i), prints "tick N pass P" on port 0xe9 every TICK_CYCLES of TSC, fails if
   the TSC ever goes backwards, and after TICKS ticks checks every page holds what it last wrote.
   Ends by writing 0 (PASS) or 1 (FAIL) to the exit port 0xf4. */
#ifndef DIRTY_PAGES
#define DIRTY_PAGES 1024
#endif
#ifndef TICKS
#define TICKS 16
#endif
#define TICK_CYCLES 200000000UL
#define DIRTY_BASE 0x400000UL

static inline void outb(unsigned short port, unsigned char v) {
  __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline unsigned long rdtsc(void) {
  unsigned int lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return (unsigned long)hi << 32 | lo;
}
static void puts_e9(const char *s) {
  while (*s) outb(0xe9, (unsigned char)*s++);
}
static void put_num(unsigned long v) {
  char buf[24];
  int n = 0;
  do {
    buf[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) outb(0xe9, (unsigned char)buf[--n]);
}
static void finish(unsigned char status) {
  outb(0xf4, status);
  for (;;) __asm__ volatile("hlt");
}

void main_c(void) {
  volatile unsigned long *area = (volatile unsigned long *)DIRTY_BASE;
  unsigned long pass = 1, page = 0, tick = 0;
  unsigned long start = rdtsc(), last = start;
  puts_e9("dirty: start\n");
  while (tick < TICKS) {
    unsigned long value = pass << 32 | page;
    volatile unsigned long *p = area + page * 512;
    for (int w = 0; w < 512; w++) p[w] = value;
    if (++page == DIRTY_PAGES) {
      page = 0;
      pass++;
    }
    if ((page & 63) != 0) continue;
    unsigned long t = rdtsc();
    if (t < last) {
      puts_e9("FAIL guest time went backwards\n");
      finish(1);
    }
    last = t;
    if (t - start >= (tick + 1) * TICK_CYCLES) {
      tick++;
      puts_e9("tick ");
      put_num(tick);
      puts_e9(" pass ");
      put_num(pass);
      puts_e9("\n");
    }
  }
  for (unsigned long i = 0; i < DIRTY_PAGES; i++) {
    /* Pages past the current one hold the previous pass, or nothing yet in pass 1. */
    unsigned long want = i < page ? pass << 32 | i : pass == 1 ? 0 : (pass - 1) << 32 | i;
    volatile unsigned long *p = area + i * 512;
    for (int w = 0; w < 512; w++) {
      if (p[w] != want) {
        puts_e9("FAIL page ");
        put_num(i);
        puts_e9(" got pass ");
        put_num(p[w] >> 32);
        puts_e9(" want pass ");
        put_num(want >> 32);
        puts_e9("\n");
        finish(1);
      }
    }
  }
  puts_e9("PASS dirty ");
  put_num(DIRTY_PAGES);
  puts_e9(" pages, ");
  put_num(pass);
  puts_e9(" passes\n");
  finish(0);
}

__asm__(".globl _start\n_start:\n  and $-16, %rsp\n  call main_c\n1: hlt\n  jmp 1b\n");
