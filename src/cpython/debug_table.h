// Inside src/cpython: a _Py_DebugOffsets table as read from the target, with the checked
// accessors that the per-version readers generated from versions.toml (layout_generated.cpp)
// use. The table comes from another process's memory: every value is validated before use,
// each offset together with the width of the field it locates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cpython/layout.h"

namespace spyglass::cpython {

class DebugTable {
 public:
  // `words`: the whole table as 64-bit words, its 3-word header included.
  DebugTable(std::vector<uint64_t> words, const PythonVersion& version)
      : words_(std::move(words)), version_(version) {}

  // A struct size: 0 < value <= max (0: kDebugSizeMax).
  uint64_t size(std::string_view name, size_t word, uint64_t max = 0) const;
  // A size of a part of a struct (sizeof(PyASCIIObject) in a unicode object):
  // 0 < value <= the struct's size, at `outer_size_word` (validated before).
  uint64_t size_within(std::string_view name, size_t word, size_t outer_size_word) const;
  // The offset of a field `width` bytes wide: value + width <= the struct's size, at
  // `size_word` (validated before).
  uint64_t offset(std::string_view name, size_t word, size_t size_word, uint64_t width) const;
  // An offset inside a struct embedded at the offset `base_word` says (both inside the struct
  // of `size_word`): value - base, with base <= value and value + width <= the struct's size.
  uint64_t relative(std::string_view name, size_t word, size_t base_word, size_t size_word,
                    uint64_t width) const;

  [[noreturn]] void fail(const std::string& what) const;

 private:
  uint64_t at(size_t word) const;

  std::vector<uint64_t> words_;
  const PythonVersion& version_;
};

// How to read one minor version's table (generated from versions.toml).
struct DebugOffsetsReader {
  int minor;
  size_t words;  // of the whole table, header included
  void (*read)(const DebugTable& table, Layout& layout);
};

// The reader of a minor version with _Py_DebugOffsets; nullptr for any other.
const DebugOffsetsReader* debug_offsets_reader(int minor);

// Bound of a struct size read from the table when its field gives none (versions.toml,
// debug_size_max; generated).
extern const uint64_t kDebugSizeMax;

}  // namespace spyglass::cpython
