/* Runtime shared by regvisor's RISC-V test guests: SBI calls, console output through the
   legacy SBI putchar (forwarded to the VMM by KVM; OpenSBI 1.1 under QEMU has no DBCN), the
   PASS/FAIL protocol, CSR access and trap recording. */
#ifndef RT_H
#define RT_H
#include <stdint.h>

typedef struct {
  long error;
  long value;
} sbiret;

sbiret sbi_call(long eid, long fid, long a0, long a1, long a2);
void putch(char c);
void puts_(const char *s);
void put_hex(uint64_t v);
void put_dec(int64_t v);
void pass(const char *name);
void fail(const char *name, uint64_t got, uint64_t want);
/* Prints PASS name if got == want, else FAIL name got=... want=... */
void check(const char *name, uint64_t got, uint64_t want);
void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);

#define csr_read(csr)                                   \
  ({                                                    \
    uint64_t v_;                                        \
    __asm__ volatile("csrr %0, " #csr : "=r"(v_)::"memory"); \
    v_;                                                 \
  })
#define csr_write(csr, v) __asm__ volatile("csrw " #csr ", %0" ::"r"((uint64_t)(v)) : "memory")
#define csr_set(csr, v) __asm__ volatile("csrs " #csr ", %0" ::"r"((uint64_t)(v)) : "memory")
#define csr_clear(csr, v) __asm__ volatile("csrc " #csr ", %0" ::"r"((uint64_t)(v)) : "memory")

/* Trap frame laid out by trap.S. */
struct frame {
  uint64_t x[32];
  uint64_t sepc, scause, stval, pad;
};

/* The last synchronous trap taken (handle_trap then skips the instruction, or resumes at
   trap_resume when that is nonzero, e.g. after a fetch fault). */
extern volatile uint64_t trap_cause, trap_tval, trap_epc, trap_status, trap_resume;
extern volatile int trap_count;
/* Causes of the first 16 traps since reset_trap(). */
extern volatile uint64_t trap_log[16];
/* Interrupt hook (called for interrupts; must clear the source). */
extern void (*volatile irq_hook)(struct frame *f);
void reset_trap(void);

uint64_t run_user(void (*fn)(void), uint64_t user_sp);
void user_return(uint64_t value) __attribute__((noreturn));

#define SSTATUS_SIE (1ul << 1)
#define SSTATUS_SPIE (1ul << 5)
#define SSTATUS_SPP (1ul << 8)
#define SSTATUS_FS (3ul << 13)
#define SSTATUS_SUM (1ul << 18)
#define SSTATUS_MXR (1ul << 19)
#define SSTATUS_SD (1ul << 63)
#define IRQ_BIT (1ul << 63)

#endif
