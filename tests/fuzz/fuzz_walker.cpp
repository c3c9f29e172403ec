// libFuzzer target: the stack walker over hostile memory images, through the same MemoryReader
// interface a live process uses. Two kinds of input:
//  - a spyglass capture file ("SPYGSNAP...", what `spyglass dump --capture` writes): loaded with
//    process::load_snapshot (so the loader is fuzzed too), its metadata turned into a walker
//    configuration, and walked. The seed corpus holds real captures; the fuzzer's mutations
//    corrupt their pointers, lengths, strings and chains.
//  - anything else: a fully random image. The first byte selects the CPython version (any
//  supported;
//    3.13+ read their layout from debug offsets inside the image), the next the runtime's
//    offset, and the rest is memory mapped at kRandomBase.
// Every walk must end (bounded loops), never crash, and produce valid UTF-8 names.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/error.h"
#include "cpython/capture.h"
#include "cpython/walker.h"
#include "process/maps.h"
#include "process/memory.h"

namespace {

using spyglass::Error;
using spyglass::cpython::StackWalker;
using spyglass::cpython::ThreadStack;
using spyglass::cpython::WalkerConfig;

constexpr uint64_t kRandomBase = 0x7f0000001000;
constexpr char kSnapshotMagic[] = "SPYGSNAP";

// load_snapshot takes a path: an in-memory file keeps the fuzzer off the disk.
int snapshot_fd() {
  static int fd = memfd_create("spyglass-fuzz", 0);
  return fd;
}

bool valid_utf8(const std::string& text) {
  for (size_t i = 0; i < text.size();) {
    auto lead = static_cast<unsigned char>(text[i]);
    size_t extra = 0;
    if (lead >= 0x80) {
      if ((lead & 0xe0) == 0xc0) {
        extra = 1;
      } else if ((lead & 0xf0) == 0xe0) {
        extra = 2;
      } else if ((lead & 0xf8) == 0xf0) {
        extra = 3;
      } else {
        return false;
      }
    }
    if (extra > text.size() - i - 1) return false;
    for (size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) return false;
    }
    i += extra + 1;
  }
  return true;
}

void check_stacks(const std::vector<ThreadStack>& stacks, const WalkerConfig& config) {
  if (stacks.size() > config.max_threads * config.max_interpreters) std::abort();
  nlohmann::json all = nlohmann::json::array();
  for (const ThreadStack& stack : stacks) {
    if (stack.frames.size() > config.max_depth) std::abort();
    for (const auto& frame : stack.frames) {
      if (frame.code == nullptr) continue;
      if (!valid_utf8(frame.code->name) || !valid_utf8(frame.code->qualname) ||
          !valid_utf8(frame.code->filename)) {
        std::fprintf(stderr, "invalid UTF-8 in a code object's names\n");
        std::abort();
      }
      // What `dump --json` does with the names: throws on bad UTF-8.
      all.push_back({frame.code->qualname, frame.code->filename, frame.line});
    }
  }
  (void)all.dump();
}

void walk_image(spyglass::process::MemoryReader& memory, WalkerConfig config) {
  // Small limits keep each execution fast; the bounds themselves are what is tested.
  config.max_depth = 2'000;
  config.max_threads = 64;
  config.max_interpreters = 8;
  StackWalker walker(memory, config);
  std::vector<ThreadStack> stacks;
  walker.list_threads(stacks);
  spyglass::process::ThreadIds tids(std::vector<pid_t>{1, 2, 3});
  for (int pass = 0; pass < 2; ++pass) {  // the second walk goes through the code cache
    stacks.clear();
    walker.walk(stacks, pass == 0 ? nullptr : &tids);
    check_stacks(stacks, walker.config());
  }
}

void fuzz_capture_file(const uint8_t* data, size_t size) {
  int fd = snapshot_fd();
  if (fd < 0 || ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) {
    std::abort();
  }
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    spyglass::cpython::CapturedTarget captured = spyglass::cpython::load_captured(path);
    walk_image(captured.memory, captured.config);
  } catch (const Error&) {
    // A bad file or layout is refused with an error: that is the wanted outcome.
  }
}

void fuzz_random_image(const uint8_t* data, size_t size) {
  if (size < 2) return;
  // Every supported minor version (versions.toml), as a final release x.y.1.
  const auto& range = spyglass::cpython::kSupportedVersions;
  const int minor = range.oldest_minor + data[0] % (range.newest_minor - range.oldest_minor + 1);
  const uint64_t version_hex = 0x030001f0 | (uint64_t(minor) << 16);
  uint64_t runtime_offset = (data[1] & 0x3f) * 8;
  std::vector<uint8_t> bytes(data + 2, data + size);
  spyglass::process::SnapshotMemory memory;
  memory.add_region(kRandomBase, std::move(bytes));
  nlohmann::json meta = {{"format", "spyglass-capture-1"},
                         {"version_hex", version_hex},
                         {"runtime_addr", kRandomBase + runtime_offset},
                         // Type objects at fixed places, so the fuzzer can match them.
                         {"code_type", kRandomBase},
                         {"unicode_type", kRandomBase + 8},
                         {"bytes_type", kRandomBase + 16}};
  try {
    WalkerConfig config = spyglass::cpython::config_from_metadata(memory, meta.dump());
    walk_image(memory, config);
  } catch (const Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size >= 8 && std::memcmp(data, kSnapshotMagic, 8) == 0) {
    fuzz_capture_file(data, size);
  } else {
    fuzz_random_image(data, size);
  }
  return 0;
}
