// process/rseq: a thread's CPU read from glibc's rseq area, on this test's own process (a
// glibc program like the interpreters spyglass reads).
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "process/memory.h"
#include "process/rseq.h"

namespace {

using spyglass::process::LiveMemory;
using spyglass::process::read_rseq_cpu;
using spyglass::process::rseq_cpu_offset;
using spyglass::process::SnapshotMemory;

TEST(Rseq, AThreadsCpuIsReadBesideItsPthread) {
  LiveMemory memory(getpid());
  const auto offset = rseq_cpu_offset(getpid(), memory);
  if (!offset) GTEST_SKIP() << "this process's loader has no registered rseq area";
  // Pinned, the thread's CPU cannot change between the two looks.
  cpu_set_t before, one;
  ASSERT_EQ(sched_getaffinity(0, sizeof before, &before), 0);
  const int cpu = sched_getcpu();
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  const uint64_t self = static_cast<uint64_t>(pthread_self());
  EXPECT_EQ(read_rseq_cpu(memory, self + static_cast<uint64_t>(*offset)), sched_getcpu());
  sched_setaffinity(0, sizeof before, &before);
}

TEST(Rseq, WhatIsNoCpuNumberIsUnknown) {
  SnapshotMemory memory;
  const uint32_t unregistered[2] = {~uint32_t{0}, ~uint32_t{0} - 1};
  std::vector<uint8_t> bytes(sizeof unregistered);
  std::memcpy(bytes.data(), unregistered, sizeof unregistered);
  memory.add_region(0x10000, bytes);
  EXPECT_EQ(read_rseq_cpu(memory, 0x10000), -1);
  EXPECT_EQ(read_rseq_cpu(memory, 0x10004), -1);
  EXPECT_EQ(read_rseq_cpu(memory, 0x90000), -1);  // unreadable
}

}  // namespace
