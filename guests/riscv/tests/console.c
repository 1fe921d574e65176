/* Every console path of `regvisor run` on RISC-V: legacy putchar and getchar, DBCN write,
   write_byte and read; plus the VMM's rules for what nobody claims: an MMIO access outside RAM
   reads all-ones (twice, to show it is reported once), and a forwarded vendor SBI call is
   answered NOT_SUPPORTED. Ends with SRST shutdown, reason 0. */
#include "sbi.h"

static char buf[64];

int main(void) {
  legacy_puts("legacy putchar\n");
  dbcn_puts("dbcn write\n");
  sbi_call(SBI_DBCN, DBCN_WRITE_BYTE, '!', 0, 0);
  sbi_call(SBI_DBCN, DBCN_WRITE_BYTE, '\n', 0, 0);

  legacy_puts("getchar: ");
  for (int i = 0; i < 3; i++) {
    long c = sbi_call(SBI_LEGACY_GETCHAR, 0, 0, 0, 0).error;
    if (c < 0) break;
    sbi_call(SBI_LEGACY_PUTCHAR, 0, c, 0, 0);
  }
  legacy_puts("\n");
  struct sbiret r = sbi_call(SBI_DBCN, DBCN_READ, sizeof buf, (long)buf, 0);
  dbcn_puts("dbcn read: ");
  if (r.error == 0) dbcn_write(buf, r.value);
  dbcn_puts("\n");

  volatile unsigned *device = (volatile unsigned *)0x20000000ul;
  unsigned first = device[0];
  unsigned second = device[0];
  device[0] = 0x1234;
  legacy_puts(first == 0xffffffffu && second == first ? "mmio reads all-ones\n"
                                                      : "mmio read something else\n");
  struct sbiret vendor = sbi_call(0x09000000, 0, 0, 0, 0);
  legacy_puts(vendor.error == -2 ? "vendor sbi: not supported\n" : "vendor sbi: unexpected\n");
  return 0;
}
