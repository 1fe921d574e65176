/* `regvisor run --mem 3G` RISC-V test guest: RAM more than 2 GiB above its base (0x80000000),
   where a signed 32-bit byte offset no longer reaches. Checks the word the VMM copied from this
   ELF's segment at 0x120000000, then stores, loads, AMO-adds and LR/SC-swaps a word near the top
   of RAM (the memslot's DataView and Atomics views), and ends with status 42 — or 99. */
#include <stdint.h>
#include "sbi.h"

/* Linked at 0x120000000 (build.sh); read through its address, which the medany code model
   cannot reach pc-relatively from 0x80200000. */
__attribute__((section(".high"), used)) static const uint64_t magic = 0x1122334455667788ULL;
#define MAGIC_ADDR 0x120000000UL
/* 16 MiB below the end of 3 GiB of RAM (the VMM puts the device tree at the very top). */
#define WORK_ADDR 0x13f000000UL

int main(void) {
  if (*(volatile const uint64_t *)MAGIC_ADDR != 0x1122334455667788ULL) return 99;
  volatile uint64_t *w = (volatile uint64_t *)WORK_ADDR;
  *w = 0x0123456789abcdefULL;
  if (*w != 0x0123456789abcdefULL) return 99;
  if (__atomic_fetch_add((uint64_t *)WORK_ADDR, 1, __ATOMIC_SEQ_CST) != 0x0123456789abcdefULL)
    return 99;
  uint64_t expect = 0x0123456789abcdf0ULL;
  if (!__atomic_compare_exchange_n((uint64_t *)WORK_ADDR, &expect, 7, 0, __ATOMIC_SEQ_CST,
                                   __ATOMIC_SEQ_CST))
    return 99;
  if (*w != 7) return 99;
  legacy_puts("RAM above 2 GiB: ok\n");
  return 42;
}
