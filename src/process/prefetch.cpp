#include "process/prefetch.h"

#include <algorithm>
#include <cstring>

#include "common/clock.h"

namespace spyglass::process {

void PrefetchingMemory::begin_walk(BatchedMemory* joined) {
  in_walk_ = true;
  recorded_.clear();
  last_plan_.swap(last_recorded_);
  last_recorded_.clear();
  polled_plan_.swap(polled_next_);
  polled_next_.clear();
  fetch_plan(joined);
}

void PrefetchingMemory::refresh() {
  if (!in_walk_) return;
  // The pages read on a miss were read at other instants than the prefetch: a walk torn by the
  // stack changing under it would be torn again if only the old plan were fetched once more.
  // Only this walk's reads: the plan's other stacks would make the batch, and so the instant
  // it stands for, longer.
  std::vector<Range> ranges = recorded_;
  for (size_t i = 0; i < pages_used_; ++i)
    ranges.push_back(Range{pages_[i]->addr, pages_[i]->size});
  make_plan(std::move(ranges));
  for (const Range& r : last_recorded_) {  // the tail: this walk's read_last()s too
    if (std::find(last_plan_.begin(), last_plan_.end(), r) == last_plan_.end())
      last_plan_.push_back(r);
  }
  fetch_plan();
}

void PrefetchingMemory::note_once(std::vector<Range>& list, const Range& range, size_t max) {
  if (list.size() < max && std::find(list.begin(), list.end(), range) == list.end()) {
    list.push_back(range);
  }
}

bool PrefetchingMemory::copy_exact(const std::vector<Block>& blocks,
                                   const std::vector<uint8_t>& buffer, RemoteAddr addr, void* out,
                                   size_t size) {
  for (const Block& b : blocks) {
    if (b.addr == addr && b.size == size) {
      std::memcpy(out, buffer.data() + b.offset, size);
      return true;
    }
  }
  return false;
}

bool PrefetchingMemory::read_last(RemoteAddr addr, void* out, size_t size) {
  if (!in_walk_) return read_now(addr, out, size);
  note_once(last_recorded_, Range{addr, size}, kMaxLastReads);
  if (copy_exact(last_blocks_, last_buffer_, addr, out, size)) {
    ++last_hits_;
    return true;
  }
  return read_now(addr, out, size);
}

bool PrefetchingMemory::read_polled(RemoteAddr addr, void* out, size_t size) {
  if (!in_walk_) return read_now(addr, out, size);
  note_once(polled_next_, Range{addr, size}, kMaxPolledReads);
  return copy_exact(polled_blocks_, polled_buffer_, addr, out, size);
}

bool PrefetchingMemory::read_now(RemoteAddr addr, void* out, size_t size) {
  const double started = monotonic_seconds();
  const bool ok = inner_.read(addr, out, size);
  read_seconds_ += monotonic_seconds() - started;
  return ok;
}

void PrefetchingMemory::drop_pages() {
  pages_used_ = 0;
  failed_page_ = kNoPage;
}

void PrefetchingMemory::add_requests(const std::vector<Range>& ranges, std::vector<uint8_t>& buffer,
                                     std::vector<Block>& blocks) {
  size_t total = 0;
  for (const auto& r : ranges) total += r.size;
  buffer.resize(total);
  blocks.clear();
  size_t offset = 0;
  for (const auto& r : ranges) {
    requests_.push_back(ReadRequest{r.addr, buffer.data() + offset, r.size});
    blocks.push_back(Block{r.addr, offset, r.size});
    offset += r.size;
  }
}

void PrefetchingMemory::fetch_plan(BatchedMemory* joined) {
  drop_pages();
  blocks_.clear();
  last_blocks_.clear();
  polled_blocks_.clear();
  // requests_ and the block lists keep their capacity: a steady-state sample allocates nothing.
  requests_.clear();
  add_requests(plan_, buffer_, planned_blocks_);
  const size_t own = requests_.size();
  if (joined) joined->plan_into(requests_);
  const size_t joined_end = requests_.size();
  add_requests(polled_plan_, polled_buffer_, planned_polled_);
  const size_t polled_end = requests_.size();
  // The tail: read_last()'s ranges, after everything else (a refresh() fetches them again too).
  add_requests(last_plan_, last_buffer_, planned_last_);
  if (requests_.empty()) return;
  // A range that became unreadable (memory freed) stops a batch there: the next one goes on
  // past it, a bounded number of times. Only the blocks read completely are held.
  const double started = monotonic_seconds();
  read_batch_past_failures(inner_, requests_, joined ? BatchedMemory::kMaxBatches : kMaxBatches,
                           read_);
  read_seconds_ += monotonic_seconds() - started;
  for (size_t i = 0; i < own; ++i) {
    if (read_[i]) blocks_.push_back(planned_blocks_[i]);
  }
  if (joined) joined->fetched(std::span<const uint8_t>(read_).subspan(own, joined_end - own));
  for (size_t i = 0; i < planned_polled_.size(); ++i) {
    if (read_[joined_end + i]) polled_blocks_.push_back(planned_polled_[i]);
  }
  for (size_t i = 0; i < planned_last_.size(); ++i) {
    if (read_[polled_end + i]) last_blocks_.push_back(planned_last_[i]);
  }
  recent_ = {0, 0};
}

void PrefetchingMemory::end_walk() {
  in_walk_ = false;
  ++walks_;
  // In a steady state a walk reads exactly what one of the last few read, in the same order:
  // the plan stands, and comparing is cheaper than sorting again.
  auto seen = std::find_if(history_.begin(), history_.end(),
                           [&](const Walk& w) { return w.reads == recorded_; });
  if (seen != history_.end()) {
    seen->last_seen = walks_;
    std::rotate(history_.begin(), seen, seen + 1);
    // A walk not seen again for a while leaves the plan: the stacks of a program's start-up,
    // and the names a code-cache miss read once. Kept, they stayed in the plan for good once
    // the stack settled (nothing new came to push them out): attached before bench/deep.py
    // built its stack, the plan held 75 blocks instead of 14, a walk read for 12 µs instead
    // of 3, and 60k samples/s were taken at 100 kHz asked instead of 99k.
    const auto stale = [&](const Walk& w) { return walks_ - w.last_seen > kPlanAgeWalks; };
    if (std::any_of(history_.begin(), history_.end(), stale)) {
      std::erase_if(history_, stale);
      plan_history();
    }
    return;
  }
  // The oldest walk's lists take the new one (their memory kept: a sample whose stack changed,
  // most of them on a busy program, allocates nothing here).
  if (history_.size() < kPlanWalks) history_.emplace_back();
  std::rotate(history_.begin(), history_.end() - 1, history_.end());
  Walk& walk = history_.front();
  walk.reads.assign(recorded_.begin(), recorded_.end());
  walk.last_seen = walks_;
  sort_and_merge(recorded_, walk.merged);  // the walk is over: its reads may be reordered
  plan_history();
}

void PrefetchingMemory::plan_history() {
  // The newest walk whole, then older ones while the batch stays short: each block costs
  // ~0.45 µs, and a batch of hundreds (deep stacks of scattered 3.8-3.10 frame objects) spans
  // so long that it no longer shows one instant, and every walk is torn.
  // ranges_, wider_ and narrower_ are scratch lists that keep their memory.
  ranges_.assign(history_.front().merged.begin(), history_.front().merged.end());
  plan_from(ranges_);
  for (size_t i = 1; i < history_.size(); ++i) {
    merge_into(ranges_, history_[i].merged, wider_);
    narrower_.assign(plan_.begin(), plan_.end());
    plan_from(wider_);
    if (plan_.size() > kPlanBlocks) {
      plan_.swap(narrower_);
      break;
    }
    ranges_.swap(wider_);
  }
}

void PrefetchingMemory::append_merged(std::vector<Range>& out, const Range& r) {
  if (!out.empty() && r.addr <= out.back().addr + out.back().size + kMergeGap) {
    const RemoteAddr end = std::max(out.back().addr + out.back().size, r.addr + r.size);
    out.back().size = static_cast<size_t>(end - out.back().addr);
  } else {
    out.push_back(r);
  }
}

void PrefetchingMemory::sort_and_merge(std::vector<Range>& ranges, std::vector<Range>& out) {
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.addr < b.addr; });
  out.clear();
  for (const auto& r : ranges) append_merged(out, r);
}

void PrefetchingMemory::merge_into(const std::vector<Range>& a, const std::vector<Range>& b,
                                   std::vector<Range>& out) {
  out.clear();
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    if (j == b.size() || (i < a.size() && a[i].addr <= b[j].addr)) {
      append_merged(out, a[i++]);
    } else {
      append_merged(out, b[j++]);
    }
  }
}

void PrefetchingMemory::plan_from(const std::vector<Range>& merged) {
  plan_.clear();
  size_t total = 0;
  for (const auto& r : merged) {
    if (plan_.size() >= kMaxBlocks) break;
    plan_.push_back(r);
    total += r.size;
    if (total > kMaxBytes) break;
  }
}

void PrefetchingMemory::make_plan(std::vector<Range> ranges) {
  sort_and_merge(ranges, ranges_);
  plan_from(ranges_);
}

const PrefetchingMemory::Block* PrefetchingMemory::find_block(RemoteAddr addr, size_t size) const {
  auto holds = [&](const Block& b) { return addr >= b.addr && addr + size <= b.addr + b.size; };
  // A walk alternates between two blocks (the frames' and the code objects'): try the last two
  // found before searching.
  for (size_t i : recent_) {
    if (i < blocks_.size() && holds(blocks_[i])) return &blocks_[i];
  }
  auto it = std::upper_bound(blocks_.begin(), blocks_.end(), addr,
                             [](RemoteAddr a, const Block& b) { return a < b.addr; });
  if (it == blocks_.begin()) return nullptr;
  --it;
  if (!holds(*it)) return nullptr;
  recent_[1] = recent_[0];
  recent_[0] = static_cast<size_t>(it - blocks_.begin());
  return &*it;
}

const uint8_t* PrefetchingMemory::find_page(RemoteAddr addr, size_t size) const {
  for (size_t i = pages_used_; i-- > 0;) {  // the newest first: the walk moves on from it
    const Page& p = *pages_[i];
    if (addr >= p.addr && addr + size <= p.addr + p.size) return p.bytes.data() + (addr - p.addr);
  }
  return nullptr;
}

// What a walk misses is a stack that changed since the last one. Its next frames (on 3.11+,
// just below in the same data-stack chunk) tend to sit in the page of the first miss, so that
// page is read whole: a fresh 60-deep stack takes two or three system calls instead of sixty.
// That matters for accuracy as much as for cost: a walk that takes 60 µs is likely to see the
// stack change under it, and its re-read lands later in time, on whatever the program ran next.
const uint8_t* PrefetchingMemory::fetch_page(RemoteAddr addr, size_t size) {
  const size_t page = inner_.page_size();
  if (page == 0 || size > page || pages_used_ >= kMaxMissPages) return nullptr;
  const RemoteAddr start = addr & ~(RemoteAddr{page} - 1);
  const size_t span = addr + size <= start + page ? page : 2 * page;
  if (start + span < start || start == failed_page_) return nullptr;
  if (pages_used_ == pages_.size()) pages_.push_back(std::make_unique<Page>());
  Page& p = *pages_[pages_used_];
  p.bytes.resize(span);  // allocates in the first walks only: the buffers are kept
  const double started = monotonic_seconds();
  const bool ok = inner_.read(start, p.bytes.data(), span);
  read_seconds_ += monotonic_seconds() - started;
  if (!ok) {  // part of the window is unmapped: read() asks for the exact range instead
    failed_page_ = start;
    return nullptr;
  }
  p.addr = start;
  p.size = span;
  ++pages_used_;
  // Planned whole for the next walk (not only the reads that missed): what the plan lacked
  // changes from walk to walk within those pages. 3.8-3.10's frames come from free lists and
  // a deep recursion's are new every sample, on the same pages: recorded by the read, the
  // next walk missed again (30 calls a sample, most walks torn and read again); by the page,
  // 24 a sample, and parse_expression's bias on 3.8 at 1 kHz went from -20 % to -9 % (means of
  // 8 runs of the corpus's recursion program, pinned apart).
  if (recorded_.size() < 4 * kMaxBlocks) recorded_.push_back(Range{start, span});
  return p.bytes.data() + (addr - start);
}

const uint8_t* PrefetchingMemory::view(RemoteAddr addr, size_t size) {
  if (!in_walk_ || addr + size < addr) return nullptr;
  const uint8_t* held = nullptr;
  if (const Block* b = find_block(addr, size)) {
    ++hits_;
    held = buffer_.data() + b->offset + (addr - b->addr);
    record(addr, size);
  } else if ((held = find_page(addr, size))) {
    ++page_hits_;  // its page is recorded whole (fetch_page)
  } else if ((held = fetch_page(addr, size))) {
    ++misses_;
  } else {
    return nullptr;  // read() records it and reads the exact range from the process
  }
  return held;
}

void PrefetchingMemory::record(RemoteAddr addr, size_t size) {
  if (size <= kMaxRecordedRead && recorded_.size() < 4 * kMaxBlocks) {
    recorded_.push_back(Range{addr, size});
  }
}

bool PrefetchingMemory::read(RemoteAddr addr, void* out, size_t size) {
  if (!in_walk_) return inner_.read(addr, out, size);
  if (const uint8_t* held = view(addr, size)) {
    std::memcpy(out, held, size);
    return true;
  }
  record(addr, size);
  ++misses_;
  const double started = monotonic_seconds();
  bool ok = inner_.read(addr, out, size);
  read_seconds_ += monotonic_seconds() - started;
  return ok;
}

}  // namespace spyglass::process
