// --blocking: pauses every thread of the target for a sample (a consistent snapshot) with
// PTRACE_SEIZE + PTRACE_INTERRUPT, and lets them go right after. If spyglass dies, the kernel
// detaches it and the threads run on: the target is never left stopped.
#pragma once

#include <sys/types.h>

#include <vector>

namespace spyglass::sampling {

class ThreadPauser {
 public:
  explicit ThreadPauser(pid_t pid) : pid_(pid) {}
  ~ThreadPauser();  // detaches from every thread
  ThreadPauser(const ThreadPauser&) = delete;
  ThreadPauser& operator=(const ThreadPauser&) = delete;
  // Stops every thread (attaching to new ones). Must be called from the thread that will call
  // resume() and detach(): ptrace belongs to one tracer thread. Throws Error(kPermission) when
  // the target may not be traced.
  void pause();
  void resume();
  void detach();

 private:
  bool wait_stopped(pid_t tid);
  pid_t pid_;
  std::vector<pid_t> attached_;
  std::vector<pid_t> stopped_;
};

}  // namespace spyglass::sampling
