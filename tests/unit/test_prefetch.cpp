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

// A snapshot whose regions are whole pages, read like a live process: readable by the page.
class PagedSnapshot : public SnapshotMemory {
 public:
  size_t page_size() const override { return 4096; }
};

TEST(PrefetchPages, AMissReadsItsPageWholeForTheRestOfTheWalk) {
  constexpr RemoteAddr kStack = 0x20000;  // two pages of "frames"
  PagedSnapshot snapshot;
  snapshot.add_region(kStack, counting_bytes(2 * 4096, 0));
  CallCountingMemory counting(snapshot);
  PrefetchingMemory prefetch(counting);
  prefetch.begin_walk();
  // A fresh stack, walked from its newest frame down: one call per page, not per frame.
  for (RemoteAddr addr = kStack + 2 * 4096 - 128; addr >= kStack; addr -= 128) {
    const uint8_t* held = prefetch.view(addr, 64);
    ASSERT_NE(held, nullptr);
    EXPECT_EQ(held[0], static_cast<uint8_t>(addr - kStack));
  }
  EXPECT_EQ(counting.calls(), 2u);
  EXPECT_EQ(prefetch.misses(), 2u);
  EXPECT_EQ(prefetch.page_hits(), 62u);
  EXPECT_EQ(prefetch.reads(), 64u);  // a page hit is a read too (status's prefetched share)
  prefetch.end_walk();
  // The next walk reads what this one read in one batch; the pages are gone.
  prefetch.begin_walk();
  EXPECT_EQ(counting.calls(), 3u);
  EXPECT_NE(prefetch.view(kStack, 64), nullptr);
  EXPECT_EQ(prefetch.page_hits(), 62u);
  prefetch.end_walk();
}

// A page read whole on a miss is planned whole: 3.8-3.10's frames come from free lists, and
// the next walk's (other frames, on the same pages) are in the batch instead of missing it.
TEST(PrefetchPages, AMissedPageIsPlannedWhole) {
  constexpr RemoteAddr kFramesPage = 0x30000;
  PagedSnapshot snapshot;
  snapshot.add_region(kFramesPage, counting_bytes(4096, 0));
  CallCountingMemory counting(snapshot);
  PrefetchingMemory prefetch(counting);
  prefetch.begin_walk();
  ASSERT_NE(prefetch.view(kFramesPage + 64, 64), nullptr);  // a miss: the page, one call
  prefetch.end_walk();
  prefetch.begin_walk();                                         // one batch
  const uint8_t* other = prefetch.view(kFramesPage + 3000, 64);  // a frame the last walk lacked
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other[0], static_cast<uint8_t>(3000));
  EXPECT_EQ(counting.calls(), 2u);
  EXPECT_EQ(prefetch.misses(), 1u);
  prefetch.end_walk();
}

TEST(PrefetchPages, AnUnreadablePageFallsBackToTheExactRange) {
  PagedSnapshot snapshot;
  snapshot.add_region(0x30010, counting_bytes(64, 0));  // not the whole page
  CallCountingMemory counting(snapshot);
  PrefetchingMemory prefetch(counting);
  prefetch.begin_walk();
  uint8_t out[16];
  ASSERT_TRUE(prefetch.read(0x30010, out, sizeof out));  // the page failed, the range did not
  EXPECT_EQ(out[0], 0);
  ASSERT_TRUE(prefetch.read(0x30020, out, sizeof out));  // the failed page is not tried again
  EXPECT_EQ(out[0], 16);
  EXPECT_EQ(counting.calls(), 3u);
  EXPECT_FALSE(prefetch.read(0x40000, out, sizeof out));
  prefetch.end_walk();
}

// One walk of `frames` 16-byte frames laid one after another from `base`.
void walk_frames(PrefetchingMemory& prefetch, RemoteAddr base, size_t frames) {
  prefetch.begin_walk();
  for (size_t i = 0; i < frames; ++i) {
    uint8_t frame[16];
    ASSERT_TRUE(prefetch.read(base + i * 16, frame, sizeof frame));
  }
  prefetch.end_walk();
}

// A program that alternates between a shallow and a deep stack: each walk finds the other
// stack's frames in its one batch too, so neither is read over several instants (a deep stack
// read a page at a time was torn more often, and its re-read landed in the shallow one).
TEST(PrefetchPlan, AlternatingStacksAreBothInTheOneBatch) {
  constexpr RemoteAddr kShallow = 0x50000;
  constexpr RemoteAddr kDeep = 0x900000;
  SnapshotMemory snapshot;
  snapshot.add_region(kShallow, counting_bytes(64, 0));
  snapshot.add_region(kDeep, counting_bytes(256, 0));
  CallCountingMemory counting(snapshot);
  PrefetchingMemory prefetch(counting);
  auto walk = [&](RemoteAddr base, size_t frames) { walk_frames(prefetch, base, frames); };
  walk(kShallow, 2);
  walk(kDeep, 8);
  const uint64_t calls = counting.calls();
  const uint64_t misses = prefetch.misses();
  for (int i = 0; i < 3; ++i) {
    walk(kShallow, 2);
    walk(kDeep, 8);
  }
  EXPECT_EQ(counting.calls() - calls, 6u);  // one batch per walk
  EXPECT_EQ(prefetch.misses(), misses);
}

// A stack read once (a program's start-up, names read on a code-cache miss) leaves the plan
// once the program has settled in another: kept, it made every later batch longer for good.
TEST(PrefetchPlan, AWalkNotSeenForAWhileLeavesThePlan) {
  constexpr RemoteAddr kStartUp = 0x50000;
  constexpr RemoteAddr kSettled = 0x900000;
  SnapshotMemory snapshot;
  snapshot.add_region(kStartUp, counting_bytes(64, 0));
  snapshot.add_region(kSettled, counting_bytes(64, 0));
  CallCountingMemory counting(snapshot);
  PrefetchingMemory prefetch(counting);
  auto walk = [&](RemoteAddr base) { walk_frames(prefetch, base, 1); };
  walk(kStartUp);
  walk(kSettled);
  EXPECT_EQ(prefetch.planned_blocks(), 2u);
  for (uint64_t i = 1; i < PrefetchingMemory::kPlanAgeWalks; ++i) walk(kSettled);
  EXPECT_EQ(prefetch.planned_blocks(), 2u);  // seen within the age: still planned
  walk(kSettled);
  EXPECT_EQ(prefetch.planned_blocks(), 1u);
  const uint64_t calls = counting.calls();
  walk(kSettled);
  EXPECT_EQ(counting.calls() - calls, 1u);  // still one batch, every read a hit
  EXPECT_EQ(prefetch.misses(), 2u);         // the two first walks' only
}

// A re-read after a torn walk fetches, in one batch, what the walk had read a page at a time.
TEST(PrefetchPlan, RefreshFetchesThePagesOfTheWalkInOneBatch) {
  constexpr RemoteAddr kStack = 0x20000;
  PagedSnapshot snapshot;
  snapshot.add_region(kStack, counting_bytes(2 * 4096, 0));
  CallCountingMemory counting(snapshot);
  PrefetchingMemory prefetch(counting);
  prefetch.begin_walk();
  ASSERT_NE(prefetch.view(kStack + 4096 + 64, 64), nullptr);
  ASSERT_NE(prefetch.view(kStack + 64, 64), nullptr);
  EXPECT_EQ(counting.calls(), 2u);                                 // two pages, two instants
  snapshot.add_region(kStack, std::vector<uint8_t>(2 * 4096, 9));  // the stack changed
  prefetch.refresh();
  EXPECT_EQ(counting.calls(), 3u);
  const uint8_t* low = prefetch.view(kStack + 64, 64);
  const uint8_t* high = prefetch.view(kStack + 4096 + 64, 64);
  ASSERT_NE(low, nullptr);
  ASSERT_NE(high, nullptr);
  EXPECT_EQ(low[0], 9);
  EXPECT_EQ(high[0], 9);
  EXPECT_EQ(counting.calls(), 3u);  // both served from the one batch
  prefetch.end_walk();
}

// Records the order of the ranges of each batch (process_vm_readv copies them in that order).
class OrderRecordingMemory : public spyglass::process::MemoryReader {
 public:
  explicit OrderRecordingMemory(MemoryReader& inner) : inner_(inner) {}
  bool read(RemoteAddr addr, void* out, size_t size) override {
    ++calls_;
    return inner_.read(addr, out, size);
  }
  size_t read_batch(std::span<const spyglass::process::ReadRequest> requests) override {
    ++calls_;
    last_batch.clear();
    for (const auto& r : requests) last_batch.push_back(r.addr);
    return inner_.read_batch(requests);
  }
  uint64_t calls() const override { return calls_; }
  std::vector<RemoteAddr> last_batch;

 private:
  MemoryReader& inner_;
  uint64_t calls_ = 0;
};

// 3.8-3.10's walk reads the GIL holder's current frame after its frames: from the second walk
// on, that read is the prefetch's last range (copied after the frames, in the same call), not
// a system call of its own.
TEST(PrefetchLast, ReadLastIsTheBatchsLastRangeFromTheSecondWalk) {
  constexpr RemoteAddr kThreadState = 0x1000;  // below the frames, as a thread state often is
  SnapshotMemory snapshot;
  snapshot.add_region(kThreadState, counting_bytes(64, 50));
  snapshot.add_region(kFrames, counting_bytes(256, 0));
  OrderRecordingMemory recording(snapshot);
  PrefetchingMemory prefetch(recording);
  auto walk = [&] {
    prefetch.begin_walk();
    uint8_t word[8], frame[16];
    EXPECT_TRUE(prefetch.read(kThreadState, word, sizeof word));
    EXPECT_TRUE(prefetch.read(kFrames, frame, sizeof frame));
    EXPECT_TRUE(prefetch.read_last(kThreadState + 8, word, sizeof word));
    EXPECT_EQ(word[0], 58);
    prefetch.end_walk();
  };
  walk();
  EXPECT_EQ(recording.calls(), 3u);  // nothing held: each read a call, the last one too
  EXPECT_EQ(prefetch.last_hits(), 0u);
  walk();
  EXPECT_EQ(recording.calls(), 4u);  // one batch for all three
  EXPECT_EQ(prefetch.last_hits(), 1u);
  ASSERT_EQ(recording.last_batch.size(), 3u);  // the plan in address order, then the tail
  EXPECT_EQ(recording.last_batch[0], kThreadState);
  EXPECT_EQ(recording.last_batch[1], kFrames);
  EXPECT_EQ(recording.last_batch[2], kThreadState + 8);
  // The tail holds what the process holds at the batch, after the frames were copied.
  snapshot.add_region(kThreadState, counting_bytes(64, 60));
  prefetch.begin_walk();
  uint8_t word[8];
  EXPECT_TRUE(prefetch.read_last(kThreadState + 8, word, sizeof word));
  EXPECT_EQ(word[0], 68);
  // Another range than the last walk's: from the process, and the next tail.
  EXPECT_TRUE(prefetch.read_last(kThreadState + 16, word, sizeof word));
  EXPECT_EQ(word[0], 76);
  EXPECT_EQ(recording.calls(), 6u);
  prefetch.end_walk();
}

// A poll (read_polled): held when the walk before asked for it, fetched with the next batch
// only, never a system call of its own and never part of the plan of the walks after.
TEST(PrefetchPolled, APollIsHeldTheWalkAfterAndLeavesTheBatchWhenNoLongerAsked) {
  constexpr RemoteAddr kModules = 0x700000;  // a dict far from the frames: a range of its own
  SnapshotMemory snapshot;
  snapshot.add_region(kFrames, counting_bytes(256, 0));
  snapshot.add_region(kModules, counting_bytes(64, 30));
  OrderRecordingMemory recording(snapshot);
  PrefetchingMemory prefetch(recording);
  auto walk = [&](bool poll, bool expect_held) {
    prefetch.begin_walk();
    uint8_t frame[16], used[8] = {};
    EXPECT_TRUE(prefetch.read(kFrames, frame, sizeof frame));
    if (poll) {
      EXPECT_EQ(prefetch.read_polled(kModules + 8, used, sizeof used), expect_held);
      if (expect_held) {
        EXPECT_EQ(used[0], 38);
      }
    }
    prefetch.end_walk();
  };
  walk(true, false);  // nothing held: the frames read, the poll asked for the next batch
  EXPECT_EQ(recording.calls(), 1u);
  walk(true, true);  // one batch: the frames and the poll
  EXPECT_EQ(recording.calls(), 2u);
  ASSERT_EQ(recording.last_batch.size(), 2u);
  EXPECT_EQ(recording.last_batch[1], kModules + 8);
  walk(false, false);  // asked for in the walk before: still fetched, though not asked now
  EXPECT_EQ(recording.last_batch.size(), 2u);
  walk(false, false);  // no longer in the batch
  EXPECT_EQ(recording.calls(), 4u);
  ASSERT_EQ(recording.last_batch.size(), 1u);
  EXPECT_EQ(recording.last_batch[0], kFrames);
  // Outside a walk a poll reads the process at once.
  uint8_t used[8] = {};
  EXPECT_TRUE(prefetch.read_polled(kModules, used, sizeof used));
  EXPECT_EQ(used[0], 30);
}

}  // namespace
