/* Self-modifying code: instructions written as data, made visible with fence.i, executed,
   patched and executed again (a hot loop, so translated blocks must be invalidated), plus code
   that patches the instruction following it inside the same straight-line run. */
#include "rt.h"

static uint32_t code[1024] __attribute__((aligned(4096)));

#define ADDI_A0(imm) (0x00000513u | ((uint32_t)(imm) << 20)) /* addi a0, zero, imm */
#define RET 0x00008067u

typedef uint64_t (*fn_t)(void);

static uint64_t call(void) {
  __asm__ volatile("fence.i" ::: "memory");
  return ((fn_t)code)();
}

int main(void) {
  code[0] = ADDI_A0(11);
  code[1] = RET;
  check("smc.first", call(), 11);
  uint64_t sum = 0;
  for (int i = 0; i < 300; i++) {
    code[0] = ADDI_A0(i & 0x7ff);
    sum += call();
  }
  check("smc.hot.loop", sum, 299 * 300 / 2);
  /* Patch a longer routine in the middle. */
  for (int i = 0; i < 16; i++) code[i] = ADDI_A0(i);
  code[16] = RET;
  uint64_t a = call();
  code[10] = 0x00050513u | (7u << 20); /* addi a0, a0, 7 */
  for (int i = 11; i < 16; i++) code[i] = 0x00000013u; /* nop */
  uint64_t b = call();
  check("smc.patch.middle", a * 100 + b, 15 * 100 + 16);
  /* A routine that rewrites its own next instruction, then fence.i, then runs it. */
  uint32_t *p = code + 64;
  p[0] = 0x00000297u;                  /* auipc t0, 0 */
  p[1] = 0x0002a303u | (24u << 20);    /* lw t1, 24(t0)  (the replacement word) */
  p[2] = 0x0062a823u;                  /* sw t1, 16(t0)  (overwrites p[4]) */
  p[3] = 0x0000100fu;                  /* fence.i */
  p[4] = ADDI_A0(1);                   /* becomes addi a0, zero, 2 */
  p[5] = RET;
  p[6] = ADDI_A0(2);                   /* data: the replacement instruction */
  __asm__ volatile("fence.i" ::: "memory");
  check("smc.patch.self", ((fn_t)p)(), 2);
  check("smc.patched.word", p[4], ADDI_A0(2));
  return 0;
}
