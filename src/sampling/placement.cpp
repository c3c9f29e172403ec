#include "sampling/placement.h"

namespace spyglass::sampling {

CpuPlacement::CpuPlacement() {
  CPU_ZERO(&allowed_);
  if (sched_getaffinity(0, sizeof allowed_, &allowed_) == 0) allowed_count_ = CPU_COUNT(&allowed_);
}

void CpuPlacement::keep_off(int cpu) {
  if (allowed_count_ < 2 || cpu < 0 || cpu >= CPU_SETSIZE || cpu == avoided_cpu_ ||
      !CPU_ISSET(cpu, &allowed_)) {
    return;
  }
  cpu_set_t elsewhere = allowed_;
  CPU_CLR(cpu, &elsewhere);
  if (sched_setaffinity(0, sizeof elsewhere, &elsewhere) != 0) return;
  avoided_cpu_ = cpu;
  ++moves_;
}

}  // namespace spyglass::sampling
