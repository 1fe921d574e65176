/*
 * C reference for bench/kvm.ts: the same loops the TypeScript KVM backend runs, written the
 * way a C VMM would, so the ratio TS / C isolates the cost of the TypeScript path.
 *
 *   kvm_bench <cpu> <exit-loop.bin> [threaded]
 *
 * Boots the guest once, then serves requests read from stdin, one per line,
 * "<mode> <iterations>", answering each with one line "<ns per iteration>"; it exits at EOF.
 * The bench keeps this process for the whole run instead of starting one per round: each
 * spawn forks the Node process, and the copy-on-write faults that follow would be charged to
 * the next TypeScript round.
 *
 * mode: exit      KVM_RUN on guests/x86/exit-loop.bin (one KVM_EXIT_IO per run), checking
 *                 the exit reason and port and reading the data byte;
 *       one_reg   KVM_GET_ONE_REG of IA32_TSC;
 *       regs      exit + KVM_GET_REGS, rax += 1, KVM_SET_REGS;
 *       sync      exit + rax += 1 through kvm_run.s.regs with KVM_SYNC_X86_REGS valid/dirty.
 * cpu: pins this thread there (-1: no pinning).
 * Compiled at bench time by the machine's cc (see bench/kvm.ts); needs only libc and the
 * kernel's <linux/kvm.h>.
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
#define LOOP_PORT 0x10
#define MSR_IA32_TSC 0x10
#define X86_MSR_ID(index) (0x2030000200000000ull | (uint64_t)(index))

struct guest {
  int sys, vm, vcpu;
  struct kvm_run *run;
};

static void boot(struct guest *g, const char *image) {
  g->sys = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (g->sys < 0) die("open /dev/kvm");
  g->vm = ioctl(g->sys, KVM_CREATE_VM, 0);
  if (g->vm < 0) die("KVM_CREATE_VM");
  uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  FILE *f = fopen(image, "rb");
  if (f == NULL) die(image);
  size_t n = fread(mem + LOAD_ADDR, 1, MEM_SIZE - LOAD_ADDR, f);
  fclose(f);
  if (n == 0) die("empty image");
  struct kvm_userspace_memory_region region = {
      .slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE, .userspace_addr = (uint64_t)mem};
  if (ioctl(g->vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");
  g->vcpu = ioctl(g->vm, KVM_CREATE_VCPU, 0);
  if (g->vcpu < 0) die("KVM_CREATE_VCPU");
  struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + 256 * sizeof(struct kvm_cpuid_entry2));
  cpuid->nent = 256;
  if (ioctl(g->sys, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) die("KVM_GET_SUPPORTED_CPUID");
  if (ioctl(g->vcpu, KVM_SET_CPUID2, cpuid) < 0) die("KVM_SET_CPUID2");
  free(cpuid);
  int size = ioctl(g->sys, KVM_GET_VCPU_MMAP_SIZE, 0);
  g->run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, g->vcpu, 0);
  if (g->run == MAP_FAILED) die("mmap kvm_run");
  struct kvm_sregs sregs;
  if (ioctl(g->vcpu, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  if (ioctl(g->vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
  struct kvm_regs regs;
  memset(&regs, 0, sizeof regs);
  regs.rip = LOAD_ADDR;
  regs.rflags = 2;
  if (ioctl(g->vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
}

static void run_once(struct guest *g) {
  if (ioctl(g->vcpu, KVM_RUN, 0) < 0) die("KVM_RUN");
  if (g->run->exit_reason != KVM_EXIT_IO || g->run->io.port != LOOP_PORT) {
    fprintf(stderr, "unexpected exit %u\n", g->run->exit_reason);
    exit(1);
  }
}

/* Runs `iterations` of `mode`; returns ns per iteration, or -1 for an unknown mode. */
static double measure(struct guest *g, const char *mode, long iterations) {
  volatile uint64_t sink = 0;
  double start = clock_ns(CLOCK_MONOTONIC);
  if (strcmp(mode, "exit") == 0) {
    for (long i = 0; i < iterations; i++) {
      run_once(g);
      sink += ((uint8_t *)g->run)[g->run->io.data_offset];
    }
  } else if (strcmp(mode, "one_reg") == 0) {
    uint64_t value = 0;
    struct kvm_one_reg reg = {.id = X86_MSR_ID(MSR_IA32_TSC), .addr = (uint64_t)&value};
    for (long i = 0; i < iterations; i++) {
      if (ioctl(g->vcpu, KVM_GET_ONE_REG, &reg) < 0) die("KVM_GET_ONE_REG");
      sink += value;
    }
  } else if (strcmp(mode, "regs") == 0) {
    struct kvm_regs regs;
    for (long i = 0; i < iterations; i++) {
      if (ioctl(g->vcpu, KVM_GET_REGS, &regs) < 0) die("KVM_GET_REGS");
      regs.rax += 1;
      if (ioctl(g->vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
      run_once(g);
    }
  } else if (strcmp(mode, "sync") == 0) {
    g->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
    run_once(g);
    for (long i = 0; i < iterations; i++) {
      g->run->s.regs.regs.rax += 1;
      g->run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
      run_once(g);
    }
    g->run->kvm_valid_regs = 0;
  } else {
    return -1;
  }
  (void)sink;
  return (clock_ns(CLOCK_MONOTONIC) - start) / (double)iterations;
}

int main(int argc, char **argv) {
  if (argc != 3 && !(argc == 4 && strcmp(argv[3], "threaded") == 0)) {
    fprintf(stderr, "usage: %s <cpu> <exit-loop.bin> [threaded]  (then \"<mode> <iterations>\" lines)\n",
            argv[0]);
    return 2;
  }
  if (argc == 4) start_idle_thread();
  int cpu = atoi(argv[1]);
  pin_to_cpu(cpu);
  struct guest g;
  boot(&g, argv[2]);
  /* Warm up: the guest's mode switches, then a few loop exits. */
  for (int i = 0; i < 1000; i++) run_once(&g);

  char mode[32];
  long iterations;
  while (scanf("%31s %ld", mode, &iterations) == 2) {
    if (iterations <= 0) {
      fprintf(stderr, "iterations must be positive\n");
      return 2;
    }
    double ns = measure(&g, mode, iterations);
    if (ns < 0) {
      fprintf(stderr, "unknown mode %s\n", mode);
      return 2;
    }
    printf("%.1f\n", ns);
    fflush(stdout);
  }
  return 0;
}
