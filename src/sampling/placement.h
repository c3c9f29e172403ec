// Where the sampling thread wakes up. A real-time thread wakes on the CPU it last ran on and
// preempts whatever runs there; the kernel moves it elsewhere only when a real-time thread
// runs there already, not when another CPU is idle. When the thread it preempts holds the
// target's GIL, every thread of the target waits for the sample: on the reference workload
// (3.12, two CPUs) the target ran 5 % slower at 10 kHz, against 0.7 % with the sampler and the
// target pinned to different CPUs. So between samples the sampling thread keeps off the CPU
// the GIL holder last ran on, where its allowed CPUs leave it another.
#pragma once

#include <sched.h>
#include <sys/types.h>

#include <cstdint>

namespace spyglass::sampling {

class CpuPlacement {
 public:
  // The calling thread's allowed CPUs as it is now (a user's taskset is kept to).
  CpuPlacement();
  ~CpuPlacement();
  CpuPlacement(const CpuPlacement&) = delete;
  CpuPlacement& operator=(const CpuPlacement&) = delete;
  // Keeps the calling thread off the CPU that thread `tid` of process `pid` last ran on (one
  // pread of its stat file, kept open, and a sched_setaffinity when that CPU changed). Does
  // nothing with one allowed CPU, or when the thread's CPU cannot be read.
  void keep_off(pid_t pid, pid_t tid);
  // Times the sampling thread was moved.
  uint64_t moves() const { return moves_; }

 private:
  void close_stat();

  cpu_set_t allowed_;
  int allowed_count_ = 0;
  int avoided_cpu_ = -1;  // the CPU the thread keeps off now; -1: none
  int stat_fd_ = -1;
  pid_t stat_tid_ = 0;
  uint64_t moves_ = 0;
};

}  // namespace spyglass::sampling
