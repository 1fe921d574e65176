/*
 * Helpers shared by the C references (kvm_bench.c, snapshot_bench.c): failing loudly, clocks,
 * pinning to the bench's CPU, and the optional idle thread of the "threaded" variants.
 */
#ifndef REGVISOR_BENCH_COMMON_H
#define REGVISOR_BENCH_COMMON_H

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
  perror(what);
  exit(1);
}

static double clock_ns(clockid_t clock) {
  struct timespec t;
  clock_gettime(clock, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* Pins this thread to `cpu` (-1: leaves it where it is), as the TypeScript side is pinned. */
static void pin_to_cpu(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) < 0) die("sched_setaffinity");
}

/*
 * "threaded": one more thread, idle for the process's life. Every Node process has several
 * threads, and so does every real C VMM; once a process's fd table is shared, the kernel takes
 * a reference on the file for each ioctl (fdget), which a single-threaded process skips. This
 * variant measures the same C loop with that cost, for comparison in the bench's detail.
 */
static void *idle_thread(void *arg) {
  (void)arg;
  for (;;) pause();
  return NULL;
}

static void start_idle_thread(void) {
  pthread_t thread;
  if (pthread_create(&thread, NULL, idle_thread, NULL) != 0) die("pthread_create");
}

#endif
