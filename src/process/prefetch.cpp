#include "process/prefetch.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace spyglass::process {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

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
  const double started = now_seconds();
  for (int attempt = 0; attempt < 4 && start < requests.size(); ++attempt) {
    size_t done = inner_.read_batch(std::span(requests).subspan(start));
    good.insert(good.end(), blocks_.begin() + static_cast<ptrdiff_t>(start),
                blocks_.begin() + static_cast<ptrdiff_t>(start + done));
    start += done + 1;
  }
  read_seconds_ += now_seconds() - started;
  blocks_ = std::move(good);
  recent_ = {0, 0};
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

const uint8_t* PrefetchingMemory::view(RemoteAddr addr, size_t size) {
  if (!in_walk_ || addr + size < addr) return nullptr;
  const Block* b = find_block(addr, size);
  if (!b) return nullptr;  // read() records it and reads it from the process
  record(addr, size);
  ++hits_;
  return buffer_.data() + b->offset + (addr - b->addr);
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
  const double started = now_seconds();
  bool ok = inner_.read(addr, out, size);
  read_seconds_ += now_seconds() - started;
  return ok;
}

}  // namespace spyglass::process
