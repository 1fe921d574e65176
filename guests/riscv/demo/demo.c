/* regvisor's demo guest: greets through the SBI console and prints a few computed results
   (integer, 64-bit multiply/divide, floating point). Uses SBI DBCN when the VMM offers it
   (BASE probe_extension), else the legacy console putchar. */
#include <stdint.h>

typedef struct {
  long error;
  long value;
} sbiret;

static sbiret sbi(long eid, long fid, long a0, long a1, long a2) {
  register long r0 __asm__("a0") = a0;
  register long r1 __asm__("a1") = a1;
  register long r2 __asm__("a2") = a2;
  register long r6 __asm__("a6") = fid;
  register long r7 __asm__("a7") = eid;
  __asm__ volatile("ecall" : "+r"(r0), "+r"(r1) : "r"(r2), "r"(r6), "r"(r7) : "memory");
  return (sbiret){r0, r1};
}

#define EID_BASE 0x10
#define EID_DBCN 0x4442434e
#define EID_LEGACY_PUTCHAR 0x01

static int use_dbcn;
static char line[128];
static int len;

static void flush(void) {
  if (len == 0) return;
  if (use_dbcn) {
    sbi(EID_DBCN, 0, len, (long)(uintptr_t)line, 0); /* write(num_bytes, base_lo, base_hi) */
  } else {
    for (int i = 0; i < len; i++) sbi(EID_LEGACY_PUTCHAR, 0, line[i], 0, 0);
  }
  len = 0;
}

static void putc_(char c) {
  line[len++] = c;
  if (c == '\n' || len == (int)sizeof line) flush();
}

static void puts_(const char *s) {
  while (*s) putc_(*s++);
}

static void putu(uint64_t v) {
  char b[24];
  int n = 0;
  do {
    b[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) putc_(b[--n]);
}

/* Prints a double with 12 decimals (no libc). */
static void putd(double d) {
  if (d < 0) {
    putc_('-');
    d = -d;
  }
  uint64_t ip = (uint64_t)d;
  putu(ip);
  putc_('.');
  double frac = d - (double)ip;
  for (int i = 0; i < 12; i++) {
    frac *= 10;
    int digit = (int)frac;
    putc_((char)('0' + digit));
    frac -= digit;
  }
}

static uint64_t sum_primes(unsigned count) {
  uint64_t sum = 0;
  unsigned found = 0;
  for (uint64_t n = 2; found < count; n++) {
    int prime = 1;
    for (uint64_t d = 2; d * d <= n; d++) {
      if (n % d == 0) {
        prime = 0;
        break;
      }
    }
    if (prime) {
      sum += n;
      found++;
    }
  }
  return sum;
}

/* pi by Machin's formula: 16 atan(1/5) - 4 atan(1/239). */
static double atan_inv(double x) {
  double term = 1.0 / x, sum = term, x2 = x * x;
  for (int k = 1; k < 30; k++) {
    term /= -x2;
    sum += term / (2 * k + 1);
  }
  return sum;
}

int main(void) {
  use_dbcn = sbi(EID_BASE, 3, EID_DBCN, 0, 0).value != 0;
  puts_("Hello from a RISC-V guest on regvisor!\n");
  puts_("sum of the first 1000 primes = ");
  putu(sum_primes(1000));
  putc_('\n');
  uint64_t a = 0, b = 1;
  for (int i = 0; i < 90; i++) {
    uint64_t t = a + b;
    a = b;
    b = t;
  }
  puts_("fib(90) = ");
  putu(a);
  putc_('\n');
  puts_("pi ~ ");
  putd(16 * atan_inv(5) - 4 * atan_inv(239));
  putc_('\n');
  puts_("console: ");
  puts_(use_dbcn ? "SBI DBCN\n" : "legacy SBI putchar\n");
  flush();
  return 0;
}
