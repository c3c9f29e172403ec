// Whether a thread is running on a CPU, from /proc/PID/task/TID/stat and schedstat, with the
// files kept open so each look is one pread per file.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <unordered_map>

#include "process/maps.h"

namespace spyglass::sampling {

class ThreadStateReader {
 public:
  explicit ThreadStateReader(pid_t pid) : pid_(pid) {}
  ~ThreadStateReader();
  ThreadStateReader(const ThreadStateReader&) = delete;
  ThreadStateReader& operator=(const ThreadStateReader&) = delete;
  // The state letter ('R' running, 'S' sleeping, ...), '?' when unknown. The kernel's 'R' also
  // means "runnable, waiting for a CPU": a thread whose CPU time (schedstat's run time) has not
  // moved for longer than a few scheduler ticks reads 'W' instead, so that on a busy machine a
  // thread woken from a sleep and still queued for a CPU is not counted as running. (The run
  // time of a thread on a CPU only moves at ticks and switches, hence the grace period.) A
  // thread switched onto a CPU since the last look ran lately too: schedstat's count of
  // switches-in moves at once, where its run time waits for the next tick (4 ms at HZ=250).
  // Without it, a thread that slept longer than the grace period read as queued for the first
  // tick of each run: a function run after a 20 ms sleep read 12 % low in cpu mode.
  char state(pid_t tid);
  // The CPU the thread runs on or last ran on (stat's processor field); -1 when unknown.
  int cpu(pid_t tid);
  // Closes files of threads that are gone.
  void forget_missing();

 private:
  struct Files {
    int stat = -1;
    int schedstat = -1;  // -1 when the kernel has none (no CONFIG_SCHED_INFO)
    uint64_t run_ns = 0;
    uint64_t switches_in = 0;  // schedstat's third field: times the thread got a CPU
    double last_moved = -1;    // monotonic seconds of the last look that saw either move
  };
  // True when the thread ran on a CPU lately (or when that cannot be told).
  static bool ran_lately(Files& files);
  // The thread's stat file, opened at its first look and kept; `files` set to its entry.
  // nullopt when it cannot be read (the thread has ended: its files are closed).
  std::optional<process::ThreadStat> read_stat(pid_t tid, Files*& files);

  pid_t pid_;
  std::unordered_map<pid_t, Files> files_;
};

}  // namespace spyglass::sampling
