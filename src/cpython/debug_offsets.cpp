// Layouts of CPython 3.13+ from the _Py_DebugOffsets table that starts _PyRuntime. The table's
// shape changes between minor versions: each known minor's shape, and what the table does not
// carry, comes from versions.toml (read_3XX in layout_generated.cpp). The table comes from the
// target's memory, so every value is validated here before any of it is used.

#include <fmt/format.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "cpython/debug_table.h"
#include "cpython/layout.h"
#include "common/error.h"
#include "process/memory.h"

namespace spyglass::cpython {
namespace {

// The first three fields, the same in every version that has the table.
struct DebugHeader {
  char cookie[8];
  uint64_t version;  // PY_VERSION_HEX
  uint64_t free_threaded;
};
static_assert(sizeof(DebugHeader) == 24);

}  // namespace

uint64_t DebugTable::at(size_t word) const {
  if (word >= words_.size())
    fail(fmt::format("word {} beyond the table's {}", word, words_.size()));
  return words_[word];
}

void DebugTable::fail(const std::string& what) const {
  throw Error(ErrorKind::kCorrupt, fmt::format("the debug offsets of CPython {} do not check out "
                                               "({}); the process memory may be corrupt",
                                               version_.str(), what));
}

uint64_t DebugTable::size(std::string_view name, size_t word, uint64_t max) const {
  const uint64_t value = at(word);
  const uint64_t limit = max ? max : kDebugSizeMax;
  if (value == 0 || value > limit) fail(fmt::format("{} {} not in 1..{}", name, value, limit));
  return value;
}

uint64_t DebugTable::size_within(std::string_view name, size_t word, size_t outer_size_word) const {
  const uint64_t value = at(word);
  const uint64_t outer = at(outer_size_word);
  if (value == 0 || value > outer) {
    fail(fmt::format("{} {} not in 1..{} (its struct)", name, value, outer));
  }
  return value;
}

uint64_t DebugTable::offset(std::string_view name, size_t word, size_t size_word,
                            uint64_t width) const {
  const uint64_t value = at(word);
  const uint64_t struct_size = at(size_word);
  if (value > struct_size || width > struct_size - value) {
    fail(fmt::format("{} {} with its {} bytes outside its struct's {}", name, value, width,
                     struct_size));
  }
  return value;
}

uint64_t DebugTable::relative(std::string_view name, size_t word, size_t base_word,
                              size_t size_word, uint64_t width) const {
  const uint64_t value = offset(name, word, size_word, width);
  const uint64_t base = at(base_word);
  if (value < base) fail(fmt::format("{} {} before the struct it is in, at {}", name, value, base));
  return value - base;
}

Layout layout_from_debug_offsets(process::MemoryReader& memory, uint64_t runtime_addr) {
  DebugHeader header;
  if (!memory.read(runtime_addr, &header, sizeof(header))) {
    throw Error(ErrorKind::kCorrupt,
                fmt::format("cannot read _PyRuntime at {:#x} (its debug offsets)", runtime_addr));
  }
  if (!has_debug_cookie(header.cookie, sizeof(header.cookie))) {
    throw Error(ErrorKind::kCorrupt,
                fmt::format("_PyRuntime at {:#x} does not start with the debug cookie "
                            "\"xdebugpy\"",
                            runtime_addr));
  }
  const PythonVersion version = PythonVersion::from_hex(header.version);
  if (!reads_debug_offsets(version)) {
    throw Error(
        ErrorKind::kCorrupt,
        fmt::format("the debug offsets at {:#x} name version {:#x}, not CPython 3.{}+",
                    runtime_addr, header.version, kSupportedVersions.first_debug_offsets_minor));
  }
  check_supported(version);
  if (header.free_threaded != 0) {
    throw Error(ErrorKind::kUnsupported,
                fmt::format("free-threaded CPython {}.{}t is not supported yet", version.major,
                            version.minor));
  }
  const DebugOffsetsReader* reader = debug_offsets_reader(version.minor);
  if (reader == nullptr) {  // a version in the range always has one: versions.toml says so
    throw Error(ErrorKind::kUnsupported,
                fmt::format("CPython {}: no _Py_DebugOffsets shape known", version.str()));
  }
  std::vector<uint64_t> words(reader->words);
  if (!memory.read(runtime_addr, words.data(), words.size() * sizeof(uint64_t))) {
    throw Error(ErrorKind::kCorrupt,
                fmt::format("cannot read the debug offsets of CPython {} at {:#x}", version.str(),
                            runtime_addr));
  }
  const DebugTable table(std::move(words), version);
  Layout layout;
  layout.version = version;
  layout.free_threaded = false;
  reader->read(table, layout);
  return layout;
}

}  // namespace spyglass::cpython
