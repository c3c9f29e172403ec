// Captured memory images of a live target: every byte a stack walk reads, saved with what is
// needed to walk it again. Unit tests, microbenchmarks and the fuzzer walk these images through
// the same MemoryReader interface as a live process.
#pragma once

#include <string>

#include "cpython/target.h"
#include "cpython/walker.h"
#include "process/memory.h"

namespace spyglass::cpython {

// Walks `target` (twice, so the code cache's reads are recorded too) and saves the image.
void capture_target(Target& target, const std::string& path);

struct CapturedTarget {
  process::SnapshotMemory memory;
  WalkerConfig config;
  std::string python_version;
};

// Loads an image and rebuilds the walker's configuration (for 3.13+ from the debug offsets
// inside the image). Throws Error(kIo) or Error(kCorrupt) on a bad file.
CapturedTarget load_captured(const std::string& path);

// The same from an in-memory image and its metadata (what the fuzzer feeds).
WalkerConfig config_from_metadata(process::MemoryReader& memory, const std::string& metadata);

}  // namespace spyglass::cpython
