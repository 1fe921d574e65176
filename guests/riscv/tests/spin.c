/* Never ends by itself: for `--timeout`. */
#include "sbi.h"

int main(void) {
  legacy_puts("spinning\n");
  for (;;) __asm__ volatile("");
}
