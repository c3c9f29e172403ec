// What one process_vm_readv call costs on this machine: the floor under a live sample's cost
// (a walk makes at least one call). Reads from a child process that only sleeps, so the figures
// are the system call's own cost, not the target's.
//
//   readv_bench [benchmark flags]
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

namespace {

constexpr size_t kBufferSize = 1 << 20;
// Allocated before the fork: the child's copy sits at the same address.
std::vector<char>* g_buffer = nullptr;
pid_t g_child = 0;

void readv_bytes(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  std::vector<char> local(size);
  struct iovec here {
    local.data(), size
  };
  struct iovec there {
    g_buffer->data(), size
  };
  for (auto _ : state) {
    ssize_t got = process_vm_readv(g_child, &here, 1, &there, 1, 0);
    if (got != static_cast<ssize_t>(size)) {
      state.SkipWithError(std::strerror(errno));
      return;
    }
    benchmark::DoNotOptimize(local.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}

// One call carrying `n` scattered 64-byte reads (how a walker batches frames or code objects).
void readv_iovecs(benchmark::State& state) {
  const size_t count = static_cast<size_t>(state.range(0));
  constexpr size_t kEach = 64;
  std::vector<char> local(count * kEach);
  std::vector<struct iovec> here(count), there(count);
  for (size_t i = 0; i < count; ++i) {
    here[i] = {local.data() + i * kEach, kEach};
    there[i] = {g_buffer->data() + (i * 4096 * 3) % (kBufferSize - kEach), kEach};
  }
  for (auto _ : state) {
    ssize_t got = process_vm_readv(g_child, here.data(), count, there.data(), count, 0);
    if (got != static_cast<ssize_t>(count * kEach)) {
      state.SkipWithError(std::strerror(errno));
      return;
    }
    benchmark::DoNotOptimize(local.data());
  }
  state.counters["per_iovec_ns"] =
      benchmark::Counter(static_cast<double>(count), benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
}

// The cheapest system call, for comparison.
void syscall_gettid(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(syscall(SYS_gettid));
}

}  // namespace

BENCHMARK(readv_bytes)
    ->Arg(8)
    ->Arg(64)
    ->Arg(512)
    ->Arg(4096)
    ->Arg(16384)
    ->Unit(benchmark::kNanosecond);
BENCHMARK(readv_iovecs)->Arg(1)->Arg(8)->Arg(64)->Arg(256)->Unit(benchmark::kNanosecond);
BENCHMARK(syscall_gettid)->Unit(benchmark::kNanosecond);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  g_buffer = new std::vector<char>(kBufferSize, 1);
  g_child = fork();
  if (g_child < 0) {
    std::perror("readv_bench: fork");
    return 1;
  }
  if (g_child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    // Own pages (not shared copy-on-write with the parent), like a real target's heap.
    for (size_t i = 0; i < kBufferSize; i += 4096) (*g_buffer)[i] = 2;
    for (;;) pause();
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  kill(g_child, SIGKILL);
  waitpid(g_child, nullptr, 0);
  return 0;
}
