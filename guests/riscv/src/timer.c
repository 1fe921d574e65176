/* Timer and interrupt priority: SBI TIME set_timer raises STIP when time reaches the compare
   value (delivered as scause = 2^63 | 5), set_timer(-1) lowers it, WFI wakes on a pending
   enabled interrupt (even with sstatus.SIE = 0), SSI is taken before STI, vectored entry for
   the timer (base + 4 * 5). */
#include "rt.h"

#define SBI_TIME 0x54494d45

extern char vec_table[];
extern volatile uint64_t vec_hit;

static volatile int order[4];
static volatile int n_irq;
static volatile uint64_t last_cause;

static void set_timer(uint64_t t) { sbi_call(SBI_TIME, 0, (long)t, 0, 0); }

/* Sleeps until the handler has run once. WFI runs with sstatus.SIE = 0 (it still wakes on a
   pending enabled interrupt) and the interrupt is taken in the short SIE = 1 window after it,
   so an interrupt arriving just before the WFI cannot be lost (which would sleep forever). */
static void sleep_until_irq(void) {
  while (n_irq == 0) {
    __asm__ volatile("wfi");
    csr_set(sstatus, SSTATUS_SIE);
    csr_clear(sstatus, SSTATUS_SIE);
  }
}

/* Waits (bounded) until all of `bits` are pending in sip: under QEMU the firmware raises STIP
   asynchronously, so a fixed delay would make the transcript timing-dependent. */
static void wait_pending(uint64_t bits) {
  for (long spins = 0; spins < 100000000 && (csr_read(sip) & bits) != bits; spins++) {
  }
}

static void on_irq(struct frame *f) {
  last_cause = f->scause;
  if (n_irq < 4) order[n_irq] = (int)(f->scause & 0xff);
  n_irq++;
  if ((f->scause & 0xff) == 5) set_timer(~0ull);
  if ((f->scause & 0xff) == 1) csr_clear(sip, 2);
}

int main(void) {
  irq_hook = on_irq;
  uint64_t t0 = csr_read(time);
  n_irq = 0;
  csr_set(sie, 0x20);
  set_timer(t0 + 2000);
  sleep_until_irq();
  check("timer.cause", last_cause, IRQ_BIT | 5);
  check("timer.time.reached", csr_read(time) >= t0 + 2000, 1);
  check("timer.stip.cleared", csr_read(sip) & 0x20, 0);

  /* Pending, enabled in sie, globally disabled: WFI returns, no trap until SIE is set. */
  n_irq = 0;
  set_timer(0);
  wait_pending(0x20);
  check("timer.pending.visible", csr_read(sip) & 0x20, 0x20);
  __asm__ volatile("wfi");
  check("timer.wfi.no.trap", n_irq, 0);
  csr_set(sstatus, SSTATUS_SIE);
  csr_clear(sstatus, SSTATUS_SIE);
  check("timer.taken.on.enable", n_irq, 1);

  /* SSI outranks STI. */
  n_irq = 0;
  csr_set(sie, 0x22);
  set_timer(0);
  csr_set(sip, 2);
  wait_pending(0x22);
  csr_set(sstatus, SSTATUS_SIE);
  csr_clear(sstatus, SSTATUS_SIE);
  check("priority.count", n_irq, 2);
  check("priority.ssi.first", order[0], 1);
  check("priority.sti.second", order[1], 5);

  /* Vectored timer entry. */
  uint64_t tv = csr_read(stvec);
  csr_write(stvec, (uint64_t)vec_table | 1);
  vec_hit = 0;
  n_irq = 0;
  set_timer(csr_read(time) + 500);
  sleep_until_irq();
  check("timer.vectored.entry", vec_hit, 5);
  csr_write(stvec, tv);
  csr_clear(sie, 0x22);
  irq_hook = 0;
  return 0;
}
