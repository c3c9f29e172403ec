// Fixed CPU work, timed: the floor measurement of what a perf-event interrupt costs the task it
// lands on (floor.py). Prints the seconds the loop took (CLOCK_MONOTONIC).
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char** argv) {
  unsigned long n = argc > 1 ? strtoul(argv[1], 0, 10) : 1000000000UL;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  volatile unsigned long x = 0;
  for (unsigned long i = 0; i < n; i++) x += i * i % 7;
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.6f\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9);
  return 0;
}
