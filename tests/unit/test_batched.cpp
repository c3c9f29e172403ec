// BatchedMemory (process/batched.h): what one pass read is fetched again in one batch at the
// start of the next, merged where gaps are small; a miss reads the process; reads outside a
// pass go straight through.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "process/batched.h"
#include "process/memory.h"
#include "process/prefetch.h"

namespace spyglass::process {
namespace {

constexpr RemoteAddr kBase = 0x7f0000000000;

SnapshotMemory heap(size_t size) {
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i * 7);
  SnapshotMemory memory;
  memory.add_region(kBase, std::move(bytes));
  return memory;
}

// A thousand objects of 64 bytes, 256 bytes apart, each read field by field.
void read_objects(BatchedMemory& batch, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    uint64_t a = 0, b = 0;
    ASSERT_TRUE(batch.read_value(kBase + 256 * i + 8, a));
    ASSERT_TRUE(batch.read_value(kBase + 256 * i + 16, b));
    ASSERT_NE(batch.view(kBase + 256 * i, 64), nullptr);
  }
}

TEST(BatchedMemory, SecondPassIsOneBatchOfMergedRanges) {
  SnapshotMemory snapshot = heap(1 << 20);
  CallCountingMemory counting(snapshot);
  BatchedMemory batch(counting, 4095);
  batch.begin();
  read_objects(batch, 1000);
  batch.end();
  EXPECT_EQ(batch.misses(), 3000u);  // the first pass has no plan
  const uint64_t calls = counting.calls();
  const uint64_t misses = batch.misses();
  batch.begin();
  read_objects(batch, 1000);
  batch.end();
  EXPECT_EQ(batch.misses(), misses);  // every read held by the batch
  EXPECT_EQ(counting.calls() - calls, 1u);
  EXPECT_EQ(batch.planned_blocks(), 1u);  // gaps of 192 bytes merged into one range
}

TEST(BatchedMemory, FarApartRangesAreNotMerged) {
  SnapshotMemory snapshot = heap(1 << 22);
  BatchedMemory batch(snapshot, 4095);
  batch.begin();
  for (size_t i = 0; i < 10; ++i) {
    uint64_t value = 0;
    ASSERT_TRUE(batch.read_value(kBase + 65536 * i, value));
  }
  batch.end();
  batch.begin();
  EXPECT_EQ(batch.planned_blocks(), 10u);
  batch.end();
}

TEST(BatchedMemory, BytesMatchTheProcessAndUnreadableRangesAreDropped) {
  SnapshotMemory snapshot = heap(8192);
  BatchedMemory batch(snapshot, 4095);
  for (int pass = 0; pass < 3; ++pass) {
    batch.begin();
    uint64_t value = 0, expected = 0;
    ASSERT_TRUE(batch.read_value(kBase + 40, value));
    ASSERT_TRUE(snapshot.read_value(kBase + 40, expected));
    EXPECT_EQ(value, expected);
    EXPECT_FALSE(batch.read_value(kBase + 8192, value));  // past the heap: never held
    batch.end();
  }
  EXPECT_EQ(batch.planned_blocks(), 1u);
}

TEST(BatchedMemory, OutsideAPassReadsGoToTheProcess) {
  SnapshotMemory snapshot = heap(4096);
  CallCountingMemory counting(snapshot);
  BatchedMemory batch(counting, 4095);
  batch.begin();
  uint64_t value = 0;
  ASSERT_TRUE(batch.read_value(kBase + 8, value));
  batch.end();
  const uint64_t calls = counting.calls();
  EXPECT_EQ(batch.view(kBase + 8, 8), nullptr);
  ASSERT_TRUE(batch.read_value(kBase + 8, value));
  EXPECT_EQ(counting.calls() - calls, 1u);
}

// The tasks' batch fetched with the walk's prefetch (cpython/target.cpp): one system call for
// both plans, and the tasks' pass then reads from it without a call of its own.
TEST(BatchedMemory, FetchedWithThePrefetchInOneCall) {
  SnapshotMemory snapshot = heap(1 << 20);
  CallCountingMemory counting(snapshot);
  PrefetchingMemory prefetch(counting);
  BatchedMemory batch(counting, 4095);
  auto one_sample = [&] {
    prefetch.begin_walk(&batch);
    uint64_t value = 0;
    ASSERT_TRUE(prefetch.read_value(kBase + 512 * 1024, value));  // the walk's
    batch.begin();
    read_objects(batch, 100);  // the tasks'
    batch.end();
    prefetch.end_walk();
  };
  one_sample();
  one_sample();
  const uint64_t calls = counting.calls();
  const uint64_t misses = batch.misses();
  one_sample();
  EXPECT_EQ(counting.calls() - calls, 1u);
  EXPECT_EQ(batch.misses(), misses);
  EXPECT_EQ(prefetch.misses(), 1u);  // the first walk's only read
}

// A range unmapped since the last pass does not cost the rest of the joint batch.
TEST(BatchedMemory, AnUnreadableRangeInTheJointBatchIsSkipped) {
  SnapshotMemory snapshot = heap(1 << 16);
  PrefetchingMemory prefetch(snapshot);
  BatchedMemory batch(snapshot, 0);
  uint64_t value = 0;
  prefetch.begin_walk(&batch);
  batch.begin();
  ASSERT_TRUE(batch.read_value(kBase + 8, value));
  EXPECT_FALSE(batch.read_value(kBase + (1 << 20), value));  // never mapped: not planned
  ASSERT_TRUE(batch.read_value(kBase + 4096, value));
  batch.end();
  prefetch.end_walk();
  snapshot = heap(1 << 10);  // the second page is gone now
  prefetch.begin_walk(&batch);
  batch.begin();
  const uint64_t misses = batch.misses();
  EXPECT_TRUE(batch.read_value(kBase + 8, value));  // still held
  EXPECT_EQ(batch.misses(), misses);
  EXPECT_FALSE(batch.read_value(kBase + 4096, value));
  batch.end();
  prefetch.end_walk();
}

}  // namespace
}  // namespace spyglass::process
