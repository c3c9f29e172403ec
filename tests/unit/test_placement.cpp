#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "sampling/placement.h"
#include "sampling/thread_state.h"

namespace {

using spyglass::sampling::CpuPlacement;
using spyglass::sampling::ThreadStateReader;

pid_t own_tid() {
  return static_cast<pid_t>(syscall(SYS_gettid));
}

// Two CPUs this test may use, or false.
bool two_cpus(int& first, int& second) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return false;
  first = second = -1;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    if (first < 0) {
      first = cpu;
    } else {
      second = cpu;
      return true;
    }
  }
  return false;
}

TEST(CpuPlacement, KeepsOffTheCpuAThreadRunsOn) {
  int busy_cpu = 0, other_cpu = 0;
  if (!two_cpus(busy_cpu, other_cpu)) GTEST_SKIP() << "needs two CPUs this test may run on";
  std::atomic<pid_t> busy_tid{0};
  std::atomic<bool> stop{false};
  std::thread busy([&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(busy_cpu, &one);
    sched_setaffinity(0, sizeof one, &one);
    busy_tid = own_tid();
    while (!stop) {
    }
  });
  while (busy_tid == 0) std::this_thread::yield();
  std::atomic<bool> kept_off{false};
  uint64_t moves = 0;
  int seen_cpu = -1;
  // On a thread of its own: the placement changes the calling thread's CPUs.
  std::thread sampler([&] {
    CpuPlacement placement;
    ThreadStateReader threads(getpid());
    seen_cpu = threads.cpu(busy_tid);
    placement.keep_off(seen_cpu);
    cpu_set_t now;
    CPU_ZERO(&now);
    sched_getaffinity(0, sizeof now, &now);
    kept_off = !CPU_ISSET(busy_cpu, &now) && CPU_ISSET(other_cpu, &now);
    placement.keep_off(threads.cpu(busy_tid));  // the same CPU again: no second move
    moves = placement.moves();
  });
  sampler.join();
  stop = true;
  busy.join();
  EXPECT_EQ(seen_cpu, busy_cpu);
  EXPECT_TRUE(kept_off);
  EXPECT_EQ(moves, 1u);
}

TEST(CpuPlacement, LeavesTheThreadWhereItIsWhenItCannotTell) {
  cpu_set_t before;
  CPU_ZERO(&before);
  sched_getaffinity(0, sizeof before, &before);
  std::thread sampler([&] {
    CpuPlacement placement;
    ThreadStateReader threads(999'999'999);  // no such process
    placement.keep_off(threads.cpu(999'999'999));
    placement.keep_off(-1);
    EXPECT_EQ(placement.moves(), 0u);
    cpu_set_t now;
    CPU_ZERO(&now);
    sched_getaffinity(0, sizeof now, &now);
    EXPECT_TRUE(CPU_EQUAL(&now, &before));
  });
  sampler.join();
}

}  // namespace
