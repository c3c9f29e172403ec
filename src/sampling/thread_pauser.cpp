#include "sampling/thread_pauser.h"

#include <fmt/format.h>
#include <sys/ptrace.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "process/maps.h"

namespace spyglass::sampling {

ThreadPauser::~ThreadPauser() { detach(); }

// Waits for `tid`'s ptrace stop. Events are first looked at without being consumed (WNOWAIT):
// the target's main thread may also be spyglass's own child (`run`), whose exit belongs to the
// thread reaping it, never to the pauser (consuming it would leave the reaper waiting forever).
bool ThreadPauser::wait_stopped(pid_t tid) {
  for (int tries = 0; tries < 100; ++tries) {
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(tid), &info, WSTOPPED | WEXITED | WNOWAIT | __WALL) != 0) {
      if (errno == EINTR) continue;
      return false;  // gone
    }
    if (info.si_code != CLD_TRAPPED && info.si_code != CLD_STOPPED) {
      // Exited or killed: a thread other than the main one is ours to reap; the main thread's
      // exit is left for its parent.
      if (tid != pid_) waitid(P_PID, static_cast<id_t>(tid), &info, WEXITED | __WALL);
      return false;
    }
    int status = 0;
    if (waitpid(tid, &status, WUNTRACED | __WALL) != tid || !WIFSTOPPED(status)) continue;
    int sig = WSTOPSIG(status);
    int event = status >> 16;
    if (event == PTRACE_EVENT_STOP) return true;  // our interrupt (or a group stop)
    // A signal for the thread arrived first: deliver it and wait again for our stop.
    ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<intptr_t>(sig)));
  }
  return false;
}

void ThreadPauser::pause() {
  stopped_.clear();
  for (pid_t tid : process::list_threads(pid_)) {
    if (std::find(attached_.begin(), attached_.end(), tid) == attached_.end()) {
      if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
        if (errno == ESRCH) continue;  // the thread ended meanwhile
        int err = errno;
        throw Error(ErrorKind::kPermission,
                    fmt::format("--blocking: cannot pause thread {} of process {}: {}", tid, pid_,
                                std::strerror(err)));
      }
      attached_.push_back(tid);
    }
  }
  for (pid_t tid : attached_) {
    if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) == 0) stopped_.push_back(tid);
  }
  std::vector<pid_t> ready;
  for (pid_t tid : stopped_) {
    if (wait_stopped(tid)) ready.push_back(tid);
  }
  // Threads that ended are forgotten.
  std::vector<pid_t> alive;
  for (pid_t tid : attached_) {
    if (std::find(ready.begin(), ready.end(), tid) != ready.end()) alive.push_back(tid);
  }
  attached_ = alive;
  stopped_ = std::move(ready);
}

void ThreadPauser::resume() {
  for (pid_t tid : stopped_) ptrace(PTRACE_CONT, tid, nullptr, nullptr);
  stopped_.clear();
}

void ThreadPauser::detach() {
  // PTRACE_DETACH needs a stopped tracee: stop each (unless already), then let it go.
  for (pid_t tid : attached_) {
    bool is_stopped = std::find(stopped_.begin(), stopped_.end(), tid) != stopped_.end();
    if (!is_stopped) {
      if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0 || !wait_stopped(tid)) continue;
    }
    ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
  }
  attached_.clear();
  stopped_.clear();
}

}  // namespace spyglass::sampling
