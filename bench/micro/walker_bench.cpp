// The stack walker on captured memory images (see capture_images.py): repeatable, no live
// process. A snapshot read costs no system call, so each benchmark also reports how many reads a
// walk makes and how many process_vm_readv calls a live walk would make for them (a batch of up
// to IOV_MAX requests is one call); the live cost is about walk time + calls x readv_bench's
// figure.
//
//   walker_bench --images=DIR [benchmark flags]   (or SPYGLASS_BENCH_IMAGES=DIR)
//
// Every DIR/*.snap becomes
//   walk_warm/NAME        steady state: the code cache already holds every code object;
//   walk_cold/NAME        the cache emptied before each walk, as on the first sample;
//   walk_prefetched/NAME  steady state through PrefetchingMemory, as the sampler walks (what the
//                         previous walk read is fetched again in one batch: its `syscalls` is
//                         the live figure).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "cpython/capture.h"
#include "cpython/walker.h"
#include "process/memory.h"
#include "process/prefetch.h"

namespace {

using spyglass::cpython::CapturedTarget;
using spyglass::cpython::StackWalker;
using spyglass::cpython::ThreadStack;
using spyglass::process::CallCountingMemory;
using spyglass::process::MemoryReader;
using spyglass::process::PrefetchingMemory;
using spyglass::process::RemoteAddr;
using spyglass::process::SnapshotMemory;

struct Image {
  std::string name;
  std::unique_ptr<CapturedTarget> captured;
  // The image with the small gaps between captured ranges filled with zeros. The prefetch
  // merges ranges closer than PrefetchingMemory::kMergeGap into one read, which a live process
  // serves (the gap is mapped) but a bare image would refuse; the walker never reads the gaps.
  std::unique_ptr<SnapshotMemory> padded;
};

std::unique_ptr<SnapshotMemory> pad_gaps(const SnapshotMemory& snapshot) {
  auto padded = std::make_unique<SnapshotMemory>(snapshot);
  std::vector<std::pair<RemoteAddr, size_t>> gaps;
  const auto& regions = snapshot.regions();
  for (auto it = regions.begin(); it != regions.end(); ++it) {
    auto next = std::next(it);
    if (next == regions.end()) break;
    RemoteAddr end = it->first + it->second.size();
    if (next->first > end && next->first - end <= PrefetchingMemory::kMergeGap) {
      gaps.emplace_back(end, next->first - end);
    }
  }
  for (const auto& [addr, size] : gaps) padded->add_region(addr, std::vector<uint8_t>(size, 0));
  return padded;
}

struct WalkShape {
  size_t threads = 0;
  size_t frames = 0;
  size_t deepest = 0;
  bool truncated = false;
};

WalkShape shape_of(const std::vector<ThreadStack>& stacks) {
  WalkShape shape;
  shape.threads = stacks.size();
  for (const auto& stack : stacks) {
    shape.frames += stack.frames.size();
    shape.deepest = std::max(shape.deepest, stack.frames.size());
    shape.truncated = shape.truncated || stack.truncated;
  }
  return shape;
}

// An image only serves when the current walker finds the whole captured stack in it: a walker
// that reads differently from the one that captured the image runs off the recorded bytes.
bool check_walk(benchmark::State& state, bool ok, const WalkShape& shape) {
  if (!ok || shape.threads == 0 || shape.deepest < 64 || shape.truncated) {
    state.SkipWithError(
        "the walk does not find the 64-deep stack in this image (captured by another walker "
        "version?): run bench/micro/capture_images.py again");
    return false;
  }
  return true;
}

enum class Kind { kWarm, kCold, kPrefetched };

// One walk as the benchmark makes it (the prefetching reader brackets the walk, as Target does).
bool walk_once(StackWalker& walker, PrefetchingMemory* prefetch, Kind kind,
               std::vector<ThreadStack>& stacks) {
  if (kind == Kind::kCold) walker.code_cache().clear();
  if (prefetch) prefetch->begin_walk();
  bool ok = walker.walk(stacks);
  if (prefetch) prefetch->end_walk();
  return ok;
}

// Reads and live-equivalent calls of one walk, measured outside the timed loop.
SnapshotMemory& memory_for(Image& image, Kind kind) {
  return kind == Kind::kPrefetched ? *image.padded : image.captured->memory;
}

void count_reads(Image& image, Kind kind, benchmark::State& state) {
  SnapshotMemory& memory = memory_for(image, kind);
  CallCountingMemory counter(memory);
  PrefetchingMemory prefetch(counter);
  bool prefetched = kind == Kind::kPrefetched;
  MemoryReader& reader = prefetched ? static_cast<MemoryReader&>(prefetch) : counter;
  StackWalker walker(reader, image.captured->config);
  std::vector<ThreadStack> stacks;
  walk_once(walker, prefetched ? &prefetch : nullptr, Kind::kWarm, stacks);
  uint64_t reads_before = memory.calls();
  uint64_t calls_before = counter.calls();
  walk_once(walker, prefetched ? &prefetch : nullptr, kind, stacks);
  state.counters["reads"] = static_cast<double>(memory.calls() - reads_before);
  state.counters["syscalls"] = static_cast<double>(counter.calls() - calls_before);
}

void walk_benchmark(benchmark::State& state, Image* image, Kind kind) {
  SnapshotMemory& memory = memory_for(*image, kind);
  PrefetchingMemory prefetch(memory);
  PrefetchingMemory* prefetching = kind == Kind::kPrefetched ? &prefetch : nullptr;
  MemoryReader& reader = prefetching ? static_cast<MemoryReader&>(prefetch) : memory;
  StackWalker walker(reader, image->captured->config);
  std::vector<ThreadStack> stacks;
  // Fills the code cache (and the prefetch plan): the steady state.
  bool ok = walk_once(walker, prefetching, Kind::kWarm, stacks);
  WalkShape shape = shape_of(stacks);
  if (!check_walk(state, ok, shape)) return;
  for (auto _ : state) {
    ok = walk_once(walker, prefetching, kind, stacks);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(stacks.data());
  }
  count_reads(*image, kind, state);
  state.counters["threads"] = static_cast<double>(shape.threads);
  state.counters["frames"] = static_cast<double>(shape.frames);
  state.counters["frames_per_s"] = benchmark::Counter(
      static_cast<double>(shape.frames), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel("CPython " + image->captured->python_version);
}

std::string take_images_flag(int& argc, char** argv) {
  std::string dir;
  if (const char* env = std::getenv("SPYGLASS_BENCH_IMAGES")) dir = env;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--images=", 0) == 0) {
      dir = arg.substr(std::strlen("--images="));
    } else if (arg == "--images" && i + 1 < argc) {
      dir = argv[++i];
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  return dir;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = take_images_flag(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (dir.empty()) {
    std::fprintf(stderr,
                 "walker_bench: give the folder of captured images: --images=DIR or "
                 "SPYGLASS_BENCH_IMAGES=DIR (bench/micro/capture_images.py makes them)\n");
    return 2;
  }
  std::vector<std::filesystem::path> paths;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.path().extension() == ".snap") paths.push_back(entry.path());
  }
  if (error)
    std::fprintf(stderr, "walker_bench: cannot list %s: %s\n", dir.c_str(),
                 error.message().c_str());
  std::sort(paths.begin(), paths.end());
  std::vector<std::unique_ptr<Image>> images;
  for (const auto& path : paths) {
    auto image = std::make_unique<Image>();
    image->name = path.stem().string();
    try {
      image->captured = std::make_unique<CapturedTarget>(spyglass::cpython::load_captured(path));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "walker_bench: skipping %s: %s\n", path.c_str(), e.what());
      continue;
    }
    image->padded = pad_gaps(image->captured->memory);
    images.push_back(std::move(image));
  }
  if (images.empty()) {
    std::fprintf(stderr, "walker_bench: no images in %s: every version skipped\n", dir.c_str());
  }
  const std::pair<const char*, Kind> kinds[] = {{"walk_warm/", Kind::kWarm},
                                                {"walk_cold/", Kind::kCold},
                                                {"walk_prefetched/", Kind::kPrefetched}};
  for (auto& image : images) {
    for (const auto& [prefix, kind] : kinds) {
      benchmark::RegisterBenchmark((prefix + image->name).c_str(), walk_benchmark, image.get(),
                                   kind)
          ->Unit(benchmark::kMicrosecond);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
