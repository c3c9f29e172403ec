// Whether a thread is running on a CPU, from /proc/PID/task/TID/stat, with the files kept
// open so each look is one pread.
#pragma once

#include <sys/types.h>

#include <unordered_map>

namespace spyglass::sampling {

class ThreadStateReader {
 public:
  explicit ThreadStateReader(pid_t pid) : pid_(pid) {}
  ~ThreadStateReader();
  ThreadStateReader(const ThreadStateReader&) = delete;
  ThreadStateReader& operator=(const ThreadStateReader&) = delete;
  // The state letter ('R' running, 'S' sleeping, ...), '?' when unknown.
  char state(pid_t tid);
  // Closes files of threads that are gone.
  void forget_missing();

 private:
  pid_t pid_;
  std::unordered_map<pid_t, int> fds_;
};

}  // namespace spyglass::sampling
