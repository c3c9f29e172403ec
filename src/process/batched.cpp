#include "process/batched.h"

#include <algorithm>
#include <cstring>
#include <span>

namespace spyglass::process {

BatchedMemory::BatchedMemory(MemoryReader& inner, size_t max_gap) : inner_(inner) {
  const size_t page = inner.page_size();
  max_gap_ = max_gap != ~size_t{0} ? max_gap : page ? page - 1 : 0;
}

void BatchedMemory::begin() {
  in_pass_ = true;
  recorded_.clear();
  missed_used_ = 0;
  recent_ = 0;
  if (joined_) {  // fetched with the walk's prefetch already
    joined_ = false;
    return;
  }
  prepare_requests();
  // A range that became unreadable (its memory unmapped) stops the batch there: it is skipped
  // (what it held is read on demand, and a read that fails is not planned again).
  read_batch_past_failures(inner_, requests_, kMaxBatches, read_);
  hold(read_);
}

void BatchedMemory::prepare_requests() {
  size_t total = 0;
  for (const Range& r : plan_) total += r.size;
  buffer_.resize(total);
  requests_.clear();
  planned_.clear();
  size_t offset = 0;
  for (const Range& r : plan_) {
    requests_.push_back(ReadRequest{r.addr, buffer_.data() + offset, r.size});
    planned_.push_back(Block{r.addr, offset, r.size});
    offset += r.size;
  }
}

void BatchedMemory::plan_into(std::vector<ReadRequest>& out) {
  prepare_requests();
  out.insert(out.end(), requests_.begin(), requests_.end());
}

void BatchedMemory::fetched(std::span<const uint8_t> read) {
  hold(read);
  joined_ = true;
}

void BatchedMemory::hold(std::span<const uint8_t> read) {
  blocks_.clear();
  for (size_t i = 0; i < planned_.size() && i < read.size(); ++i) {
    if (read[i]) blocks_.push_back(planned_[i]);
  }
  recent_ = 0;
}

void BatchedMemory::end() {
  in_pass_ = false;
  // A pass that read what the last one did (no task changed) keeps the plan: comparing is
  // cheaper than sorting again.
  if (recorded_ != last_recorded_) {
    make_plan();
    last_recorded_.swap(recorded_);
  }
  recorded_.clear();
}

void BatchedMemory::make_plan() {
  std::vector<Range> ranges = recorded_;
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.addr < b.addr; });
  plan_.clear();
  size_t total = 0;
  for (const Range& r : ranges) {
    if (!plan_.empty()) {
      Range& last = plan_.back();
      const RemoteAddr last_end = last.addr + last.size;
      if (r.addr <= last_end || r.addr - last_end <= max_gap_) {
        const RemoteAddr end = std::max(last_end, r.addr + r.size);
        total += end - last_end;
        last.size = static_cast<size_t>(end - last.addr);
        if (total > kMaxPlanBytes) break;
        continue;
      }
    }
    plan_.push_back(r);
    total += r.size;
    if (total > kMaxPlanBytes) break;
  }
}

const BatchedMemory::Block* BatchedMemory::find(RemoteAddr addr, size_t size) const {
  auto holds = [&](const Block& b) { return addr >= b.addr && addr + size <= b.addr + b.size; };
  if (recent_ < blocks_.size() && holds(blocks_[recent_])) return &blocks_[recent_];
  auto it = std::upper_bound(blocks_.begin(), blocks_.end(), addr,
                             [](RemoteAddr a, const Block& b) { return a < b.addr; });
  if (it == blocks_.begin()) return nullptr;
  --it;
  if (!holds(*it)) return nullptr;
  recent_ = static_cast<size_t>(it - blocks_.begin());
  return &*it;
}

void BatchedMemory::record(RemoteAddr addr, size_t size) {
  if (size > kMaxRead) return;
  // Fields of one object are read one after another: one range for them.
  if (!recorded_.empty()) {
    Range& last = recorded_.back();
    if (addr >= last.addr && addr <= last.addr + last.size) {
      last.size = static_cast<size_t>(std::max(last.addr + last.size, addr + size) - last.addr);
      return;
    }
  }
  if (recorded_.size() < kMaxRanges) recorded_.push_back(Range{addr, size});
}

const uint8_t* BatchedMemory::view(RemoteAddr addr, size_t size) {
  if (!in_pass_ || size == 0 || addr + size < addr) return nullptr;
  if (const Block* b = find(addr, size)) {
    ++hits_;
    record(addr, size);
    return buffer_.data() + b->offset + (addr - b->addr);
  }
  if (size > kMaxRead) return nullptr;
  ++misses_;
  if (missed_used_ == missed_.size()) missed_.emplace_back();
  std::vector<uint8_t>& bytes = missed_[missed_used_];
  bytes.resize(size);
  if (!inner_.read(addr, bytes.data(), size)) return nullptr;
  ++missed_used_;
  record(addr, size);
  return bytes.data();
}

bool BatchedMemory::read(RemoteAddr addr, void* out, size_t size) {
  if (!in_pass_) return inner_.read(addr, out, size);
  if (const uint8_t* held = view(addr, size)) {
    std::memcpy(out, held, size);
    return true;
  }
  return size > kMaxRead && inner_.read(addr, out, size);
}

}  // namespace spyglass::process
