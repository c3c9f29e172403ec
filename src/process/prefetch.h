// A memory reader that remembers what the previous stack walk read and fetches all of it again
// in one batched system call at the start of the next walk. A walk's reads are mostly the same
// each time (thread states, frames, code object headers), so a steady-state sample costs one
// process_vm_readv instead of one per pointer followed; reads the prefetch did not cover (the
// stack changed) go to the live process a page at a time (fetch_page). All bytes of one
// prefetch come from one instant, which also makes a sample more consistent than reads spread
// over time.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "process/batched.h"
#include "process/memory.h"

namespace spyglass::process {

class PrefetchingMemory : public MemoryReader {
 public:
  explicit PrefetchingMemory(MemoryReader& inner) : inner_(inner) {}
  // Fetches, in one batch, the ranges the previous walk read; and `joined`'s plan in the same
  // system call (asyncio's tasks, read in the same sample: one call fewer a sample, and one
  // instant for both).
  void begin_walk(BatchedMemory* joined = nullptr);
  // The ranges read since begin_walk() become the next prefetch.
  void end_walk();
  bool read(RemoteAddr addr, void* out, size_t size) override;
  // Bytes of the current prefetch, in place (recorded for the next plan like a read).
  const uint8_t* view(RemoteAddr addr, size_t size) override;
  // Fetches again, in one batch, everything this walk has read so far (pages read on a miss
  // included): a re-read after a torn walk sees one instant.
  void refresh() override;
  // From the process, not from the prefetch (and not recorded for the next one).
  bool read_now(RemoteAddr addr, void* out, size_t size) override;
  // The bytes as the prefetch copied them after all its other ranges (the batch's last ones,
  // copied in order by process_vm_readv), when the last walk read them this way too; else from
  // the process now. Recorded for the next prefetch's tail. 3.8-3.10's walk reads the GIL
  // holder's current frame this way, after its frames (see StackWalker::walk_thread_frames):
  // a system call of its own every sample before.
  bool read_last(RemoteAddr addr, void* out, size_t size) override;
  // Held when the walk before asked for the same range (then fetched with this walk's batch,
  // before the tail); asked for again for the next batch either way.
  bool read_polled(RemoteAddr addr, void* out, size_t size) override;
  uint64_t calls() const override { return inner_.calls(); }
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }
  // Ranges the next prefetch fetches.
  size_t planned_blocks() const { return plan_.size(); }
  // read_last()s served from the prefetch's tail.
  uint64_t last_hits() const { return last_hits_; }
  // Misses served by a page fetched whole for an earlier miss of the same walk.
  uint64_t page_hits() const { return page_hits_; }
  // Every read of a walk, however it was served.
  uint64_t reads() const { return hits_ + page_hits_ + misses_; }
  // Seconds spent reading the process (the batched prefetch and reads it missed): the part of
  // a walk that is system calls, the floor of its cost.
  double read_seconds() const { return read_seconds_; }

  // Limits: a read larger than this is never prefetched (strings and line tables read once on
  // a code-cache miss are not worth repeating); ranges closer than kMergeGap are merged, since
  // each range of a batch costs ~0.45 µs, as much as copying a few KiB (bench/micro/readv_bench).
  static constexpr size_t kMaxRecordedRead = 4096;
  static constexpr size_t kMergeGap = 4096;
  static constexpr size_t kMaxBlocks = 512;
  static constexpr size_t kMaxBytes = 1 << 20;
  // Pages fetched whole on a miss, per walk (see fetch_page).
  static constexpr size_t kMaxMissPages = 64;
  // The plan covers what the last few distinct walks read, not only the last one: a program that
  // alternates between a shallow and a deep stack finds the other one in the prefetch too.
  static constexpr size_t kPlanWalks = 4;
  // ... as long as the plan stays within this many blocks (the newest walk is always whole),
  // and each of them was seen within the last kPlanAgeWalks walks.
  static constexpr size_t kPlanBlocks = 64;
  static constexpr uint64_t kPlanAgeWalks = 256;
  // Batches that fail on a range go on past it, this many times in all (a joined batch: as
  // many as BatchedMemory allows).
  static constexpr int kMaxBatches = 4;
  // read_last()s of one walk planned for the next prefetch's tail.
  static constexpr size_t kMaxLastReads = 8;
  // read_polled()s of one walk fetched with the next batch.
  static constexpr size_t kMaxPolledReads = 16;

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
  // A page-aligned window read whole on a miss, held until the next walk or refresh.
  struct Page {
    RemoteAddr addr = 0;
    size_t size = 0;
    std::vector<uint8_t> bytes;
  };
  const Block* find_block(RemoteAddr addr, size_t size) const;
  // Adds `range` to `list` once, while the list holds fewer than `max`.
  static void note_once(std::vector<Range>& list, const Range& range, size_t max);
  // The block of `blocks` that is exactly [addr, addr + size), copied out of `buffer`.
  static bool copy_exact(const std::vector<Block>& blocks, const std::vector<uint8_t>& buffer,
                         RemoteAddr addr, void* out, size_t size);
  const uint8_t* find_page(RemoteAddr addr, size_t size) const;
  const uint8_t* fetch_page(RemoteAddr addr, size_t size);
  // Notes a read of this walk for the next plan (small reads only, a bounded number).
  void record(RemoteAddr addr, size_t size);
  void fetch_plan(BatchedMemory* joined = nullptr);
  // A request per range, into `buffer` (sized to hold them all), appended to requests_; the
  // block each fills into `blocks`.
  void add_requests(const std::vector<Range>& ranges, std::vector<uint8_t>& buffer,
                    std::vector<Block>& blocks);
  void drop_pages();
  // Sorts and merges ranges into plan_ (bounded by kMaxBlocks and kMaxBytes).
  void make_plan(std::vector<Range> ranges);
  // `ranges` sorted by address (in place), and into `out` with those closer than kMergeGap
  // merged (no bound).
  static void sort_and_merge(std::vector<Range>& ranges, std::vector<Range>& out);
  // Appends `r` (at or past the start of out's last range) to a merged list.
  static void append_merged(std::vector<Range>& out, const Range& r);
  // Two merged lists as one, in one pass, into `out`.
  static void merge_into(const std::vector<Range>& a, const std::vector<Range>& b,
                         std::vector<Range>& out);
  // plan_ from a merged list, bounded by kMaxBlocks and kMaxBytes.
  void plan_from(const std::vector<Range>& merged);

  MemoryReader& inner_;
  std::vector<Range> recorded_;  // this walk's reads
  // read_last()'s: this walk's (the next prefetch's tail), and what the last prefetch's tail
  // planned and holds (bytes in last_buffer_; the ranges read whole only).
  std::vector<Range> last_recorded_, last_plan_;
  std::vector<Block> planned_last_, last_blocks_;
  std::vector<uint8_t> last_buffer_;
  // read_polled()'s: this walk's (fetched with the next batch), and what this batch fetched.
  std::vector<Range> polled_next_, polled_plan_;
  std::vector<Block> planned_polled_, polled_blocks_;
  std::vector<uint8_t> polled_buffer_;
  // The last distinct walks, newest first: each one's reads, and the same merged (sorting each
  // walk once: sorting the union of four walks' hundreds of reads every sample, to widen the
  // plan, took a fifth of the sampler's time).
  struct Walk {
    std::vector<Range> reads;
    std::vector<Range> merged;
    uint64_t last_seen = 0;  // walks_ when it was last read
  };
  // plan_ from history_ (not empty).
  void plan_history();
  std::vector<Walk> history_;
  // plan_history's and make_plan's scratch lists.
  std::vector<Range> ranges_, wider_, narrower_;
  std::vector<Range> plan_;            // what to prefetch next
  std::vector<Block> blocks_;          // what the last prefetch holds, sorted by address
  std::vector<Block> planned_blocks_;  // fetch_plan's scratch: every block of the plan
  std::vector<ReadRequest> requests_;  // fetch_plan's scratch: the batch
  std::vector<uint8_t> read_;          // fetch_plan's scratch: which requests were read
  std::vector<uint8_t> buffer_;
  // unique_ptr: a view into a page stays valid while more pages are added. The first
  // pages_used_ are this walk's; the rest keep their buffers for the next walk.
  std::vector<std::unique_ptr<Page>> pages_;
  size_t pages_used_ = 0;
  static constexpr RemoteAddr kNoPage = 1;  // never page-aligned
  RemoteAddr failed_page_ = kNoPage;
  // The blocks the last two searches found (indexes into blocks_).
  mutable std::array<size_t, 2> recent_{};
  bool in_walk_ = false;
  uint64_t walks_ = 0;  // end_walk() calls
  uint64_t hits_ = 0, misses_ = 0, page_hits_ = 0, last_hits_ = 0;
  double read_seconds_ = 0;
};

}  // namespace spyglass::process
