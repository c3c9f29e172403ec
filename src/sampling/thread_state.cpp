#include "sampling/thread_state.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <string_view>

#include "common/clock.h"
#include "process/maps.h"

namespace spyglass::sampling {
namespace {

// Longer than the run time's update interval on a CPU-bound thread: a tick (4 ms at HZ=250,
// 10 ms at HZ=100).
constexpr double kRunTimeGraceSeconds = 0.012;

void close_files(int stat, int schedstat) {
  if (stat >= 0) ::close(stat);
  if (schedstat >= 0) ::close(schedstat);
}

}  // namespace

ThreadStateReader::~ThreadStateReader() {
  for (auto& [tid, files] : files_) close_files(files.stat, files.schedstat);
}

bool ThreadStateReader::ran_lately(Files& files) {
  if (files.schedstat < 0) return true;
  // "run_ns wait_ns timeslices\n": nanoseconds on a CPU, nanoseconds queued for one, and the
  // times it was switched onto one.
  char buf[128];
  ssize_t n = ::pread(files.schedstat, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return true;
  buf[n] = '\0';
  char* end = nullptr;
  uint64_t run_ns = std::strtoull(buf, &end, 10);
  if (end == buf) return true;
  char* wait_end = nullptr;
  std::strtoull(end, &wait_end, 10);
  char* switches_end = nullptr;
  uint64_t switches_in = std::strtoull(wait_end, &switches_end, 10);
  if (switches_end == wait_end) switches_in = files.switches_in;  // no third field: run time only
  double now = monotonic_seconds();
  if (files.last_moved < 0 || run_ns != files.run_ns || switches_in != files.switches_in) {
    files.run_ns = run_ns;
    files.switches_in = switches_in;
    files.last_moved = now;
    return true;
  }
  return now - files.last_moved <= kRunTimeGraceSeconds;
}

std::optional<process::ThreadStat> ThreadStateReader::read_stat(pid_t tid, Files*& files) {
  if (tid <= 0) return std::nullopt;
  auto it = files_.find(tid);
  if (it == files_.end()) {
    Files opened;
    opened.stat =
        ::open(fmt::format("/proc/{}/task/{}/stat", pid_, tid).c_str(), O_RDONLY | O_CLOEXEC);
    if (opened.stat < 0) return std::nullopt;
    opened.schedstat =
        ::open(fmt::format("/proc/{}/task/{}/schedstat", pid_, tid).c_str(), O_RDONLY | O_CLOEXEC);
    it = files_.emplace(tid, opened).first;
  }
  char buf[1024];  // a line reaches past 300 bytes; the processor field is its 39th
  ssize_t n = ::pread(it->second.stat, buf, sizeof(buf), 0);
  if (n <= 0) {
    close_files(it->second.stat, it->second.schedstat);
    files_.erase(it);
    return std::nullopt;
  }
  files = &it->second;
  return process::parse_stat(std::string_view(buf, static_cast<size_t>(n)));
}

char ThreadStateReader::state(pid_t tid) {
  Files* files = nullptr;
  auto stat = read_stat(tid, files);
  if (!stat) return '?';
  // Read schedstat at every look, whatever the state, so the next look compares with now.
  bool ran = ran_lately(*files);
  return stat->state == 'R' && !ran ? 'W' : stat->state;
}

int ThreadStateReader::cpu(pid_t tid) {
  Files* files = nullptr;
  auto stat = read_stat(tid, files);
  return stat ? stat->processor : -1;
}

void ThreadStateReader::forget_missing() {
  for (auto it = files_.begin(); it != files_.end();) {
    char buf[64];
    if (::pread(it->second.stat, buf, sizeof(buf), 0) <= 0) {
      close_files(it->second.stat, it->second.schedstat);
      it = files_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace spyglass::sampling
