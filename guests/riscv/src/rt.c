#include "rt.h"

sbiret sbi_call(long eid, long fid, long a0, long a1, long a2) {
  register long r0 __asm__("a0") = a0;
  register long r1 __asm__("a1") = a1;
  register long r2 __asm__("a2") = a2;
  register long r6 __asm__("a6") = fid;
  register long r7 __asm__("a7") = eid;
  __asm__ volatile("ecall" : "+r"(r0), "+r"(r1) : "r"(r2), "r"(r6), "r"(r7) : "memory");
  sbiret r = {r0, r1};
  return r;
}

void putch(char c) {
  register long r0 __asm__("a0") = c;
  register long r7 __asm__("a7") = 1; /* legacy console_putchar */
  __asm__ volatile("ecall" : "+r"(r0) : "r"(r7) : "memory", "a1");
}

void puts_(const char *s) {
  while (*s) putch(*s++);
}

void put_hex(uint64_t v) {
  puts_("0x");
  for (int i = 60; i >= 0; i -= 4) putch("0123456789abcdef"[(v >> i) & 15]);
}

void put_dec(int64_t v) {
  char buf[24];
  int n = 0;
  uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
  if (v < 0) putch('-');
  do {
    buf[n++] = '0' + u % 10;
    u /= 10;
  } while (u);
  while (n) putch(buf[--n]);
}

void pass(const char *name) {
  puts_("PASS ");
  puts_(name);
  putch('\n');
}

void fail(const char *name, uint64_t got, uint64_t want) {
  puts_("FAIL ");
  puts_(name);
  puts_(" got=");
  put_hex(got);
  puts_(" want=");
  put_hex(want);
  putch('\n');
}

void check(const char *name, uint64_t got, uint64_t want) {
  if (got == want)
    pass(name);
  else
    fail(name, got, want);
}

void *memset(void *d, int c, unsigned long n) {
  unsigned char *p = d;
  while (n--) *p++ = (unsigned char)c;
  return d;
}

void *memcpy(void *d, const void *s, unsigned long n) {
  unsigned char *p = d;
  const unsigned char *q = s;
  while (n--) *p++ = *q++;
  return d;
}

volatile uint64_t trap_cause, trap_tval, trap_epc, trap_status, trap_resume;
volatile uint64_t trap_log[16];
volatile int trap_count;
void (*volatile irq_hook)(struct frame *f);

void reset_trap(void) {
  trap_cause = trap_tval = trap_epc = trap_status = trap_resume = 0;
  trap_count = 0;
}

void handle_trap(struct frame *f) {
  uint64_t cause = f->scause;
  if (cause & IRQ_BIT) {
    if (irq_hook)
      irq_hook(f);
    else
      csr_clear(sie, ~0ul);
    return;
  }
  trap_cause = cause;
  trap_tval = f->stval;
  trap_epc = f->sepc;
  trap_status = csr_read(sstatus);
  if (trap_count < 16) trap_log[trap_count] = cause;
  trap_count++;
  if (cause == 8) user_return(f->x[10]); /* ecall from U: back to run_user's caller */
  if (trap_resume) {
    f->sepc = trap_resume;
    trap_resume = 0;
  } else {
    uint16_t h = *(volatile uint16_t *)f->sepc;
    f->sepc += (h & 3) == 3 ? 4 : 2;
  }
}
