#include "extension/clock.h"

#include <fstream>
#include <sstream>

namespace spyglass::exact {
namespace {

struct CalibrationPoint {
  Ticks ticks = 0;
  uint64_t ns = 0;
};

CalibrationPoint g_origin;
double g_short_seconds_per_tick = 0;  // from a brief spin, until the long baseline is usable

CalibrationPoint take_point() {
  // Bracket the monotonic read with two counter reads and keep the tightest of a few tries, so
  // a preemption between the reads does not skew the pair.
  CalibrationPoint best;
  Ticks best_width = ~0ull;
  for (int attempt = 0; attempt < 5; ++attempt) {
    Ticks before = Clock::now();
    uint64_t ns = Clock::monotonic_ns();
    Ticks after = Clock::now();
    if (after - before < best_width) {
      best_width = after - before;
      best = {before + (after - before) / 2, ns};
    }
  }
  return best;
}

bool cpu_has_invariant_tsc() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line);
    std::string word;
    bool constant = false, nonstop = false;
    while (words >> word) {
      constant = constant || word == "constant_tsc";
      nonstop = nonstop || word == "nonstop_tsc";
    }
    return constant && nonstop;
  }
  return false;
}

}  // namespace

void Clock::initialize() {
#if SPYGLASS_HAVE_RDTSC
  use_tsc_ = cpu_has_invariant_tsc();
#endif
  g_origin = take_point();
  if (!use_tsc_) {
    g_short_seconds_per_tick = 1e-9;
    return;
  }
  // A 10 ms baseline: good to ~0.01 %, refined by the long baseline as time passes.
  uint64_t start_ns = monotonic_ns();
  while (monotonic_ns() - start_ns < 10'000'000) {
  }
  CalibrationPoint end = take_point();
  g_short_seconds_per_tick =
      static_cast<double>(end.ns - g_origin.ns) * 1e-9 / static_cast<double>(end.ticks - g_origin.ticks);
}

double Clock::seconds_per_tick() {
  if (!use_tsc_) return 1e-9;
  CalibrationPoint now_point = take_point();
  uint64_t elapsed_ns = now_point.ns - g_origin.ns;
  if (elapsed_ns < 1'000'000'000ull || now_point.ticks <= g_origin.ticks) {
    return g_short_seconds_per_tick;
  }
  return static_cast<double>(elapsed_ns) * 1e-9 /
         static_cast<double>(now_point.ticks - g_origin.ticks);
}

std::string Clock::source_name() { return use_tsc_ ? "tsc" : "clock_monotonic"; }

}  // namespace spyglass::exact
