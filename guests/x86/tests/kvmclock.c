/* x86-64 guest that watches its own time (test/vmm/kvmclock.test.ts builds it through
   guests/x86/tests/build.sh). Long mode as `regvisor run` starts an ELF64 (paging on, 4 GiB
   identity map, stack at the top of RAM).

   It enables kvmclock (MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01 = address of a pvclock page | 1;
   Documentation/virt/kvm/x86/msr.rst), then keeps reading the kvmclock (ns, from the page:
   system_time + ((rdtsc - tsc_timestamp) scaled by tsc_shift and tsc_to_system_mul) >> 32,
   retried while `version` is odd or changed) and the TSC. It fails at once if either ever reads
   less than the time before, prints "tick N ns=T tsc=C" every TICK_NS of kvmclock time since
   the last tick, and after TICKS ticks ends with "PASS kvmclock ..." and status 0 on the exit
   port 0xf4 (1 for FAIL). Its last readings live in guest RAM, so a snapshot or a migration
   carries them: a clock that restarts lower on the other side is caught by the next reading. */
#ifndef TICKS
#define TICKS 30
#endif
#define TICK_NS 50000000UL
#define PVCLOCK_PAGE 0x300000UL
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01U
#define KVM_CPUID_SIGNATURE 0x40000000U
#define KVM_CPUID_FEATURES 0x40000001U
#define KVM_FEATURE_CLOCKSOURCE2 (1U << 3)

/* struct pvclock_vcpu_time_info (arch/x86/include/asm/pvclock-abi.h), 32 bytes. */
struct pvclock {
  unsigned int version;
  unsigned int pad0;
  unsigned long tsc_timestamp;
  unsigned long system_time;
  unsigned int tsc_to_system_mul;
  signed char tsc_shift;
  unsigned char flags;
  unsigned char pad[2];
};

static inline void outb(unsigned short port, unsigned char v) {
  __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline unsigned long rdtsc(void) {
  unsigned int lo, hi;
  __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) : : "memory");
  return (unsigned long)hi << 32 | lo;
}
static inline void wrmsr(unsigned int msr, unsigned long v) {
  __asm__ volatile("wrmsr" : : "c"(msr), "a"((unsigned int)v), "d"((unsigned int)(v >> 32)));
}
static inline void cpuid(unsigned int leaf, unsigned int r[4]) {
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
}
static void puts_e9(const char *s) {
  while (*s) outb(0xe9, (unsigned char)*s++);
}
static void put_num(unsigned long v) {
  char buf[24];
  int n = 0;
  do {
    buf[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) outb(0xe9, (unsigned char)buf[--n]);
}
static void finish(unsigned char status) {
  outb(0xf4, status);
  for (;;) __asm__ volatile("hlt");
}

/* The kvmclock in ns and the TSC it was computed from (pvclock_clocksource_read's math). */
static unsigned long kvmclock_ns(unsigned long *tsc_out) {
  volatile struct pvclock *pv = (volatile struct pvclock *)PVCLOCK_PAGE;
  unsigned int version;
  unsigned long ns, tsc;
  do {
    version = pv->version;
    __asm__ volatile("" : : : "memory");
    tsc = rdtsc();
    unsigned long delta = tsc - pv->tsc_timestamp;
    int shift = pv->tsc_shift;
    if (shift < 0)
      delta >>= -shift;
    else
      delta <<= shift;
    ns = pv->system_time + (unsigned long)(((unsigned __int128)delta * pv->tsc_to_system_mul) >> 32);
    __asm__ volatile("" : : : "memory");
  } while ((version & 1) != 0 || version != pv->version);
  *tsc_out = tsc;
  return ns;
}

static void fail(const char *what, unsigned long now, unsigned long before) {
  puts_e9("FAIL ");
  puts_e9(what);
  puts_e9(" went backwards: ");
  put_num(now);
  puts_e9(" after ");
  put_num(before);
  puts_e9("\n");
  finish(1);
}

/* Kept in RAM across the move: the latest readings and the progress. */
static volatile unsigned long last_ns, last_tsc, tick_ns, tick;

void main_c(void) {
  unsigned int r[4];
  cpuid(KVM_CPUID_SIGNATURE, r);
  /* "KVMKVMKVM\0\0\0" in ebx, ecx, edx. */
  if (r[1] != 0x4b4d564b || r[2] != 0x564b4d56 || r[3] != 0x4d) {
    puts_e9("FAIL no KVM CPUID leaves\n");
    finish(1);
  }
  cpuid(KVM_CPUID_FEATURES, r);
  if ((r[0] & KVM_FEATURE_CLOCKSOURCE2) == 0) {
    puts_e9("FAIL no KVM_FEATURE_CLOCKSOURCE2\n");
    finish(1);
  }
  wrmsr(MSR_KVM_SYSTEM_TIME_NEW, PVCLOCK_PAGE | 1);
  /* KVM fills the page on the next entry (KVM_REQ_GLOBAL_CLOCK_UPDATE); version 0 until then. */
  while (((volatile struct pvclock *)PVCLOCK_PAGE)->version == 0) __asm__ volatile("pause");
  unsigned long tsc;
  last_ns = tick_ns = kvmclock_ns(&tsc);
  last_tsc = tsc;
  puts_e9("kvmclock: start ns=");
  put_num(last_ns);
  puts_e9(" tsc=");
  put_num(last_tsc);
  puts_e9("\n");
  while (tick < TICKS) {
    unsigned long ns = kvmclock_ns(&tsc);
    if (ns < last_ns) fail("kvmclock", ns, last_ns);
    if (tsc < last_tsc) fail("TSC", tsc, last_tsc);
    last_ns = ns;
    last_tsc = tsc;
    if (ns - tick_ns < TICK_NS) continue;
    tick_ns = ns;
    tick++;
    puts_e9("tick ");
    put_num(tick);
    puts_e9(" ns=");
    put_num(ns);
    puts_e9(" tsc=");
    put_num(tsc);
    puts_e9("\n");
  }
  puts_e9("PASS kvmclock ");
  put_num(tick);
  puts_e9(" ticks, never backwards\n");
  finish(0);
}

__asm__(".globl _start\n_start:\n  and $-16, %rsp\n  call main_c\n1: hlt\n  jmp 1b\n");
