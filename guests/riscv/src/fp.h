/* Helpers for the F/D test guests: run one FP instruction on raw bit patterns and capture the
   result bits and the fflags it raised (fflags cleared first). MV is fmv.w.x or fmv.d.x, OUT
   fmv.x.w or fmv.x.d; INSN is the full instruction text (operands ft0..ft3, %0 for integer
   results). */
#ifndef FP_H
#define FP_H
#include "rt.h"

#define NX 1
#define UF 2
#define OF 4
#define DZ 8
#define NV 16

static uint64_t fl;

#define FOP2(MV, OUT, INSN, a, b)                                                   \
  ({                                                                               \
    uint64_t r_, f_;                                                               \
    __asm__ volatile("fsflags zero\n" MV " ft0, %2\n" MV " ft1, %3\n" INSN "\n" OUT \
                     " %0, ft2\nfrflags %1"                                        \
                     : "=&r"(r_), "=&r"(f_)                                        \
                     : "r"((uint64_t)(a)), "r"((uint64_t)(b))                      \
                     : "ft0", "ft1", "ft2");                                       \
    fl = f_;                                                                       \
    r_;                                                                            \
  })

#define FOP3(MV, OUT, INSN, a, b, c)                                                \
  ({                                                                               \
    uint64_t r_, f_;                                                               \
    __asm__ volatile("fsflags zero\n" MV " ft0, %2\n" MV " ft1, %3\n" MV " ft2, %4\n" INSN \
                     "\n" OUT " %0, ft3\nfrflags %1"                               \
                     : "=&r"(r_), "=&r"(f_)                                        \
                     : "r"((uint64_t)(a)), "r"((uint64_t)(b)), "r"((uint64_t)(c))  \
                     : "ft0", "ft1", "ft2", "ft3");                                \
    fl = f_;                                                                       \
    r_;                                                                            \
  })

/* Integer result (%0) from FP operands ft0, ft1. */
#define FTOI(MV, INSN, a, b)                                                        \
  ({                                                                               \
    uint64_t r_, f_;                                                               \
    __asm__ volatile("fsflags zero\n" MV " ft0, %2\n" MV " ft1, %3\n" INSN "\nfrflags %1" \
                     : "=&r"(r_), "=&r"(f_)                                        \
                     : "r"((uint64_t)(a)), "r"((uint64_t)(b))                      \
                     : "ft0", "ft1");                                              \
    fl = f_;                                                                       \
    r_;                                                                            \
  })

/* FP result (ft2) from an integer operand %2. */
#define ITOF(OUT, INSN, a)                                                          \
  ({                                                                               \
    uint64_t r_, f_;                                                               \
    __asm__ volatile("fsflags zero\n" INSN "\n" OUT " %0, ft2\nfrflags %1"          \
                     : "=&r"(r_), "=&r"(f_)                                        \
                     : "r"((uint64_t)(a))                                          \
                     : "ft2");                                                     \
    fl = f_;                                                                       \
    r_;                                                                            \
  })

static void checkf(const char *name, uint64_t got, uint64_t want, uint64_t want_flags) {
  if (got == want && fl == want_flags) {
    pass(name);
  } else {
    puts_("FAIL ");
    puts_(name);
    puts_(" got=");
    put_hex(got);
    puts_(" flags=");
    put_hex(fl);
    puts_(" want=");
    put_hex(want);
    puts_(" flags=");
    put_hex(want_flags);
    putch('\n');
  }
}
#endif
