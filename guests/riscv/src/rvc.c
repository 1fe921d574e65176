/* C: every RV64C instruction written explicitly (the assembler would otherwise pick forms
   itself), checked for its 32-bit meaning; c.ebreak and reserved encodings trap with the
   16-bit instruction bits in stval. */
#include "rt.h"

static volatile uint64_t mem[8] = {0x1111111111111111ull, 0x2222222280000000ull,
                                   0x3333333333333333ull, 0x4444444444444444ull};

static void loads_stores(void) {
  uint64_t v;
  __asm__ volatile("mv a0, %1\n c.ld a1, 8(a0)\n mv %0, a1" : "=r"(v) : "r"(mem) : "a0", "a1", "memory");
  check("c.ld", v, 0x2222222280000000ull);
  __asm__ volatile("mv a0, %1\n c.lw a1, 8(a0)\n mv %0, a1" : "=r"(v) : "r"(mem) : "a0", "a1", "memory");
  check("c.lw.sext", v, 0xffffffff80000000ull);
  __asm__ volatile("mv a0, %0\n mv a1, %1\n c.sd a1, 16(a0)" ::"r"(mem), "r"(0x5555555566666666ull)
                   : "a0", "a1", "memory");
  check("c.sd", mem[2], 0x5555555566666666ull);
  __asm__ volatile("mv a0, %0\n mv a1, %1\n c.sw a1, 28(a0)" ::"r"(mem), "r"(0x77777777ull)
                   : "a0", "a1", "memory");
  check("c.sw", mem[3], 0x7777777744444444ull);
  uint64_t r1, r2;
  __asm__ volatile("addi sp, sp, -64\n"
                   "li t0, 0x0123456789abcdef\n"
                   "c.sdsp t0, 8(sp)\n"
                   "c.ldsp %0, 8(sp)\n"
                   "li t0, 0xfedcba98\n"
                   "c.swsp t0, 16(sp)\n"
                   "c.lwsp %1, 16(sp)\n"
                   "addi sp, sp, 64"
                   : "=r"(r1), "=r"(r2)
                   :
                   : "t0", "memory");
  check("c.sdsp.ldsp", r1, 0x0123456789abcdefull);
  check("c.swsp.lwsp.sext", r2, 0xfffffffffedcba98ull);
  __asm__ volatile("addi sp, sp, -32\n"
                   "fmv.d.x ft0, %2\n"
                   "c.fsdsp ft0, 8(sp)\n"
                   "c.fldsp ft1, 8(sp)\n"
                   "fmv.x.d %0, ft1\n"
                   "mv a0, sp\n"
                   "fmv.d fs1, ft1\n"
                   "c.fsd fs1, 16(a0)\n"
                   "c.fld fs0, 16(a0)\n"
                   "fmv.x.d %1, fs0\n"
                   "addi sp, sp, 32"
                   : "=r"(r1), "=r"(r2)
                   : "r"(0x400921fb54442d18ull)
                   : "ft0", "ft1", "fs0", "fs1", "a0", "memory");
  check("c.fsdsp.fldsp", r1, 0x400921fb54442d18ull);
  check("c.fsd.fld", r2, 0x400921fb54442d18ull);
}

static void alu(void) {
  uint64_t r;
  __asm__ volatile("c.li %0, -32" : "=r"(r));
  check("c.li", r, 0xffffffffffffffe0ull);
  __asm__ volatile("c.lui %0, 0xfffe0" : "=r"(r));
  check("c.lui.neg", r, 0xfffffffffffe0000ull);
  __asm__ volatile("c.lui %0, 1" : "=r"(r));
  check("c.lui", r, 0x1000);
  __asm__ volatile("li %0, 100\n c.addi %0, -31" : "=&r"(r));
  check("c.addi", r, 69);
  __asm__ volatile("li %0, 0x7fffffff\n c.addiw %0, 1" : "=&r"(r));
  check("c.addiw.sext", r, 0xffffffff80000000ull);
  __asm__ volatile("mv t0, sp\n c.addi16sp sp, -496\n sub %0, t0, sp\n c.addi16sp sp, 496"
                   : "=&r"(r)
                   :
                   : "t0");
  check("c.addi16sp", r, 496);
  __asm__ volatile("c.addi4spn a0, sp, 1020\n sub %0, a0, sp" : "=r"(r) : : "a0");
  check("c.addi4spn", r, 1020);
  __asm__ volatile("li a0, -1\n c.srli a0, 63\n mv %0, a0" : "=r"(r) : : "a0");
  check("c.srli63", r, 1);
  __asm__ volatile("li a0, 0x8000000000000000\n c.srai a0, 62\n mv %0, a0" : "=r"(r) : : "a0");
  check("c.srai", r, 0xfffffffffffffffeull);
  __asm__ volatile("li a0, -1\n c.andi a0, -16\n mv %0, a0" : "=r"(r) : : "a0");
  check("c.andi", r, 0xfffffffffffffff0ull);
  __asm__ volatile("li %0, 1\n c.slli %0, 63" : "=&r"(r));
  check("c.slli63", r, 0x8000000000000000ull);
  __asm__ volatile("li a0, 10\n li a1, 20\n c.sub a0, a1\n mv %0, a0" : "=r"(r) : : "a0", "a1");
  check("c.sub", r, (uint64_t)-10);
  __asm__ volatile("li a0, 0xf0\n li a1, 0xff\n c.xor a0, a1\n mv %0, a0" : "=r"(r) : : "a0", "a1");
  check("c.xor", r, 0x0f);
  __asm__ volatile("li a0, 0xf0\n li a1, 0x0f\n c.or a0, a1\n mv %0, a0" : "=r"(r) : : "a0", "a1");
  check("c.or", r, 0xff);
  __asm__ volatile("li a0, 0xf0\n li a1, 0x3c\n c.and a0, a1\n mv %0, a0" : "=r"(r) : : "a0", "a1");
  check("c.and", r, 0x30);
  __asm__ volatile("li a0, 0x80000000\n li a1, 1\n c.subw a0, a1\n mv %0, a0"
                   : "=r"(r)
                   :
                   : "a0", "a1");
  check("c.subw", r, 0x7fffffff);
  __asm__ volatile("li a0, 0x7fffffff\n li a1, 1\n c.addw a0, a1\n mv %0, a0"
                   : "=r"(r)
                   :
                   : "a0", "a1");
  check("c.addw", r, 0xffffffff80000000ull);
  __asm__ volatile("li t1, 77\n c.mv %0, t1" : "=r"(r) : : "t1");
  check("c.mv", r, 77);
  __asm__ volatile("li %0, 5\n li t1, 7\n c.add %0, t1" : "=&r"(r) : : "t1");
  check("c.add", r, 12);
}

static void control(void) {
  uint64_t r, a;
  __asm__ volatile("li %0, 1\n c.j 1f\n li %0, 2\n 1:" : "=&r"(r));
  check("c.j", r, 1);
  __asm__ volatile("li a0, 0\n li %0, 1\n c.beqz a0, 1f\n li %0, 2\n 1:" : "=&r"(r) : : "a0");
  check("c.beqz", r, 1);
  __asm__ volatile("li a0, 3\n li %0, 1\n c.bnez a0, 1f\n li %0, 2\n 1:" : "=&r"(r) : : "a0");
  check("c.bnez", r, 1);
  __asm__ volatile("li a0, 3\n li %0, 1\n c.beqz a0, 1f\n li %0, 2\n 1:" : "=&r"(r) : : "a0");
  check("c.beqz.not.taken", r, 2);
  __asm__ volatile("la t1, 1f\n li %0, 1\n c.jr t1\n li %0, 2\n 1:" : "=&r"(r) : : "t1");
  check("c.jr", r, 1);
  __asm__ volatile("mv t2, ra\n la t1, 2f\n c.jalr t1\n 1: j 3f\n 2: mv %0, ra\n ret\n 3: la %1, 1b\n mv ra, t2"
                   : "=&r"(r), "=&r"(a)
                   :
                   : "t1", "t2", "ra");
  check("c.jalr.link", r, a);
  /* A backwards c.bnez loop. */
  __asm__ volatile("li a0, 10\n li %0, 0\n 1: addi %0, %0, 3\n c.addi a0, -1\n c.bnez a0, 1b"
                   : "=&r"(r)
                   :
                   : "a0");
  check("c.loop", r, 30);
}

static void traps(void) {
  reset_trap();
  uint64_t pc;
  __asm__ volatile("la %0, 1f\n 1: c.ebreak" : "=r"(pc));
  check("c.ebreak.cause", trap_cause, 3);
  check("c.ebreak.epc", trap_epc, pc);
  reset_trap();
  __asm__ volatile("la %0, 1f\n 1: .2byte 0x0000" : "=r"(pc));
  check("c.zero.illegal", trap_cause, 2);
  check("c.zero.illegal.epc", trap_epc, pc);
  check("c.zero.illegal.tval", trap_tval, 0);
  reset_trap();
  __asm__ volatile(".2byte 0x4002"); /* c.lwsp x0: reserved */
  check("c.lwsp.x0.illegal", trap_cause, 2);
  check("c.lwsp.x0.tval", trap_tval, 0x4002);
  reset_trap();
  __asm__ volatile(".2byte 0x8002"); /* c.jr x0: reserved */
  check("c.jr.x0.illegal", trap_cause, 2);
  check("c.jr.x0.tval", trap_tval, 0x8002);
}

int main(void) {
  loads_stores();
  alu();
  control();
  traps();
  return 0;
}
