// /proc/PID/maps, threads, and per-thread state.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spyglass::process {

struct Mapping {
  uint64_t start = 0;
  uint64_t end = 0;
  bool readable = false, writable = false, executable = false;
  uint64_t offset = 0;  // file offset of `start`
  uint64_t inode = 0;
  std::string path;      // empty for anonymous; "[heap]", "[stack]" etc. kept as is
  bool deleted = false;  // the file was deleted: " (deleted)" is removed from `path`
  bool contains(uint64_t addr) const { return addr >= start && addr < end; }
  uint64_t size() const { return end - start; }
};

// Parses the text of a maps file. Malformed lines are skipped.
std::vector<Mapping> parse_maps(std::string_view text);
// Reads /proc/PID/maps; throws Error (kNoSuchProcess / kPermission) when it cannot.
std::vector<Mapping> read_maps(pid_t pid);

// Thread ids of the process (/proc/PID/task). Empty when the process is gone.
std::vector<pid_t> list_threads(pid_t pid);

// The thread ids of a process, for checking one read from its memory (3.8-3.10 keep no kernel
// thread id in a thread state: the walker reads it from the thread's pthread). Listing
// /proc/PID/task takes five system calls: listed every sample on 3.8, they were an eighth of
// the sampler's time at 1 kHz. So the list is kept, listed again when asked about an id it does
// not hold (a thread started since: at most once a walk, so a thread is never seen without its
// id), and once a second (threads that ended).
class ThreadIds {
 public:
  explicit ThreadIds(pid_t pid) : pid_(pid) {}
  // A fixed list, never listed again (for walking captured memory: tests, the fuzzer).
  explicit ThreadIds(std::vector<pid_t> ids) : pid_(0), ids_(std::move(ids)), listed_at_(0) {
    std::sort(ids_.begin(), ids_.end());
  }
  // Before each walk (`now`: monotonic seconds).
  void begin_walk(double now);
  // Whether `tid` is one of the process's threads.
  bool contains(pid_t tid);
  const std::vector<pid_t>& ids() const { return ids_; }
  uint64_t listings() const { return listings_; }

  static constexpr double kMaxAgeSeconds = 1.0;

 private:
  void list(double now);
  pid_t pid_;
  std::vector<pid_t> ids_;  // sorted
  double listed_at_ = -1;
  double walk_started_ = 0;
  bool listed_this_walk_ = false;
  uint64_t listings_ = 0;
};

struct ThreadStat {
  char state = '?';   // R running, S sleeping, D disk, T stopped, Z zombie ...
  uint64_t ppid = 0;  // the process's parent (the same for all its threads)
  uint64_t utime_ticks = 0, stime_ticks = 0;
  // When the process started, in clock ticks after boot (field 22); 0 when the text stops
  // before it.
  uint64_t start_ticks = 0;
  // The CPU it runs on or last ran on (field 39); -1 when the text stops before it.
  int processor = -1;
};
// Parses /proc/PID/task/TID/stat (the comm field may contain spaces and parentheses).
std::optional<ThreadStat> parse_stat(std::string_view text);
std::optional<ThreadStat> read_thread_stat(pid_t pid, pid_t tid);
// /proc/PID/task/TID/comm without the newline, as valid UTF-8; empty when unknown.
std::string read_thread_name(pid_t pid, pid_t tid);
// A thread name as valid UTF-8: the kernel cuts names at 15 bytes, often inside a character
// (CPython 3.14+ gives threads their Python names); a cut character is dropped, any other
// invalid byte becomes '?'.
std::string thread_name_as_utf8(std::string_view name);

// True when /proc/PID exists.
bool process_exists(pid_t pid);
// True when the process exists and has not exited: a zombie still has /proc/PID but no memory
// to read.
bool process_alive(pid_t pid);
// A path inside the process's mount namespace, through /proc/PID/root, so a process in a
// container is read from its own files.
std::string path_in_process_root(pid_t pid, const std::string& path);

}  // namespace spyglass::process
