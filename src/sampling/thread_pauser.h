// --blocking: pauses every thread of the target for a sample (a consistent snapshot) with
// PTRACE_SEIZE + PTRACE_INTERRUPT, and lets them go right after. If spyglass dies, the kernel
// detaches it and the threads run on: the target is never left stopped.
//
// Never waits for ever: every wait is a non-blocking look (WNOHANG) repeated until a deadline.
// A traced thread that exits stays a zombie until its tracer reaps it, and the main thread's
// exit is not reported while another thread remains (reaped or not): a blocking wait on the
// main thread of a process that exits with threads still alive never returned. Threads that
// exit are reaped here (the main thread too, unless spyglass is its parent: then its exit is
// the parent's); threads that are exiting or gone are skipped and counted.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <vector>

namespace spyglass::sampling {

class ThreadPauser {
 public:
  explicit ThreadPauser(pid_t pid);
  ~ThreadPauser();  // detaches from every thread
  ThreadPauser(const ThreadPauser&) = delete;
  ThreadPauser& operator=(const ThreadPauser&) = delete;
  // Stops every thread it can (attaching to new ones) and returns how many threads of the
  // process it could not stop for this sample: exiting (ESRCH, or EPERM from a thread that is
  // exiting or gone), or not stopped within the pause's deadline (those are let go once they
  // stop). Threads that ended since the last sample are reaped, not counted: nothing of them is
  // left to read. Must be called from the thread that made the pauser, which also calls
  // resume() and detach(): ptrace belongs to one tracer thread. Throws Error(kPermission) when a
  // live thread may not be traced, and Error(kNoSuchProcess) when the process has exited (its
  // main thread has).
  size_t pause();
  void resume();
  void detach();

  // How long pause() waits for threads to stop, and detach() for them to stop to be let go.
  static constexpr double kPauseSeconds = 0.05;
  static constexpr double kDetachSeconds = 2.0;

 private:
  enum class Look { kStopped, kRunning, kGone };
  // One non-blocking look at `tid` after an interrupt: its stop (taken), its exit (reaped when
  // it is ours to reap), or nothing yet. A signal that arrived first is delivered.
  Look look(pid_t tid);
  // Looks until `tid` stops or exits, or the deadline set by arm() passes: sleeps in waitid
  // until the thread has something to report, woken by the timer at the deadline.
  Look wait_for(pid_t tid);
  void arm(double seconds);
  void disarm();
  void forget(pid_t tid);
  bool exiting_or_gone(pid_t tid) const;
  pid_t pid_;
  bool own_child_ = false;  // the target is spyglass's child (`run`): its exit is the reaper's
  std::vector<pid_t> attached_;
  std::vector<pid_t> stopped_;
  std::vector<pid_t> pending_;  // interrupted, not stopped yet when a pause gave up on them
  // A timer that signals the tracer thread at the deadline (and every millisecond after, so
  // that a wait entered just after a signal is woken too): no wait outlives the deadline.
  void* timer_ = nullptr;  // timer_t
  bool has_timer_ = false;
  double deadline_ = 0;
};

}  // namespace spyglass::sampling
