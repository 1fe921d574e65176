/* Ends with SBI SRST cold reboot, reason 1 (system failure): `regvisor run` does not reboot,
   it ends the run with the reason as its exit status. */
#include "sbi.h"

int main(void) {
  legacy_puts("rebooting\n");
  sbi_call(SBI_SRST, 0, 1 /* cold reboot */, 1 /* system failure */, 0);
  legacy_puts("still here\n");
  return 9;
}
