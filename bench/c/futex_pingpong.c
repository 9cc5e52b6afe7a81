/*
 * Raw futex round trip between two processes, the baseline for ipcbox's
 * parked (blocking) round trip. fork(), one MAP_SHARED anonymous page,
 * FUTEX_WAIT / FUTEX_WAKE without FUTEX_PRIVATE_FLAG (the shared-futex path,
 * the same one ipcbox uses), no spinning: every wait parks if the word has
 * not changed yet.
 *
 * Usage: futex_pingpong ROUNDS WARMUP
 * Prints one line: RESULT {"rounds":N,"p50us":...,"p10us":...,"p90us":...,"meanus":...}
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long futex(atomic_int *addr, int op, int val) {
  return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

static void wait_while(atomic_int *w, int v) {
  while (atomic_load(w) == v) futex(w, FUTEX_WAIT, v);
}

static void set_and_wake(atomic_int *w, int v) {
  atomic_store(w, v);
  futex(w, FUTEX_WAKE, 1);
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 20000;
  int warmup = argc > 2 ? atoi(argv[2]) : 1000;
  if (rounds < 1 || warmup < 0) return 2;
  /* ping and pong on separate cache lines */
  atomic_int *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 1;
  atomic_int *ping = &mem[0], *pong = &mem[16];
  int total = rounds + warmup;
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    for (int i = 1; i <= total; i++) {
      wait_while(ping, i - 1);
      set_and_wake(pong, i);
    }
    _exit(0);
  }
  double *samples = malloc(sizeof(double) * rounds);
  double sum = 0;
  for (int i = 1; i <= total; i++) {
    double t0 = now_us();
    set_and_wake(ping, i);
    wait_while(pong, i - 1);
    double dt = now_us() - t0;
    if (i > warmup) {
      samples[i - warmup - 1] = dt;
      sum += dt;
    }
  }
  waitpid(pid, NULL, 0);
  qsort(samples, rounds, sizeof(double), cmp);
  printf("RESULT {\"rounds\":%d,\"p50us\":%.3f,\"p10us\":%.3f,\"p90us\":%.3f,\"meanus\":%.3f}\n", rounds,
         samples[rounds / 2], samples[rounds / 10], samples[rounds * 9 / 10], sum / rounds);
  return 0;
}
