// The clock behind every exact-mode duration: the CPU's time-stamp counter when it is invariant
// (constant_tsc and nonstop_tsc: same rate on every core, through power states), calibrated against
// CLOCK_MONOTONIC; CLOCK_MONOTONIC itself otherwise. Never a thread-CPU clock (a syscall here).
#pragma once

#include <cstdint>
#include <ctime>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define SPYGLASS_HAVE_RDTSC 1
#else
#define SPYGLASS_HAVE_RDTSC 0
#endif

namespace spyglass::exact {

using Ticks = uint64_t;

class Clock {
 public:
  // Chooses the source (reads /proc/cpuinfo once) and takes the first calibration point.
  static void initialize();

  static Ticks now() {
#if SPYGLASS_HAVE_RDTSC
    if (use_tsc_) return __rdtsc();
#endif
    return monotonic_ns();
  }

  // Seconds per tick, from the longest calibration baseline available so far.
  static double seconds_per_tick();
  static bool uses_tsc() { return use_tsc_; }
  static std::string source_name();

  static uint64_t monotonic_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
  }

 private:
  static inline bool use_tsc_ = false;
};

}  // namespace spyglass::exact
