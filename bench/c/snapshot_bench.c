/*
 * C reference for bench/snapshot.ts (kvm.snapshot.ts_over_c): replays, in a loop, the exact
 * sequence of vCPU ioctls that regvisor's TypeScript save + restore of the full x86 vCPU state
 * issues (recorded by the bench and written to a spec file), on the same demo guest state.
 *
 *   snapshot_bench <cpu> <demo.bin> <exits> <spec> [threaded]
 *
 * Boots once, then serves requests read from stdin, one per line, "<iterations>", answering
 * each with one line "<CPU ns> <wall ns>" per replay of the whole sequence; exits at EOF. (One
 * process for the whole bench run: a spawn per round would fork the Node process, and the
 * copy-on-write faults that follow would be charged to the next TypeScript round.)
 *
 * Boot: like bootFlatGuest with the in-kernel irqchip (2 MiB at GPA 0, image at 0x1000, the
 * supported CPUID, CS base 0, RIP 0x1000), then the demo's exit loop (OUT 0xE9 ignored, IN 0xEA
 * answered with 90) for <exits> exits, then one KVM_RUN with immediate_exit to complete the last
 * one — the state regvisor's bench snapshots.
 *
 * Spec: one ioctl per line, "KVM_GET_MSRS 0x10,0x174,..." for the MSR calls (the indices the
 * TypeScript call moved), the bare name otherwise. GETs fill one buffer per struct (MSR values
 * by index); SETs write back what the last GET read, as the TypeScript restore does with a
 * snapshot of the same state. CPU time is user + system of this process, which a busy shared
 * machine does not inflate.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/kvm.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

#define MEM_SIZE (2u << 20)
#define LOAD_ADDR 0x1000
#define MAX_OPS 256
#define MAX_MSRS 64
#define MAX_CPUID 256

enum op_kind {
  GET_REG_LIST, GET_MSRS, SET_MSRS, GET_REGS, SET_REGS, GET_SREGS, SET_SREGS, GET_FPU, SET_FPU,
  GET_XSAVE, SET_XSAVE, GET_XCRS, SET_XCRS, GET_VCPU_EVENTS, SET_VCPU_EVENTS, GET_MP_STATE,
  SET_MP_STATE, GET_DEBUGREGS, SET_DEBUGREGS, GET_LAPIC, SET_LAPIC, GET_CPUID2, SET_CPUID2,
  GET_TSC_KHZ, OP_COUNT
};

static const char *const names[OP_COUNT] = {
  "KVM_GET_REG_LIST", "KVM_GET_MSRS", "KVM_SET_MSRS", "KVM_GET_REGS", "KVM_SET_REGS",
  "KVM_GET_SREGS", "KVM_SET_SREGS", "KVM_GET_FPU", "KVM_SET_FPU", "KVM_GET_XSAVE",
  "KVM_SET_XSAVE", "KVM_GET_XCRS", "KVM_SET_XCRS", "KVM_GET_VCPU_EVENTS", "KVM_SET_VCPU_EVENTS",
  "KVM_GET_MP_STATE", "KVM_SET_MP_STATE", "KVM_GET_DEBUGREGS", "KVM_SET_DEBUGREGS",
  "KVM_GET_LAPIC", "KVM_SET_LAPIC", "KVM_GET_CPUID2", "KVM_SET_CPUID2", "KVM_GET_TSC_KHZ",
};

struct op {
  enum op_kind kind;
  int nmsrs;
  uint32_t msrs[MAX_MSRS];
};

/* Buffers shared by a GET and the SETs after it. */
static struct kvm_regs regs;
static struct kvm_sregs sregs;
static struct kvm_fpu fpu;
static struct kvm_xsave xsave;
static struct kvm_xcrs xcrs;
static struct kvm_vcpu_events events;
static struct kvm_mp_state mp_state;
static struct kvm_debugregs debugregs;
static struct kvm_lapic_state lapic;
static struct { struct kvm_cpuid2 head; struct kvm_cpuid_entry2 e[MAX_CPUID]; } cpuid;
static struct { struct kvm_msrs head; struct kvm_msr_entry e[MAX_MSRS]; } msrs;
static struct { struct kvm_reg_list head; uint64_t reg[16]; } reg_list;
static uint32_t msr_index[MAX_MSRS];
static uint64_t msr_value[MAX_MSRS];
static int msr_known;

static uint64_t *value_slot(uint32_t index) {
  for (int i = 0; i < msr_known; i++)
    if (msr_index[i] == index) return &msr_value[i];
  if (msr_known == MAX_MSRS) die("too many MSRs");
  msr_index[msr_known] = index;
  return &msr_value[msr_known++];
}

static void do_msrs(int vcpu, const struct op *o) {
  msrs.head.nmsrs = (uint32_t)o->nmsrs;
  for (int i = 0; i < o->nmsrs; i++) {
    msrs.e[i].index = o->msrs[i];
    msrs.e[i].data = o->kind == SET_MSRS ? *value_slot(o->msrs[i]) : 0;
  }
  int r = ioctl(vcpu, o->kind == GET_MSRS ? KVM_GET_MSRS : KVM_SET_MSRS, &msrs);
  if (r != o->nmsrs) die(names[o->kind]);
  if (o->kind == GET_MSRS)
    for (int i = 0; i < o->nmsrs; i++) *value_slot(o->msrs[i]) = msrs.e[i].data;
}

static void check(int r, enum op_kind k) {
  if (r < 0) die(names[k]);
}

static void replay(int vcpu, const struct op *o) {
  switch (o->kind) {
  case GET_REG_LIST:
    reg_list.head.n = 0; /* x86 6.18 lists nothing but GUEST_SSP: n = 0 succeeds */
    check(ioctl(vcpu, KVM_GET_REG_LIST, &reg_list), o->kind);
    break;
  case GET_MSRS: case SET_MSRS: do_msrs(vcpu, o); break;
  case GET_REGS: check(ioctl(vcpu, KVM_GET_REGS, &regs), o->kind); break;
  case SET_REGS: check(ioctl(vcpu, KVM_SET_REGS, &regs), o->kind); break;
  case GET_SREGS: check(ioctl(vcpu, KVM_GET_SREGS, &sregs), o->kind); break;
  case SET_SREGS: check(ioctl(vcpu, KVM_SET_SREGS, &sregs), o->kind); break;
  case GET_FPU: check(ioctl(vcpu, KVM_GET_FPU, &fpu), o->kind); break;
  case SET_FPU: check(ioctl(vcpu, KVM_SET_FPU, &fpu), o->kind); break;
  case GET_XSAVE: check(ioctl(vcpu, KVM_GET_XSAVE, &xsave), o->kind); break;
  case SET_XSAVE: check(ioctl(vcpu, KVM_SET_XSAVE, &xsave), o->kind); break;
  case GET_XCRS: check(ioctl(vcpu, KVM_GET_XCRS, &xcrs), o->kind); break;
  case SET_XCRS: check(ioctl(vcpu, KVM_SET_XCRS, &xcrs), o->kind); break;
  case GET_VCPU_EVENTS: check(ioctl(vcpu, KVM_GET_VCPU_EVENTS, &events), o->kind); break;
  case SET_VCPU_EVENTS: check(ioctl(vcpu, KVM_SET_VCPU_EVENTS, &events), o->kind); break;
  case GET_MP_STATE: check(ioctl(vcpu, KVM_GET_MP_STATE, &mp_state), o->kind); break;
  case SET_MP_STATE: check(ioctl(vcpu, KVM_SET_MP_STATE, &mp_state), o->kind); break;
  case GET_DEBUGREGS: check(ioctl(vcpu, KVM_GET_DEBUGREGS, &debugregs), o->kind); break;
  case SET_DEBUGREGS: check(ioctl(vcpu, KVM_SET_DEBUGREGS, &debugregs), o->kind); break;
  case GET_LAPIC: check(ioctl(vcpu, KVM_GET_LAPIC, &lapic), o->kind); break;
  case SET_LAPIC: check(ioctl(vcpu, KVM_SET_LAPIC, &lapic), o->kind); break;
  case GET_CPUID2:
    cpuid.head.nent = MAX_CPUID;
    check(ioctl(vcpu, KVM_GET_CPUID2, &cpuid), o->kind);
    break;
  case SET_CPUID2: check(ioctl(vcpu, KVM_SET_CPUID2, &cpuid), o->kind); break;
  case GET_TSC_KHZ: check(ioctl(vcpu, KVM_GET_TSC_KHZ, 0), o->kind); break;
  default: die("unknown op");
  }
}

static int parse_spec(const char *path, struct op *ops) {
  FILE *f = fopen(path, "r");
  if (f == NULL) die(path);
  char line[4096];
  int n = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    char *name = strtok(line, " \n");
    if (name == NULL) continue;
    if (n == MAX_OPS) die("spec too long");
    int k = 0;
    while (k < OP_COUNT && strcmp(names[k], name) != 0) k++;
    if (k == OP_COUNT) {
      fprintf(stderr, "unknown ioctl %s\n", name);
      exit(2);
    }
    ops[n].kind = (enum op_kind)k;
    ops[n].nmsrs = 0;
    for (char *m = strtok(NULL, ",\n"); m != NULL; m = strtok(NULL, ",\n")) {
      if (ops[n].nmsrs == MAX_MSRS) die("too many MSRs in one call");
      ops[n].msrs[ops[n].nmsrs++] = (uint32_t)strtoul(m, NULL, 0);
    }
    n++;
  }
  fclose(f);
  return n;
}

static int boot(const char *image, long exits) {
  int sys = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (sys < 0) die("open /dev/kvm");
  int vm = ioctl(sys, KVM_CREATE_VM, 0);
  if (vm < 0) die("KVM_CREATE_VM");
  if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) die("KVM_CREATE_IRQCHIP");
  uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  FILE *f = fopen(image, "rb");
  if (f == NULL) die(image);
  size_t n = fread(mem + LOAD_ADDR, 1, MEM_SIZE - LOAD_ADDR, f);
  fclose(f);
  if (n == 0) die("empty image");
  struct kvm_userspace_memory_region region = {
      .slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE, .userspace_addr = (uint64_t)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) die("KVM_CREATE_VCPU");
  cpuid.head.nent = MAX_CPUID;
  if (ioctl(sys, KVM_GET_SUPPORTED_CPUID, &cpuid) < 0) die("KVM_GET_SUPPORTED_CPUID");
  if (ioctl(vcpu, KVM_SET_CPUID2, &cpuid) < 0) die("KVM_SET_CPUID2");
  int size = ioctl(sys, KVM_GET_VCPU_MMAP_SIZE, 0);
  struct kvm_run *run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) die("mmap kvm_run");
  if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
  memset(&regs, 0, sizeof regs);
  regs.rip = LOAD_ADDR;
  regs.rflags = 2;
  if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
  for (long i = 0; i < exits; i++) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0) die("KVM_RUN");
    if (run->exit_reason != KVM_EXIT_IO) {
      fprintf(stderr, "unexpected exit %u\n", run->exit_reason);
      exit(1);
    }
    if (run->io.direction == KVM_EXIT_IO_IN && run->io.size == 4)
      *(uint32_t *)((uint8_t *)run + run->io.data_offset) = 90;
  }
  run->immediate_exit = 1;
  if (ioctl(vcpu, KVM_RUN, 0) == 0) die("immediate_exit KVM_RUN did not return EINTR");
  run->immediate_exit = 0;
  return vcpu;
}

int main(int argc, char **argv) {
  if (argc != 5 && !(argc == 6 && strcmp(argv[5], "threaded") == 0)) {
    fprintf(stderr,
            "usage: %s <cpu> <demo.bin> <exits> <spec> [threaded]  (then \"<iterations>\" lines)\n",
            argv[0]);
    return 2;
  }
  if (argc == 6) start_idle_thread();
  int cpu = atoi(argv[1]);
  pin_to_cpu(cpu);
  static struct op ops[MAX_OPS];
  int n = parse_spec(argv[4], ops);
  int vcpu = boot(argv[2], atol(argv[3]));
  for (int w = 0; w < 20; w++)
    for (int i = 0; i < n; i++) replay(vcpu, &ops[i]);
  long iterations;
  while (scanf("%ld", &iterations) == 1) {
    if (iterations <= 0) {
      fprintf(stderr, "iterations must be positive\n");
      return 2;
    }
    double wall = clock_ns(CLOCK_MONOTONIC);
    double cpu_time = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    for (long it = 0; it < iterations; it++)
      for (int i = 0; i < n; i++) replay(vcpu, &ops[i]);
    cpu_time = clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu_time;
    wall = clock_ns(CLOCK_MONOTONIC) - wall;
    printf("%.1f %.1f\n", cpu_time / (double)iterations, wall / (double)iterations);
    fflush(stdout);
  }
  return 0;
}
