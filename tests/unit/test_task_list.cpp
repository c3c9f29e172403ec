// 3.14+ keep each thread's asyncio tasks in a circular list of llist_node {next, prev}: the
// list is read whole when it holds, and given up at once when it is freed memory.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "cpython/tasks.h"
#include "process/memory.h"

namespace spyglass::cpython {
namespace {

constexpr uint64_t kBase = 0x7f0000000000;
constexpr uint64_t kNodeOffset = 0x40;  // where a task keeps its node
constexpr uint64_t kTaskSize = 0x80;

struct Heap {
  std::vector<uint8_t> bytes = std::vector<uint8_t>(1 << 21);
  void put(uint64_t addr, uint64_t value) { std::memcpy(&bytes[addr - kBase], &value, 8); }
  process::SnapshotMemory snapshot() const {
    process::SnapshotMemory memory;
    memory.add_region(kBase, bytes);
    return memory;
  }
};

// A head at kBase and `count` tasks after it, linked both ways in a circle.
Heap circle(int count) {
  Heap heap;
  const uint64_t head = kBase;
  std::vector<uint64_t> nodes{head};
  for (int i = 0; i < count; ++i) nodes.push_back(kBase + 0x100 + i * kTaskSize + kNodeOffset);
  for (size_t i = 0; i < nodes.size(); ++i) {
    heap.put(nodes[i], nodes[(i + 1) % nodes.size()]);                     // next
    heap.put(nodes[i] + 8, nodes[(i + nodes.size() - 1) % nodes.size()]);  // prev
  }
  return heap;
}

TEST(TaskList, WholeListIsRead) {
  process::SnapshotMemory memory = circle(3).snapshot();
  std::vector<uint64_t> tasks;
  EXPECT_TRUE(read_task_list(memory, kBase, kNodeOffset, 1000, tasks));
  EXPECT_EQ(tasks, (std::vector<uint64_t>{kBase + 0x100, kBase + 0x100 + kTaskSize,
                                          kBase + 0x100 + 2 * kTaskSize}));
}

TEST(TaskList, EmptyListPointsAtItself) {
  process::SnapshotMemory memory = circle(0).snapshot();
  std::vector<uint64_t> tasks;
  EXPECT_TRUE(read_task_list(memory, kBase, kNodeOffset, 1000, tasks));
  EXPECT_TRUE(tasks.empty());
}

// Freed memory: a forward chain of 50,000 links (an allocator's free list) that never link
// back. Followed to the bound, it cost a tenth of a second of reads in one sample.
TEST(TaskList, ChainThatDoesNotLinkBackIsGivenUpAtOnce) {
  Heap heap;
  constexpr int kLinks = 50'000;
  for (int i = 0; i < kLinks; ++i) {
    const uint64_t at = kBase + 16 * i;
    heap.put(at, at + 16);  // next; prev left as whatever was there (0)
  }
  process::SnapshotMemory memory = heap.snapshot();
  std::vector<uint64_t> tasks;
  EXPECT_FALSE(read_task_list(memory, kBase, kNodeOffset, 100'000, tasks));
  EXPECT_LT(memory.calls(), 10u);
}

TEST(TaskList, LongListStopsAtTheBound) {
  process::SnapshotMemory memory = circle(20).snapshot();
  std::vector<uint64_t> tasks;
  EXPECT_FALSE(read_task_list(memory, kBase, kNodeOffset, 5, tasks));
  EXPECT_EQ(tasks.size(), 5u);
}

}  // namespace
}  // namespace spyglass::cpython
