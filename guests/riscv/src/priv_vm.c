/* Sv39 paging: gigapage/megapage/4K mappings, hardware-updated A/D bits, page faults for
   loads/stores/fetches with stval = VA, R/W/X/U permissions, SUM and MXR, misaligned
   superpages, non-canonical addresses, the upper half, sfence.vma, U-mode under paging. */
#include "rt.h"

#define PTE_V 1ull
#define PTE_R 2ull
#define PTE_W 4ull
#define PTE_X 8ull
#define PTE_U 16ull
#define PTE_G 32ull
#define PTE_A 64ull
#define PTE_D 128ull
#define PTE(pa, flags) ((((uint64_t)(pa)) >> 12) << 10 | (flags))

static uint64_t root[512] __attribute__((aligned(4096)));
static uint64_t l1[512] __attribute__((aligned(4096)));
static uint64_t l0[512] __attribute__((aligned(4096)));
static uint64_t page_a[512] __attribute__((aligned(4096)));
static uint64_t page_b[512] __attribute__((aligned(4096)));
static uint8_t page_x[4096] __attribute__((aligned(4096)));
static uint64_t page_u[512] __attribute__((aligned(4096)));
static uint8_t page_ux[4096] __attribute__((aligned(4096)));
static uint64_t ustack[512] __attribute__((aligned(4096)));

extern char pic_ret42[], pic_ret42_end[], user_code[], user_code_end[];

#define VA_A 0x200000ull
#define VA_RO 0x201000ull
#define VA_X 0x202000ull
#define VA_U 0x203000ull
#define VA_UX 0x204000ull
#define VA_NONE 0x205000ull
#define VA_ALIAS 0x206000ull
#define VA_WONLY 0x207000ull
#define VA_MEGA 0x400000ull
#define VA_BADMEGA 0x600000ull
#define MEGA_PA 0x80400000ull

static uint64_t load(uint64_t va) { return *(volatile uint64_t *)va; }
static void store(uint64_t va, uint64_t v) { *(volatile uint64_t *)va = v; }

static void setup(void) {
  root[2] = PTE(0x80000000ull, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D | PTE_G);
  root[511] = PTE(0x80000000ull, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D | PTE_G);
  root[0] = PTE(l1, PTE_V);
  l1[1] = PTE(l0, PTE_V);
  l1[2] = PTE(MEGA_PA, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);
  l1[3] = PTE(MEGA_PA + 0x1000, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);
  l0[0] = PTE(page_a, PTE_V | PTE_R | PTE_W);
  l0[1] = PTE(page_b, PTE_V | PTE_R | PTE_A);
  l0[2] = PTE(page_x, PTE_V | PTE_X | PTE_A);
  l0[3] = PTE(page_u, PTE_V | PTE_R | PTE_W | PTE_U | PTE_A | PTE_D);
  l0[4] = PTE(page_ux, PTE_V | PTE_R | PTE_X | PTE_U | PTE_A);
  l0[6] = PTE(page_a, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);
  l0[7] = PTE(page_b, PTE_V | PTE_W | PTE_A | PTE_D);
  l0[8] = PTE(ustack, PTE_V | PTE_R | PTE_W | PTE_U | PTE_A | PTE_D);
  page_a[0] = 0xaaaa0000aaaa0000ull;
  page_b[0] = 0xbbbb0000bbbb0000ull;
  page_u[0] = 0x0000000000001000ull;
  memcpy(page_x, pic_ret42, pic_ret42_end - pic_ret42);
  memcpy(page_ux, user_code, user_code_end - user_code);
  *(volatile uint64_t *)(MEGA_PA + 8) = 0x4d4d4d4d4d4d4d4dull;
  __asm__ volatile("fence.i");
  csr_write(satp, (8ull << 60) | ((uint64_t)root >> 12));
  __asm__ volatile("sfence.vma");
}

static void basic(void) {
  check("satp.sv39", csr_read(satp) >> 60, 8);
  check("still.running", 1, 1);
  check("load.4k", load(VA_A), 0xaaaa0000aaaa0000ull);
  check("ad.accessed", l0[0] & (PTE_A | PTE_D), PTE_A);
  store(VA_A + 8, 5);
  check("ad.dirty", l0[0] & (PTE_A | PTE_D), PTE_A | PTE_D);
  check("store.visible.phys", page_a[1], 5);
  check("load.megapage", load(VA_MEGA + 8), 0x4d4d4d4d4d4d4d4dull);
  check("load.upper.half", load(0xffffffffc0000000ull + ((uint64_t)&page_b[0] - 0x80000000ull)),
        0xbbbb0000bbbb0000ull);
  uint64_t (*fn)(void) = (uint64_t(*)(void))VA_X;
  check("fetch.exec.only", fn(), 42);
}

static void faults(void) {
  reset_trap();
  uint64_t v = 7;
  __asm__ volatile("ld %0, 0(%1)" : "+r"(v) : "r"(VA_NONE));
  check("pf.load.cause", trap_cause, 13);
  check("pf.load.tval", trap_tval, VA_NONE);
  reset_trap();
  store(VA_RO, 1);
  check("pf.store.ro.cause", trap_cause, 15);
  check("pf.store.ro.tval", trap_tval, VA_RO);
  check("pf.store.ro.unchanged", page_b[0], 0xbbbb0000bbbb0000ull);
  reset_trap();
  load(VA_WONLY);
  check("pf.w.without.r", trap_cause, 13);
  reset_trap();
  load(VA_X);
  check("pf.load.exec.only", trap_cause, 13);
  csr_set(sstatus, SSTATUS_MXR);
  reset_trap();
  uint64_t w = load(VA_X);
  check("mxr.load.exec.only", trap_count, 0);
  check("mxr.value", w, *(uint64_t *)page_x);
  csr_clear(sstatus, SSTATUS_MXR);
  reset_trap();
  __asm__ volatile("la t0, 1f\n sd t0, 0(%0)\n li t1, 0x200000\n jalr ra, 0(t1)\n 1:" ::"r"(
                       &trap_resume)
                   : "t0", "t1", "ra", "memory");
  check("pf.fetch.cause", trap_cause, 12);
  check("pf.fetch.tval", trap_tval, VA_A);
  check("pf.fetch.epc", trap_epc, VA_A);
  reset_trap();
  load(VA_U);
  check("pf.s.reads.u.without.sum", trap_cause, 13);
  csr_set(sstatus, SSTATUS_SUM);
  reset_trap();
  check("sum.reads.u", load(VA_U), 0x1000);
  check("sum.no.trap", trap_count, 0);
  reset_trap();
  __asm__ volatile("la t0, 1f\n sd t0, 0(%0)\n li t1, 0x204000\n jalr ra, 0(t1)\n 1:" ::"r"(
                       &trap_resume)
                   : "t0", "t1", "ra", "memory");
  check("pf.s.fetch.u.even.with.sum", trap_cause, 12);
  csr_clear(sstatus, SSTATUS_SUM);
  reset_trap();
  load(VA_BADMEGA);
  check("pf.misaligned.superpage", trap_cause, 13);
  reset_trap();
  load(0x0000008000000000ull);
  check("pf.noncanonical.cause", trap_cause, 13);
  check("pf.noncanonical.tval", trap_tval, 0x0000008000000000ull);
}

static void sfence(void) {
  check("alias.before", load(VA_ALIAS), 0xaaaa0000aaaa0000ull);
  l0[6] = PTE(page_b, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);
  __asm__ volatile("sfence.vma %0, zero" ::"r"(VA_ALIAS) : "memory");
  check("alias.after.sfence", load(VA_ALIAS), 0xbbbb0000bbbb0000ull);
}

static void user(void) {
  csr_set(sstatus, SSTATUS_SUM); /* lets the trap handler read U-mode instructions */
  reset_trap();
  uint64_t r = run_user((void (*)(void))VA_UX, 0x208000ull + 4096);
  check("user.vm.result", r, 0x1000 + 0x1234);
  check("user.vm.stored", page_u[1], 0x1234);
  reset_trap();
  r = run_user((void (*)(void))(VA_UX + 32), 0x208000ull + 4096);
  check("user.vm.spage.cause", trap_log[0], 13);
  check("user.vm.spage.tval", trap_tval == 0x80200000ull || trap_log[1] == 8, 1);
  check("user.vm.spage.skipped", r, 0x66);
  reset_trap();
  r = run_user((void (*)(void))(VA_UX + 64), 0x208000ull + 4096);
  check("user.vm.unmapped.cause", trap_log[0], 15);
  check("user.vm.unmapped.then.ecall", trap_log[1], 8);
  csr_clear(sstatus, SSTATUS_SUM);
}

int main(void) {
  setup();
  basic();
  faults();
  sfence();
  user();
  csr_write(satp, 0);
  __asm__ volatile("sfence.vma");
  check("bare.again", csr_read(satp), 0);
  return 0;
}
