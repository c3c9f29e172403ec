/* The floor of a sampler's CPU: a thread that only sleeps and wakes up at a rate, as spyglass's
 * sampling thread does between samples (clock_nanosleep to an absolute time, SCHED_FIFO when
 * allowed, 1 ns timer slack), and does nothing else. bench/run.py runs it beside the workload
 * like a profiler, and sets its CPU beside spyglass's: on a virtual machine whose idle CPUs halt,
 * a wake-up alone can cost ~20 µs of the woken thread's CPU time, 2 % of a core at 1 kHz, before
 * any memory is read.
 *
 *   idle_waker PID RATE OUTPUT    wakes RATE times a second until process PID has exited, then
 *                                 writes {"wakes", "seconds", "cpu_seconds"} as JSON to OUTPUT
 *
 * Compiled by bench/run.py with the machine's C compiler (no dependency, not part of spyglass).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

static double seconds_of(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: idle_waker PID RATE OUTPUT\n");
    return 2;
  }
  const pid_t pid = (pid_t)atoi(argv[1]);
  const double rate = atof(argv[2]);
  if (pid <= 0 || rate <= 0) {
    fprintf(stderr, "idle_waker: bad PID or rate\n");
    return 2;
  }
  struct sched_param param = {.sched_priority = 10};
  pthread_setschedparam(pthread_self(), SCHED_FIFO, &param); /* as spyglass, when allowed */
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  const long period_ns = (long)(1e9 / rate);
  const double started = seconds_of(CLOCK_MONOTONIC);
  const double cpu_started = seconds_of(CLOCK_THREAD_CPUTIME_ID);
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  unsigned long wakes = 0;
  for (;;) {
    next.tv_nsec += period_ns;
    while (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      ++next.tv_sec;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
    }
    ++wakes;
    /* A look at the target a few times a second: a system call each wake would raise the floor. */
    if (wakes % 256 == 0 && kill(pid, 0) != 0 && errno == ESRCH) break;
  }
  const double cpu = seconds_of(CLOCK_THREAD_CPUTIME_ID) - cpu_started;
  const double wall = seconds_of(CLOCK_MONOTONIC) - started;
  FILE* out = fopen(argv[3], "w");
  if (!out) {
    perror("idle_waker: output");
    return 1;
  }
  fprintf(out, "{\"wakes\": %lu, \"seconds\": %.6f, \"cpu_seconds\": %.6f}\n", wakes, wall, cpu);
  return fclose(out) == 0 ? 0 : 1;
}
