/* A fault the guest cannot handle: the trap vector points outside RAM, then an illegal
   instruction traps there, and fetching the handler has nowhere to go. */
#include "sbi.h"

int main(void) {
  legacy_puts("about to fault\n");
  __asm__ volatile("csrw stvec, %0" ::"r"(0x1000ul));
  __asm__ volatile(".word 0"); /* the all-zeros encoding is defined illegal */
  legacy_puts("survived\n");
  return 0;
}
