// Where the sampling thread wakes up. A real-time thread wakes on the CPU it last ran on and
// preempts whatever runs there; the kernel moves it elsewhere only when a real-time thread
// runs there already, not when another CPU is idle. When the thread it preempts holds the
// target's GIL, every thread of the target waits for the sample: on the reference workload
// (3.12, two CPUs) the target ran 5 % slower at 10 kHz, against 0.7 % with the sampler and the
// target pinned to different CPUs. So between samples the sampling thread keeps off the CPU
// the GIL holder last ran on, where its allowed CPUs leave it another.
#pragma once

#include <sched.h>

#include <cstdint>

namespace spyglass::sampling {

class CpuPlacement {
 public:
  // The calling thread's allowed CPUs as it is now (a user's taskset is kept to).
  CpuPlacement();
  // Keeps the calling thread off `cpu` (a sched_setaffinity when it changed). Does nothing
  // with one allowed CPU, for a CPU it is not allowed anyway, or for -1 (unknown).
  void keep_off(int cpu);
  // Times the sampling thread was moved.
  uint64_t moves() const { return moves_; }

 private:
  cpu_set_t allowed_;
  int allowed_count_ = 0;
  int avoided_cpu_ = -1;  // the CPU the thread keeps off now; -1: none
  uint64_t moves_ = 0;
};

}  // namespace spyglass::sampling
