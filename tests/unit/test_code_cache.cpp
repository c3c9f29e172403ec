// The code cache's proof by the code counter (3.12+): a cached code object is not read again
// while the counter that numbers new code objects stays put, and is read again, and replaced
// when it changed, once it moves.
#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "cpython/code_cache.h"
#include "cpython/layout.h"
#include "process/memory.h"

namespace spyglass::cpython {
namespace {

constexpr uint64_t kBase = 0x7f0000000000;
constexpr uint64_t kCodeType = 0x7e0000001000;

// One code object and its strings at kBase, rewritten in place to stand for another object
// made at the same address.
class CodeImage {
 public:
  explicit CodeImage(const Layout& layout) : L(layout), bytes_(8192) {}

  uint64_t code() const { return kBase; }

  // The code object at code(): named `name`, numbered `version` by the counter.
  void make(const std::string& name, uint32_t version) {
    std::fill(bytes_.begin(), bytes_.end(), 0);
    put<uint64_t>(0, L.ob_type, kCodeType);
    // Each object's strings at their own place, as a new object's would be.
    const uint64_t strings = 1024 + 256 * (version % 8);
    put<uint64_t>(0, L.code.name, kBase + str(strings, name));
    put<uint64_t>(0, L.code.filename, kBase + str(strings + 128, "app.py"));
    if (L.code.qualname) put<uint64_t>(0, L.code.qualname, kBase + strings);
    put<int32_t>(0, L.code.firstlineno, 10);
    put<uint32_t>(0, L.code.version, version);
  }

  // Not a code object: what a frame caught being set up or torn down may point at, with any
  // word where a code object keeps its co_version (here the high half of a pointer).
  void make_other(uint32_t word) {
    std::fill(bytes_.begin(), bytes_.end(), 0);
    put<uint64_t>(0, L.ob_type, kCodeType + 0x100);
    put<uint32_t>(0, L.code.version, word);
  }

  process::SnapshotMemory snapshot() const {
    process::SnapshotMemory memory;
    memory.add_region(kBase, bytes_);
    return memory;
  }

 private:
  template <typename T>
  void put(uint64_t at, uint64_t offset, T value) {
    std::memcpy(bytes_.data() + at + offset, &value, sizeof(T));
  }
  uint64_t str(uint64_t at, const std::string& text) {
    put<uint32_t>(at, L.unicode.state, (1u << 2) | (1u << 5) | (1u << 6));  // compact ASCII
    put<int64_t>(at, L.unicode.length, static_cast<int64_t>(text.size()));
    std::memcpy(bytes_.data() + at + L.unicode.ascii_data, text.data(), text.size());
    return at;
  }
  const Layout& L;
  std::vector<uint8_t> bytes_;
};

// Counts the reads of the code object's header.
class HeaderCountingMemory : public process::MemoryReader {
 public:
  process::SnapshotMemory inner;
  int header_reads = 0;
  bool read(process::RemoteAddr addr, void* out, size_t size) override {
    if (addr == kBase) ++header_reads;
    return inner.read(addr, out, size);
  }
};

class CodeCounterTest : public ::testing::Test {
 protected:
  Layout layout = *builtin_layout(PythonVersion{3, 12, 0});
  CodeImage image{layout};
  HeaderCountingMemory memory;
  CodeCache cache{memory, layout, kCodeType, 0, 0};

  // One walk: the counter as read, then a lookup of the code object; its name, or "".
  std::string walk(std::optional<uint32_t> counter) {
    cache.begin_walk(counter);
    const CodeInfo* info = cache.get(image.code());
    return info ? info->name : "";
  }
  void replace(const std::string& name, uint32_t version) {
    image.make(name, version);
    memory.inner = image.snapshot();
  }
};

TEST_F(CodeCounterTest, LayoutNamesTheFieldsTheProofNeeds) {
  EXPECT_TRUE(layout.runtime.code_counter_global);
  EXPECT_GT(layout.code.version, 0u);
  EXPECT_GE(cache.header_size(), layout.code.version + 4);
  const Layout later = *builtin_layout(PythonVersion{3, 11, 0});
  EXPECT_FALSE(later.runtime.code_counter_global);
  EXPECT_EQ(later.code.version, 0u);
}

TEST_F(CodeCounterTest, ACodeObjectIsReadUntilTheCounterHasStoodStillThenNoMore) {
  replace("parse", 40);
  // The first walk has no earlier counter value to mark its check with; the second has.
  EXPECT_EQ(walk(50), "parse");
  EXPECT_EQ(walk(50), "parse");
  EXPECT_EQ(memory.header_reads, 2);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(walk(50), "parse");
  EXPECT_EQ(memory.header_reads, 2);
  EXPECT_EQ(cache.proven(), 10u);
  EXPECT_EQ(cache.headers_read(), 2u);
}

TEST_F(CodeCounterTest, ANewCodeObjectAtTheSameAddressIsSeenOnceTheCounterMoved) {
  replace("parse", 40);
  walk(50);
  walk(50);
  ASSERT_EQ(walk(50), "parse");
  replace("render", 50);  // freed, and another made in its place: the counter moves on
  EXPECT_EQ(walk(51), "render");
  EXPECT_EQ(walk(51), "render");  // marked with 51's predecessor: checked once more
  const int reads = memory.header_reads;
  EXPECT_EQ(walk(51), "render");
  EXPECT_EQ(memory.header_reads, reads);
}

TEST_F(CodeCounterTest, WithoutACounterEveryLookupReadsTheHeader) {
  replace("parse", 40);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(walk(std::nullopt), "parse");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(walk(0), "parse");  // 0: the counter ran out
  EXPECT_EQ(memory.header_reads, 10);
  EXPECT_EQ(cache.proven(), 0u);
}

TEST_F(CodeCounterTest, ACounterGoneAndBackProvesNothingCheckedBefore) {
  replace("parse", 40);
  walk(50);
  walk(50);
  walk(50);
  // A second interpreter (3.13+) came and went; it may have made code at this address.
  walk(std::nullopt);
  replace("render", 45);
  EXPECT_EQ(walk(50), "render");
}

TEST_F(CodeCounterTest, ACounterThatRunsBackwardsIsNoProof) {
  replace("parse", 40);
  walk(50);
  walk(50);
  replace("render", 41);
  EXPECT_EQ(walk(49), "render");
  EXPECT_EQ(cache.counter_faults(), 1u);
}

TEST_F(CodeCounterTest, ACounterBelowTheCodeObjectsVersionsIsNotUsedAgain) {
  // A wrong offset or symbol: the "counter" reads 7 while code objects carry 40.
  replace("parse", 40);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(walk(7), "parse");
  EXPECT_EQ(cache.proven(), 0u);
  EXPECT_FALSE(cache.counter_trusted());
  EXPECT_EQ(memory.header_reads, 20);
}

TEST_F(CodeCounterTest, WhatIsNotACodeObjectIsNoFaultOfTheCounter) {
  image.make_other(0x7efe);
  memory.inner = image.snapshot();
  for (int i = 0; i < 40; ++i) EXPECT_EQ(walk(50), "");
  EXPECT_EQ(cache.counter_faults(), 0u);
  EXPECT_TRUE(cache.counter_trusted());
  replace("parse", 40);
  walk(50);
  walk(50);
  const int reads = memory.header_reads;
  EXPECT_EQ(walk(50), "parse");
  EXPECT_EQ(memory.header_reads, reads);  // proven: the counter still stands for code
}

}  // namespace
}  // namespace spyglass::cpython
