/* U-mode: entry with sret (SPP = U), ecall from U (scause 8, sepc = the ecall, back to S),
   privileged instructions from U are illegal, counters gated by scounteren, ebreak from U,
   S-level interrupts are taken in U-mode regardless of sstatus.SIE. */
#include "rt.h"

extern void user_sum(void), user_privileged(void), user_rdtime(void), user_ebreak(void),
    user_spin(void);
extern char user_sum_ecall[], user_ebreak_insn[];

static uint64_t ustack[512] __attribute__((aligned(16)));
#define USP ((uint64_t)&ustack[512])

static volatile uint64_t irq_cause, irq_status;
static void soft_irq(struct frame *f) {
  irq_cause = f->scause;
  irq_status = csr_read(sstatus);
  csr_clear(sip, 2);
}

int main(void) {
  reset_trap();
  uint64_t r = run_user(user_sum, USP);
  check("user.result", r, 5050);
  check("user.ecall.cause", trap_cause, 8);
  check("user.ecall.epc", trap_epc, (uint64_t)user_sum_ecall);
  check("user.ecall.tval", trap_tval, 0);
  check("user.trap.spp.is.u", trap_status & SSTATUS_SPP, 0);
  check("user.back.in.s", (csr_read(sstatus) & SSTATUS_SPP) == 0, 1);

  reset_trap();
  r = run_user(user_privileged, USP);
  check("user.privileged.skipped", r, 0x55);
  check("user.privileged.traps", trap_count, 5);

  csr_write(scounteren, 7);
  reset_trap();
  r = run_user(user_rdtime, USP);
  check("user.rdtime.allowed", trap_count, 1);
  /* scounteren.TM = 0 must make U-mode rdtime illegal; QEMU 7.2 does not trap, so that half
     is pinned by the unit tests instead of this differential guest. */

  reset_trap();
  r = run_user(user_ebreak, USP);
  check("user.ebreak.result", r, 9);
  check("user.ebreak.count", trap_count, 2);

  /* SSIP pending and enabled in sie, SIE off: taken as soon as U-mode runs. */
  irq_hook = soft_irq;
  irq_cause = 0;
  csr_clear(sstatus, SSTATUS_SIE);
  csr_set(sie, 2);
  csr_set(sip, 2);
  check("user.irq.not.in.s", irq_cause, 0);
  r = run_user(user_spin, USP);
  check("user.irq.result", r, 3);
  check("user.irq.taken.in.u", irq_cause, IRQ_BIT | 1);
  check("user.irq.spp.is.u", irq_status & SSTATUS_SPP, 0);
  csr_clear(sie, 2);
  irq_hook = 0;
  (void)user_ebreak_insn;
  return 0;
}
