/* The soft.mips benchmark workload: a 64-bit LCG filling a buffer, CRC-32 over it, an
   insertion sort and a heap sort of LCG values, and a 64-bit division/remainder mix. About 200
   million RV64GC instructions; prints one checksum line (compared against QEMU's run).
   The round count is the variable compute_rounds (16 as built): bench/soft-cpu.ts patches it in
   a copy of the ELF (found through the symbol table) to run longer, on both sides alike. */
#include "rt.h"

#define N_BYTES 65536
#define N_SORT 1500
#define N_HEAP 20000

static uint8_t data[N_BYTES];
static uint32_t crc_table[256];
static uint64_t arr[N_HEAP];
static uint64_t lcg_state = 0x853c49e6748fea9bull;
/* volatile: read at run time, so a patched ELF runs the patched count. */
volatile uint32_t compute_rounds = 16;

static uint64_t lcg(void) {
  lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
  return lcg_state;
}

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}

static uint32_t crc32(const uint8_t *p, unsigned n) {
  uint32_t c = 0xffffffffu;
  for (unsigned i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

static void insertion_sort(uint64_t *a, int n) {
  for (int i = 1; i < n; i++) {
    uint64_t v = a[i];
    int j = i - 1;
    while (j >= 0 && a[j] > v) {
      a[j + 1] = a[j];
      j--;
    }
    a[j + 1] = v;
  }
}

static void sift(uint64_t *a, int root, int n) {
  for (;;) {
    int child = 2 * root + 1;
    if (child >= n) return;
    if (child + 1 < n && a[child + 1] > a[child]) child++;
    if (a[root] >= a[child]) return;
    uint64_t t = a[root];
    a[root] = a[child];
    a[child] = t;
    root = child;
  }
}

static void heap_sort(uint64_t *a, int n) {
  for (int i = n / 2 - 1; i >= 0; i--) sift(a, i, n);
  for (int i = n - 1; i > 0; i--) {
    uint64_t t = a[0];
    a[0] = a[i];
    a[i] = t;
    sift(a, 0, i);
  }
}

static uint64_t div_mix(int n) {
  uint64_t acc = 0;
  for (int i = 1; i <= n; i++) {
    uint64_t x = lcg();
    uint64_t d = (x >> 40) | 1;
    acc += x / d + x % (uint64_t)(i + 7);
    acc ^= (uint64_t)((int64_t)x / -(int64_t)(i | 1));
  }
  return acc;
}

int main(void) {
  uint64_t sum = 0;
  crc_init();
  uint32_t rounds = compute_rounds;
  for (uint32_t round = 0; round < rounds; round++) {
    for (int i = 0; i < N_BYTES; i += 8) {
      uint64_t v = lcg();
      for (int k = 0; k < 8; k++) data[i + k] = (uint8_t)(v >> (8 * k));
    }
    sum = sum * 31 + crc32(data, N_BYTES);
    for (int i = 0; i < N_SORT; i++) arr[i] = lcg() >> 16;
    insertion_sort(arr, N_SORT);
    for (int i = 1; i < N_SORT; i++)
      if (arr[i - 1] > arr[i]) sum ^= 0xbad;
    sum = sum * 31 + arr[N_SORT / 2];
    for (int i = 0; i < N_HEAP; i++) arr[i] = lcg();
    heap_sort(arr, N_HEAP);
    for (int i = 1; i < N_HEAP; i++)
      if (arr[i - 1] > arr[i]) sum ^= 0xbad0;
    sum = sum * 31 + arr[N_HEAP / 3];
    sum = sum * 31 + div_mix(100000);
  }
  puts_("compute checksum=");
  put_hex(sum);
  putch('\n');
  return 0;
}
