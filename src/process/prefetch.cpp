#include "process/prefetch.h"

#include <algorithm>
#include <cstring>

namespace spyglass::process {

void PrefetchingMemory::begin_walk() {
  in_walk_ = true;
  recorded_.clear();
  fetch_plan();
}

void PrefetchingMemory::refresh() {
  if (in_walk_) fetch_plan();
}

void PrefetchingMemory::fetch_plan() {
  blocks_.clear();
  if (plan_.empty()) return;
  size_t total = 0;
  for (const auto& r : plan_) total += r.size;
  buffer_.resize(total);
  std::vector<ReadRequest> requests;
  requests.reserve(plan_.size());
  size_t offset = 0;
  for (const auto& r : plan_) {
    requests.push_back(ReadRequest{r.addr, buffer_.data() + offset, r.size});
    blocks_.push_back(Block{r.addr, offset, r.size});
    offset += r.size;
  }
  // A range that became unreadable (memory freed) stops the batch there: skip it and go on,
  // a bounded number of times.
  size_t start = 0;
  std::vector<Block> good;
  for (int attempt = 0; attempt < 4 && start < requests.size(); ++attempt) {
    size_t done = inner_.read_batch(std::span(requests).subspan(start));
    good.insert(good.end(), blocks_.begin() + static_cast<ptrdiff_t>(start),
                blocks_.begin() + static_cast<ptrdiff_t>(start + done));
    start += done + 1;
  }
  blocks_ = std::move(good);
}

void PrefetchingMemory::end_walk() {
  in_walk_ = false;
  // In a steady state a walk reads exactly what the one before read, in the same order: the
  // plan stands, and comparing is cheaper than sorting again.
  if (recorded_ == planned_from_) return;
  planned_from_ = recorded_;
  // Sort and merge what this walk read into the next plan.
  std::sort(recorded_.begin(), recorded_.end(),
            [](const Range& a, const Range& b) { return a.addr < b.addr; });
  plan_.clear();
  size_t total = 0;
  for (const auto& r : recorded_) {
    if (!plan_.empty() && r.addr <= plan_.back().addr + plan_.back().size + kMergeGap) {
      RemoteAddr end = std::max(plan_.back().addr + plan_.back().size, r.addr + r.size);
      total += end - (plan_.back().addr + plan_.back().size);
      plan_.back().size = static_cast<size_t>(end - plan_.back().addr);
    } else {
      if (plan_.size() >= kMaxBlocks) break;
      plan_.push_back(r);
      total += r.size;
    }
    if (total > kMaxBytes) break;
  }
}

const PrefetchingMemory::Block* PrefetchingMemory::find_block(RemoteAddr addr, size_t size) const {
  auto it = std::upper_bound(blocks_.begin(), blocks_.end(), addr,
                             [](RemoteAddr a, const Block& b) { return a < b.addr; });
  if (it == blocks_.begin()) return nullptr;
  --it;
  if (addr >= it->addr && addr + size <= it->addr + it->size) return &*it;
  return nullptr;
}

bool PrefetchingMemory::read(RemoteAddr addr, void* out, size_t size) {
  if (!in_walk_) return inner_.read(addr, out, size);
  if (size <= kMaxRecordedRead && recorded_.size() < 4 * kMaxBlocks) {
    recorded_.push_back(Range{addr, size});
  }
  if (const Block* b = find_block(addr, size)) {
    std::memcpy(out, buffer_.data() + b->offset + (addr - b->addr), size);
    ++hits_;
    return true;
  }
  ++misses_;
  return inner_.read(addr, out, size);
}

}  // namespace spyglass::process
