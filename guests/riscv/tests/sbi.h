/* SBI calls for regvisor's run test guests (SBI spec v2.0: ch. 3 calling convention, ch. 5
   legacy console, ch. 10 SRST, ch. 12 DBCN). */
#ifndef SBI_H
#define SBI_H

#define SBI_LEGACY_PUTCHAR 0x01
#define SBI_LEGACY_GETCHAR 0x02
#define SBI_SRST 0x53525354
#define SBI_DBCN 0x4442434E
#define DBCN_WRITE 0
#define DBCN_READ 1
#define DBCN_WRITE_BYTE 2

struct sbiret {
  long error;
  long value;
};

static inline struct sbiret sbi_call(long eid, long fid, long a0, long a1, long a2) {
  register long r0 __asm__("a0") = a0;
  register long r1 __asm__("a1") = a1;
  register long r2 __asm__("a2") = a2;
  register long r6 __asm__("a6") = fid;
  register long r7 __asm__("a7") = eid;
  __asm__ volatile("ecall" : "+r"(r0), "+r"(r1) : "r"(r2), "r"(r6), "r"(r7) : "memory");
  return (struct sbiret){r0, r1};
}

/* Legacy console: one exit per byte. */
static inline void legacy_puts(const char *s) {
  while (*s) sbi_call(SBI_LEGACY_PUTCHAR, 0, *s++, 0, 0);
}

/* DBCN write: loops on partial writes (the spec allows them). */
static inline void dbcn_write(const char *s, long n) {
  while (n > 0) {
    struct sbiret r = sbi_call(SBI_DBCN, DBCN_WRITE, n, (long)s, 0);
    if (r.error != 0) return;
    s += r.value;
    n -= r.value;
  }
}

static inline long str_len(const char *s) {
  long n = 0;
  while (s[n]) n++;
  return n;
}

static inline void dbcn_puts(const char *s) { dbcn_write(s, str_len(s)); }

#endif
