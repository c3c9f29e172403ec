// A reader for many small objects scattered over the heap, read again every sample: asyncio
// tasks and their coroutines (cpython/tasks.cpp). What the last pass read becomes the next
// pass's plan, fetched at begin() in one batched read: the ranges sorted and merged wherever
// the gap between two is under a page, so a thousand tasks packed in allocator pools cost a
// few large copies instead of thousands of ranges (a range costs ~0.6 µs in a batch, as much as
// copying several KiB; and a gap under a page only touches pages one of its neighbours is on,
// so merging never makes a readable range unreadable). Unlike PrefetchingMemory it has no
// block or history limits (every task of a server is read every sample) and records one range
// per object read through view(), not one per field.
#pragma once

#include <cstdint>
#include <vector>

#include "process/memory.h"

namespace spyglass::process {

class BatchedMemory : public MemoryReader {
 public:
  // `max_gap`: ranges closer than this are read as one (default: under the inner page size).
  explicit BatchedMemory(MemoryReader& inner, size_t max_gap = ~size_t{0});
  // Fetches the plan (what the last pass read) in one batch; or, after fetched(), uses what
  // that fetched.
  void begin();
  // For a caller that fetches this plan with other readers' in one system call (the walk's
  // prefetch, see PrefetchingMemory::begin_walk): appends the plan's requests to `out`, into
  // this batch's buffer. fetched() then says which were read, and the next begin() holds them.
  void plan_into(std::vector<ReadRequest>& out);
  void fetched(std::span<const uint8_t> read);
  // This pass's reads become the next plan (sorted again only when they differ).
  void end();
  bool read(RemoteAddr addr, void* out, size_t size) override;
  // Bytes held by the batch, else read from the process now into a buffer kept until begin().
  const uint8_t* view(RemoteAddr addr, size_t size) override;
  uint64_t calls() const override { return inner_.calls(); }
  size_t page_size() const override { return inner_.page_size(); }
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }
  size_t planned_blocks() const { return blocks_.size(); }

  static constexpr size_t kMaxRead = 1 << 16;        // larger reads are neither held nor planned
  static constexpr size_t kMaxPlanBytes = 16 << 20;  // what one batch may copy
  static constexpr size_t kMaxRanges = 1 << 20;      // ranges recorded per pass
  // Batches that fail on a range go on past it, this many times in all.
  static constexpr int kMaxBatches = 8;

 private:
  struct Range {
    RemoteAddr addr;
    size_t size;
    bool operator==(const Range&) const = default;
  };
  struct Block {
    RemoteAddr addr;
    size_t offset;  // into buffer_
    size_t size;
  };
  const Block* find(RemoteAddr addr, size_t size) const;
  void record(RemoteAddr addr, size_t size);
  void make_plan();
  // requests_ and planned_ from plan_, into buffer_.
  void prepare_requests();
  // blocks_: the planned blocks that `read` says were read.
  void hold(std::span<const uint8_t> read);

  MemoryReader& inner_;
  size_t max_gap_;
  bool in_pass_ = false;
  std::vector<Range> recorded_, last_recorded_;
  std::vector<Range> plan_;
  std::vector<Block> blocks_;  // what buffer_ holds, sorted by address, disjoint
  std::vector<uint8_t> buffer_;
  std::vector<ReadRequest> requests_;
  std::vector<Block> planned_;                // a block per request
  std::vector<uint8_t> read_;                 // which requests were read
  bool joined_ = false;                       // fetched() holds this pass's batch already
  std::vector<std::vector<uint8_t>> missed_;  // bytes read on a miss, this pass
  size_t missed_used_ = 0;
  mutable size_t recent_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace spyglass::process
