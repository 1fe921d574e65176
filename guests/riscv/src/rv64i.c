/* RV64I: ALU (incl. W forms), shifts, compares, loads/stores of every width with sign/zero
   extension, branches, LUI/AUIPC/JAL/JALR. Operands come through volatiles so the compiler
   emits the instructions; expected values are the same expressions folded at compile time. */
#include "rt.h"

#define BIN(name, T, op, A, B)                                   \
  do {                                                           \
    volatile T a_ = (A), b_ = (B);                               \
    T ra_ = a_, rb_ = b_;                                        \
    check(name, (uint64_t)(int64_t)(T)(ra_ op rb_),              \
          (uint64_t)(int64_t)(T)((T)(A) op (T)(B)));             \
  } while (0)

static uint64_t asm_r(uint64_t v) { return v; }

static void alu(void) {
  BIN("add", uint64_t, +, 0x7fffffffffffffffull, 1);
  BIN("add.carry", uint64_t, +, 0x00000000ffffffffull, 1);
  BIN("sub", int64_t, -, 0, 0x0000000100000000ll);
  BIN("sub.borrow", uint64_t, -, 0x100000000ull, 1);
  BIN("xor", uint64_t, ^, 0xf0f0f0f0f0f0f0f0ull, 0x0ff00ff00ff00ff0ull);
  BIN("or", uint64_t, |, 0xf000000000000001ull, 0x0f00000000000010ull);
  BIN("and", uint64_t, &, 0xff00ff00ff00ff00ull, 0x0ff00ff00ff00ff0ull);
  BIN("slt", int64_t, <, -1, 0);
  BIN("slt.hi", int64_t, <, 0x100000000ll, 0xffffffffll);
  BIN("sltu", uint64_t, <, 0xfffffffffffffffeull, 0xffffffffffffffffull);
  BIN("sltu.lo", uint64_t, <, 0x80000000ull, 0x80000001ull);
  BIN("addw", uint32_t, +, 0x7fffffffu, 1);
  BIN("subw", uint32_t, -, 0x80000000u, 1);
  BIN("mulw.via.c", uint32_t, *, 0x12345u, 0x54321u);
  volatile uint64_t s = 0x8000000000000001ull;
  uint64_t v = s;
  for (int sh = 0; sh < 64; sh += 7) {
    volatile int vs = sh;
    int k = vs;
    if ((v << k) != (0x8000000000000001ull << sh)) fail("sll", v << k, 0x8000000000000001ull << sh);
    if ((v >> k) != (0x8000000000000001ull >> sh)) fail("srl", v >> k, 0x8000000000000001ull >> sh);
    if (((int64_t)v >> k) != ((int64_t)0x8000000000000001ull >> sh))
      fail("sra", (uint64_t)((int64_t)v >> k), (uint64_t)((int64_t)0x8000000000000001ull >> sh));
  }
  pass("shifts.64");
  volatile int32_t w = (int32_t)0x80000001;
  int32_t wv = w;
  for (int sh = 0; sh < 32; sh += 5) {
    volatile int vs = sh;
    int k = vs;
    if ((int64_t)(int32_t)((uint32_t)wv << k) != (int64_t)(int32_t)(0x80000001u << sh))
      fail("sllw", (uint64_t)(int64_t)(int32_t)((uint32_t)wv << k), 0);
    if ((int64_t)(int32_t)((uint32_t)wv >> k) != (int64_t)(int32_t)(0x80000001u >> sh))
      fail("srlw", (uint64_t)(int64_t)(int32_t)((uint32_t)wv >> k), 0);
    if ((int64_t)(wv >> k) != (int64_t)((int32_t)0x80000001 >> sh))
      fail("sraw", (uint64_t)(int64_t)(wv >> k), 0);
  }
  pass("shifts.32");
}

static void asm_forms(void) {
  uint64_t r;
  /* Shift amounts use only the low 6 (RV64) / 5 (W) bits of rs2. */
  __asm__ volatile("sll %0, %1, %2" : "=r"(r) : "r"(asm_r(1)), "r"(asm_r(65)));
  check("sll.mask6", r, 2);
  __asm__ volatile("sllw %0, %1, %2" : "=r"(r) : "r"(asm_r(1)), "r"(asm_r(33)));
  check("sllw.mask5", r, 2);
  __asm__ volatile("sraw %0, %1, %2" : "=r"(r) : "r"(asm_r(0x80000000ull)), "r"(asm_r(4)));
  check("sraw.sext", r, 0xfffffffff8000000ull);
  __asm__ volatile("srlw %0, %1, %2" : "=r"(r) : "r"(asm_r(0xffffffff80000000ull)), "r"(asm_r(0)));
  check("srlw.0.sext", r, 0xffffffff80000000ull);
  __asm__ volatile("srliw %0, %1, 1" : "=r"(r) : "r"(asm_r(0xffffffff80000000ull)));
  check("srliw", r, 0x40000000ull);
  __asm__ volatile("sraiw %0, %1, 31" : "=r"(r) : "r"(asm_r(0x80000000ull)));
  check("sraiw", r, 0xffffffffffffffffull);
  __asm__ volatile("slliw %0, %1, 31" : "=r"(r) : "r"(asm_r(3)));
  check("slliw", r, 0xffffffff80000000ull);
  __asm__ volatile("addiw %0, %1, -1" : "=r"(r) : "r"(asm_r(0x100000000ull)));
  check("addiw.wrap", r, 0xffffffffffffffffull);
  __asm__ volatile("addiw %0, %1, 0" : "=r"(r) : "r"(asm_r(0x17fffffffull)));
  check("sext.w", r, 0x7fffffffull);
  __asm__ volatile("slti %0, %1, -1" : "=r"(r) : "r"(asm_r(0x8000000000000000ull)));
  check("slti", r, 1);
  __asm__ volatile("sltiu %0, %1, -1" : "=r"(r) : "r"(asm_r(5)));
  check("sltiu.sext", r, 1);
  __asm__ volatile("xori %0, %1, -1" : "=r"(r) : "r"(asm_r(0x00ff00ff00ff00ffull)));
  check("xori.not", r, 0xff00ff00ff00ff00ull);
  __asm__ volatile("srai %0, %1, 63" : "=r"(r) : "r"(asm_r(0x8000000000000000ull)));
  check("srai63", r, 0xffffffffffffffffull);
  __asm__ volatile("srli %0, %1, 32" : "=r"(r) : "r"(asm_r(0xdeadbeef00000000ull)));
  check("srli32", r, 0xdeadbeefull);
  __asm__ volatile("lui %0, 0x80000" : "=r"(r));
  check("lui.sext", r, 0xffffffff80000000ull);
  __asm__ volatile("lui %0, 0x7ffff" : "=r"(r));
  check("lui", r, 0x7ffff000ull);
  uint64_t a, b;
  __asm__ volatile("1: auipc %0, 0\n la %1, 1b" : "=r"(a), "=r"(b));
  check("auipc", a, b);
  __asm__ volatile("1: auipc %0, 1\n la %1, 1b" : "=r"(a), "=r"(b));
  check("auipc.imm", a - b, 4096);
  __asm__ volatile("jal %0, 1f\n 1: la %1, 1b" : "=r"(a), "=r"(b));
  check("jal.link", a, b);
  __asm__ volatile("la t0, 1f\n addi t0, t0, 1\n jalr %0, 0(t0)\n 1: la %1, 1b" : "=r"(a), "=r"(b) : : "t0");
  check("jalr.clear.bit0", a, b);
  __asm__ volatile("la t0, 1f\n jalr t0, 0(t0)\n 1: mv %0, t0\n la %1, 1b" : "=r"(a), "=r"(b) : : "t0");
  check("jalr.rd.eq.rs1", a, b);
  __asm__ volatile("li %0, 5\n addi x0, %0, 7\n mv %1, x0" : "=r"(a), "=r"(b));
  check("x0.stays.zero", b, 0);
}

static volatile uint8_t bytes[16] = {0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88,
                                     0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};

static void loads_stores(void) {
  volatile uint8_t *p = bytes;
  check("lb", (uint64_t)(int64_t) * (volatile int8_t *)p, 0xffffffffffffff81ull);
  check("lbu", *(volatile uint8_t *)p, 0x81);
  check("lh", (uint64_t)(int64_t) * (volatile int16_t *)p, 0xffffffffffff8281ull);
  check("lhu", *(volatile uint16_t *)p, 0x8281);
  check("lw", (uint64_t)(int64_t) * (volatile int32_t *)p, 0xffffffff84838281ull);
  check("lwu", *(volatile uint32_t *)p, 0x84838281ull);
  check("ld", *(volatile uint64_t *)p, 0x8887868584838281ull);
  check("lw.pos", (uint64_t)(int64_t) * (volatile int32_t *)(p + 8), 0x04030201ull);
  static volatile uint64_t buf[2];
  buf[0] = 0;
  *(volatile uint8_t *)buf = 0xaa;
  *((volatile uint16_t *)buf + 1) = 0xbbcc;
  *((volatile uint32_t *)buf + 1) = 0x11223344;
  check("sb.sh.sw", buf[0], 0x11223344bbcc00aaull);
  buf[1] = 0x0123456789abcdefull;
  check("sd", buf[1], 0x0123456789abcdefull);
  uint64_t r;
  __asm__ volatile("ld %0, -8(%1)" : "=r"(r) : "r"(&buf[1]));
  check("ld.negoff", r, buf[0]);
}

static int cmp_taken(int64_t a, int64_t b) {
  int n = 0;
  volatile int64_t va = a, vb = b;
  int64_t x = va, y = vb;
  if (x == y) n |= 1;
  if (x != y) n |= 2;
  if (x < y) n |= 4;
  if (x >= y) n |= 8;
  if ((uint64_t)x < (uint64_t)y) n |= 16;
  if ((uint64_t)x >= (uint64_t)y) n |= 32;
  return n;
}

static void branches(void) {
  check("br.eq", cmp_taken(5, 5), 1 | 8 | 32);
  check("br.neg", cmp_taken(-1, 1), 2 | 4 | 32);
  check("br.hi", cmp_taken(0x100000000ll, 0xffffffffll), 2 | 8 | 32);
  check("br.lo.unsigned", cmp_taken(0x80000000ll, 0x7fffffffll), 2 | 8 | 32);
  check("br.min", cmp_taken((int64_t)0x8000000000000000ull, 0x7fffffffffffffffll), 2 | 4 | 32);
  int64_t fib[40];
  fib[0] = 0;
  fib[1] = 1;
  for (int i = 2; i < 40; i++) fib[i] = fib[i - 1] + fib[i - 2];
  check("loop.fib39", (uint64_t)fib[39], 63245986);
}

int main(void) {
  alu();
  asm_forms();
  loads_stores();
  branches();
  return 0;
}
