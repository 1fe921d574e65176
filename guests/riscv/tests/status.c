/* Ends with SBI SRST shutdown, reason 7 (main's return value; see start.S): the exit status. */
#include "sbi.h"

int main(void) {
  legacy_puts("status 7\n");
  return 7;
}
