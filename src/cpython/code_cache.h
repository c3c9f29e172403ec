// Code objects and their names, cached by address. A cached entry is trusted only while the
// object at that address still carries the same identity (type, name, file, line table
// pointers), so a freed and reused address never shows a stale name; on 3.12+, while no code
// object has been made since the entry was last checked (see begin_walk), without reading it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "cpython/layout.h"
#include "cpython/stack.h"

namespace spyglass::process {
class MemoryReader;
}

namespace spyglass::cpython {

// The fields of a code object that identify it; read in one go from its header.
struct CodeIdentity {
  uint64_t type = 0, filename = 0, name = 0, qualname = 0, linetable = 0;
  int32_t firstlineno = 0;
  bool operator==(const CodeIdentity&) const = default;
};

class CodeCache {
 public:
  CodeCache(process::MemoryReader& memory, const Layout& layout, uint64_t code_type,
            uint64_t unicode_type, uint64_t bytes_type);
  // Bytes of a code object's header that hold its identity.
  size_t header_size() const { return header_size_; }
  // Decodes the identity fields from header bytes.
  CodeIdentity identity(std::span<const uint8_t> header) const;
  // The cached entry for `addr` when `header` (freshly read) still matches it; otherwise reads
  // the names and line table anew. nullptr when the object is not a valid code object.
  const CodeInfo* lookup(uint64_t addr, std::span<const uint8_t> header);
  // Reads the header itself (one read), then lookup(); nothing when a walk's code counter
  // proves the cached entry (see begin_walk).
  const CodeInfo* get(uint64_t addr);
  // The cached entry for a code object that a frame known unchanged since it was last read
  // still runs (see StackWalker::reuse_unchanged_stack): the frame holds a reference to it, so
  // the object at `addr` is the one cached, and nothing is read. nullptr when not cached.
  const CodeInfo* held(uint64_t addr) {
    Entry* cached = find(addr);
    return cached ? &cached->info : nullptr;
  }
  // Each walk, before its frames: the target's code counter as this walk read it (3.12+:
  // every new code object takes its co_version from it, and it only runs forward; nullopt
  // where there is none, it has run out, or it is not the only one that numbers the code
  // objects the walk may meet). An entry checked against its header while the counter read
  // C, and found again while it still reads C, is the same object: another one at its address
  // would have been made since, and moved the counter. Checked entries are marked with the
  // previous walk's value, read before their header was (within a walk the batch's order is
  // the addresses', not the reads'), so a code object made between that read and the header's
  // is caught by the next walk.
  void begin_walk(std::optional<uint32_t> code_counter);
  // Lookups the counter answered, and those that read a header.
  uint64_t proven() const { return proven_; }
  uint64_t headers_read() const { return headers_read_; }
  // Counters that could not be right (ran backwards, or below a code object's co_version).
  uint64_t counter_faults() const { return counter_faults_; }
  bool counter_trusted() const { return !counter_off_; }
  // get() for the code of a frame object (3.8-3.10). These versions have no co_qualname: when
  // the code is new to the cache and its first argument is `self` or `cls`, the qualified name
  // becomes "Class.name" from that argument's class in this frame. When that argument cannot
  // be read (a frame that has just returned has cleared its locals), nullptr, so that the walk
  // is read again, up to kClassAttempts times for the code; then the plain name stays.
  const CodeInfo* get_for_frame(uint64_t addr, uint64_t frame);
  // The line for an instruction offset (units as linetable.h says).
  int line(uint64_t addr, int64_t offset);
  // Reads a str object as UTF-8 (bounded by `max_len` characters). False when not a str.
  bool read_string(uint64_t addr, std::string& out, size_t max_len = 4096) {
    return read_string(memory_, addr, out, max_len);
  }
  // ... read through `memory` (a reader of objects with a batch of its own).
  bool read_string(process::MemoryReader& memory, uint64_t addr, std::string& out,
                   size_t max_len = 4096);
  size_t size() const { return entries_.size(); }
  uint64_t misses() const { return misses_; }
  void clear();

 private:
  struct Entry {
    CodeIdentity identity;
    CodeInfo info;
    std::vector<uint8_t> linetable;
    // Lines already decoded, by instruction offset: a steady-state sample decodes nothing.
    mutable std::unordered_map<int64_t, int> lines;
    // The last offset asked and its line: a frame that has not moved skips the map.
    mutable int64_t last_offset = -2;
    mutable int last_line = 0;
    // What begin_walk's counter proves it by: kUnproven, or the generation and the counter
    // value when it was last checked against its header.
    uint64_t proof = 0;
    // 3.8-3.10: a method whose class could not yet be read from its frame (get_for_frame).
    bool class_pending = false;
    int class_attempts = 0;
  };
  static constexpr int kClassAttempts = 32;
  // A direct-mapped cache in front of entries_ (node addresses stay valid until erased): a
  // steady-state walk asks for the same few dozen code objects every time.
  struct Slot {
    uint64_t addr = 0;
    Entry* entry = nullptr;
  };
  static constexpr size_t kSlots = 1024;
  Entry* find(uint64_t addr);
  // True when the header bytes hold the same identity fields as `id`.
  bool still_matches(const CodeIdentity& id, const uint8_t* header) const;
  static constexpr size_t kMaxLinesPerCode = 4096;
  bool read_bytes(uint64_t addr, std::vector<uint8_t>& out, size_t max_len);
  // The class name of a method's `self` or `cls` in this frame; "" when the code is a method
  // but the argument is not there (a returning frame); nullopt when the code is no method or
  // its class has no usable name.
  std::optional<std::string> class_of_first_argument(uint64_t code, uint64_t frame);

  static constexpr uint64_t kUnproven = 0;
  // A proof from `counter` in the current generation (a counter value is never 0).
  uint64_t proof_of(uint32_t counter) const { return generation_ << 32 | counter; }
  // After this many faults, when they are more than an eighth of the headers read, the counter
  // is never used again (a wrong offset or symbol).
  static constexpr uint64_t kMaxCounterFaults = 16;
  uint64_t proof_now_ = kUnproven;    // what proves an entry in this walk
  uint64_t proof_stamp_ = kUnproven;  // what an entry checked in this walk is marked with
  uint32_t counter_now_ = 0;
  std::optional<uint32_t> previous_counter_;
  uint64_t generation_ = 1;  // a new one voids every proof
  bool counter_off_ = false;
  uint64_t proven_ = 0, headers_read_ = 0, counter_faults_ = 0;

  process::MemoryReader& memory_;
  const Layout& layout_;
  uint64_t code_type_, unicode_type_, bytes_type_;
  size_t header_size_ = 0;
  std::unordered_map<uint64_t, Entry> entries_;
  std::vector<Slot> slots_ = std::vector<Slot>(kSlots);
  Slot last_;  // what the last lookup found: line() is asked for it right after
  uint64_t misses_ = 0;
  uint32_t next_id_ = 1;
  static constexpr size_t kMaxEntries = 200'000;
};

}  // namespace spyglass::cpython
