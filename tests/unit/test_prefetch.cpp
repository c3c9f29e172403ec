// PrefetchingMemory: what one walk read is fetched in one batch for the next, and served in
// place (view) or copied (read); what it does not hold falls through to the process.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "process/memory.h"
#include "process/prefetch.h"

namespace {

using spyglass::process::CallCountingMemory;
using spyglass::process::PrefetchingMemory;
using spyglass::process::RemoteAddr;
using spyglass::process::SnapshotMemory;

std::vector<uint8_t> counting_bytes(size_t size, uint8_t first) {
  std::vector<uint8_t> bytes(size);
  std::iota(bytes.begin(), bytes.end(), first);
  return bytes;
}

constexpr RemoteAddr kFrames = 0x10000;
constexpr RemoteAddr kCode = 0x900000;  // far from kFrames: a block of its own

class PrefetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    snapshot_.add_region(kFrames, counting_bytes(256, 0));
    snapshot_.add_region(kCode, counting_bytes(256, 100));
  }
  // One "walk": alternates between the two regions, as a walker alternates between a frame
  // and its code object.
  void walk(PrefetchingMemory& prefetch) {
    prefetch.begin_walk();
    for (RemoteAddr i = 0; i < 4; ++i) {
      uint8_t frame[16], code[8];
      ASSERT_TRUE(prefetch.read(kFrames + i * 32, frame, sizeof frame));
      EXPECT_EQ(frame[0], i * 32);
      const uint8_t* held = prefetch.view(kCode + i * 16, sizeof code);
      if (held == nullptr) {
        ASSERT_TRUE(prefetch.read(kCode + i * 16, code, sizeof code));
        held = code;
      }
      EXPECT_EQ(held[0], 100 + i * 16);
    }
    prefetch.end_walk();
  }
  SnapshotMemory snapshot_;
  CallCountingMemory counting_{snapshot_};
};

TEST_F(PrefetchTest, SecondWalkIsOneBatchServedInPlace) {
  PrefetchingMemory prefetch(counting_);
  walk(prefetch);
  uint64_t first_walk_calls = counting_.calls();
  EXPECT_EQ(first_walk_calls, 8u);  // nothing held yet: every read goes to the process
  walk(prefetch);
  EXPECT_EQ(counting_.calls() - first_walk_calls, 1u);  // one batch, every read a hit
  EXPECT_EQ(prefetch.hits(), 8u);
  EXPECT_GE(prefetch.read_seconds(), 0.0);
}

TEST_F(PrefetchTest, ViewIsNullOutsideAWalkOrThePrefetch) {
  PrefetchingMemory prefetch(counting_);
  EXPECT_EQ(prefetch.view(kFrames, 8), nullptr);  // outside a walk
  walk(prefetch);
  prefetch.begin_walk();
  EXPECT_NE(prefetch.view(kFrames, 8), nullptr);
  EXPECT_EQ(prefetch.view(kFrames + 200, 8), nullptr);       // not read by the last walk
  EXPECT_EQ(prefetch.view(kFrames + 96, 64), nullptr);       // runs past what is held
  EXPECT_EQ(prefetch.view(~RemoteAddr{0} - 4, 8), nullptr);  // wraps around
  prefetch.end_walk();
}

TEST_F(PrefetchTest, RefreshSeesTheProcessAsItIsNow) {
  PrefetchingMemory prefetch(counting_);
  walk(prefetch);
  prefetch.begin_walk();
  const uint8_t* before = prefetch.view(kCode, 8);
  ASSERT_NE(before, nullptr);
  EXPECT_EQ(before[0], 100);
  snapshot_.add_region(kCode, std::vector<uint8_t>(256, 7));  // the target wrote there
  prefetch.refresh();
  const uint8_t* after = prefetch.view(kCode, 8);
  ASSERT_NE(after, nullptr);
  EXPECT_EQ(after[0], 7);
  prefetch.end_walk();
}

}  // namespace
