/* The gdbstub's bare-metal guest (test/vmm/gdbstub/gdb-real.test.ts, bench/gdb.ts): built with
   -g so GDB can break on `add`, `finish` back into `work` and print `total`. With one hart it
   ends with SBI SRST, reason = the sum % 256 (45 unless a debugger changed a register on the
   way). With `--cpus 2`, hart 0 starts hart 1 through SBI HSM and both spin, each on its own
   counter (the two-thread test). */
#include "sbi.h"

#define SBI_HSM 0x48534D
#define HSM_HART_START 0
#define HSM_HART_GET_STATUS 2

volatile unsigned long total;
volatile unsigned long spins[2];
unsigned long hart1_stack[512];

__attribute__((noinline)) unsigned long add(unsigned long a, unsigned long b) {
  return a + b;
}

__attribute__((noinline)) unsigned long work(unsigned long n) {
  unsigned long s = 0;
  for (unsigned long i = 0; i < n; i++) s = add(s, i);
  return s;
}

__attribute__((noinline, noreturn)) void spin(unsigned long hart) {
  for (;;) spins[hart]++;
}

/* Hart 1's entry (SBI HSM hart_start: a0 = hart id): its own stack, then spin(1). */
__asm__(".globl hart1_entry\n"
        "hart1_entry:\n"
        "  la sp, hart1_stack + 4096\n"
        "  j spin\n");
void hart1_entry(void);

int main(unsigned long hart) {
  (void)hart;
  total = work(10);
  legacy_puts("work done\n");
  /* A second hart exists only with --cpus 2: HSM reports it (status 1 = stopped). */
  struct sbiret r = sbi_call(SBI_HSM, HSM_HART_GET_STATUS, 1, 0, 0);
  if (r.error == 0) {
    sbi_call(SBI_HSM, HSM_HART_START, 1, (long)hart1_entry, 0);
    spin(0);
  }
  return (int)(total % 256);
}
