#include "sampling/thread_pauser.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>

#include "common/clock.h"
#include "common/error.h"
#include "process/maps.h"

namespace spyglass::sampling {
namespace {

bool contains(const std::vector<pid_t>& tids, pid_t tid) {
  return std::find(tids.begin(), tids.end(), tid) != tids.end();
}

void erase(std::vector<pid_t>& tids, pid_t tid) {
  tids.erase(std::remove(tids.begin(), tids.end(), tid), tids.end());
}

// Short sleeps between looks when there is no timer, growing to a millisecond. Never a busy
// loop: the sampling thread may run SCHED_FIFO, and spinning could keep the very threads it
// waits for off their CPU.
void nap(double& seconds) {
  timespec ts{0, static_cast<long>(seconds * 1e9)};
  nanosleep(&ts, nullptr);
  seconds = std::min(seconds * 2, 1e-3);
}

// The deadline's signal: its handler does nothing, it only interrupts the tracer's waitid
// (installed without SA_RESTART).
int timer_signal() {
  return SIGRTMIN + 4;
}

void on_timer(int) {}

timespec to_timespec(double seconds) {
  seconds = std::max(seconds, 1e-6);
  auto whole = static_cast<time_t>(seconds);
  return timespec{whole, static_cast<long>((seconds - static_cast<double>(whole)) * 1e9)};
}

}  // namespace

ThreadPauser::ThreadPauser(pid_t pid) : pid_(pid) {
  auto stat = process::read_thread_stat(pid, pid);
  own_child_ = stat && stat->ppid == static_cast<uint64_t>(getpid());
  static std::once_flag installed;
  std::call_once(installed, [] {
    struct sigaction sa {};
    sa.sa_handler = on_timer;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(timer_signal(), &sa, nullptr);
  });
  // Made by the thread that will trace (see pause()): the signal goes to it alone.
  sigevent event{};
  event.sigev_notify = SIGEV_THREAD_ID;
  event.sigev_signo = timer_signal();
  event._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid));
  timer_t timer{};
  if (timer_create(CLOCK_MONOTONIC, &event, &timer) == 0) {
    timer_ = timer;
    has_timer_ = true;
  }
}

ThreadPauser::~ThreadPauser() {
  detach();
  if (has_timer_) timer_delete(static_cast<timer_t>(timer_));
}

void ThreadPauser::arm(double seconds) {
  deadline_ = monotonic_seconds() + seconds;
  if (!has_timer_) return;
  itimerspec spec{};
  spec.it_value = to_timespec(seconds);
  spec.it_interval = to_timespec(1e-3);
  timer_settime(static_cast<timer_t>(timer_), 0, &spec, nullptr);
}

void ThreadPauser::disarm() {
  if (!has_timer_) return;
  itimerspec spec{};
  timer_settime(static_cast<timer_t>(timer_), 0, &spec, nullptr);
}

bool ThreadPauser::exiting_or_gone(pid_t tid) const {
  auto stat = process::read_thread_stat(pid_, tid);
  return !stat || stat->state == 'Z' || stat->state == 'X' || stat->state == 'x';
}

void ThreadPauser::forget(pid_t tid) {
  erase(attached_, tid);
  erase(pending_, tid);
  erase(stopped_, tid);
}

ThreadPauser::Look ThreadPauser::look(pid_t tid) {
  for (int tries = 0; tries < 16; ++tries) {
    siginfo_t info{};
    // Stops only (WSTOPPED, no WEXITED): an exit is never taken here by mistake. A zombie
    // tracee has no stop to report (ECHILD): its exit is looked at below.
    const int stopped = waitid(P_PID, static_cast<id_t>(tid), &info, WSTOPPED | WNOHANG | __WALL);
    if (stopped != 0 && errno == EINTR) continue;
    if (stopped == 0 && info.si_pid == tid) {
      // A ptrace stop's status is the signal with the event above it.
      const int event = (info.si_status >> 8) & 0xff;
      if (event == PTRACE_EVENT_STOP) return Look::kStopped;  // our interrupt (or a group stop)
      // A signal for the thread arrived first: deliver it; the interrupt stays pending.
      const int sig = event == 0 ? info.si_status & 0xff : 0;
      ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<intptr_t>(sig)));
      continue;
    }
    // No stop. Exited? Looked at without being taken (WNOWAIT): the main thread's exit belongs
    // to its parent when that is spyglass (`run`: the reaper in record.cpp waits for it).
    info = {};
    if (waitid(P_PID, static_cast<id_t>(tid), &info, WEXITED | WNOHANG | WNOWAIT | __WALL) != 0) {
      if (errno == EINTR) continue;
      return Look::kGone;  // ECHILD: not (or no longer) traced by us
    }
    if (info.si_pid != tid) return Look::kRunning;
    // A tracee's stops are reported with WEXITED too: one that stopped since the first look is
    // taken by it, on the next turn.
    if (info.si_code == CLD_TRAPPED || info.si_code == CLD_STOPPED) continue;
    // A traced thread stays a zombie until its tracer reaps it; the main thread's exit is
    // reported only once every other thread is reaped. Reaping the main thread of a process
    // that is not spyglass's child hands it over to its own parent.
    if (tid != pid_ || !own_child_) {
      while (waitid(P_PID, static_cast<id_t>(tid), &info, WEXITED | WNOHANG | __WALL) != 0 &&
             errno == EINTR) {
      }
    }
    return Look::kGone;
  }
  return Look::kRunning;
}

ThreadPauser::Look ThreadPauser::wait_for(pid_t tid) {
  double sleep = 2e-6;
  for (;;) {
    const Look seen = look(tid);
    if (seen != Look::kRunning || monotonic_seconds() >= deadline_) return seen;
    if (has_timer_) {
      // Until it has a stop or an exit to report (looked at, not taken), or the timer's signal.
      siginfo_t info{};
      if (waitid(P_PID, static_cast<id_t>(tid), &info, WSTOPPED | WEXITED | WNOWAIT | __WALL) !=
              0 &&
          errno != EINTR) {
        return Look::kGone;
      }
    } else {
      nap(sleep);
    }
  }
}

size_t ThreadPauser::pause() {
  stopped_.clear();
  size_t unpaused = 0;
  const std::vector<pid_t> threads = process::list_threads(pid_);
  if (threads.empty()) {
    throw Error(ErrorKind::kNoSuchProcess, fmt::format("process {} has exited", pid_));
  }
  // A traced thread stays listed until spyglass reaps it: one no longer listed is gone.
  for (pid_t tid : std::vector<pid_t>(attached_)) {
    if (!std::binary_search(threads.begin(), threads.end(), tid)) forget(tid);
  }
  for (pid_t tid : threads) {
    if (contains(attached_, tid)) continue;
    if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
      const int err = errno;
      // ESRCH: it ended meanwhile; EPERM from a thread that is exiting (a zombie cannot be
      // traced) or gone: skipped for this sample, like one that ended.
      if (err == ESRCH || (err == EPERM && exiting_or_gone(tid))) {
        ++unpaused;
        continue;
      }
      throw Error(ErrorKind::kPermission,
                  fmt::format("--blocking: cannot pause thread {} of process {}: {}", tid, pid_,
                              std::strerror(err)));
    }
    attached_.push_back(tid);
  }
  // The main thread last: its exit is reported only after every other thread's is reaped, so
  // that an exit of the whole process is seen in one pass.
  std::stable_partition(attached_.begin(), attached_.end(), [&](pid_t t) { return t != pid_; });
  std::vector<pid_t> waiting;
  for (pid_t tid : std::vector<pid_t>(attached_)) {
    if (contains(pending_, tid)) {  // interrupted at an earlier sample, not stopped since
      waiting.push_back(tid);
      continue;
    }
    if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) {
      // No longer ours to stop (released after its exit, or detached): attached again at the
      // next sample if it is still there.
      forget(tid);
      ++unpaused;
      continue;
    }
    waiting.push_back(tid);
  }
  // Waits until every thread interrupted now has stopped or ended, or the deadline: a thread
  // in uninterruptible sleep stops only when it leaves it, and the main thread of a process
  // that exits never stops (its exit is reported once the other threads are reaped: it comes
  // last). Threads still pending from earlier samples are only looked at.
  arm(kPauseSeconds);
  bool main_exited = false;
  std::vector<pid_t> late;
  for (pid_t tid : waiting) {
    switch (contains(pending_, tid) ? look(tid) : wait_for(tid)) {
      case Look::kStopped:
        stopped_.push_back(tid);
        erase(pending_, tid);
        break;
      case Look::kGone:  // ended (reaped): nothing left to read, so nothing lost
        forget(tid);
        main_exited |= tid == pid_;
        break;
      case Look::kRunning:
        late.push_back(tid);
        break;
    }
  }
  disarm();
  // Not stopped in time: their stop is taken (and let go) at a later look.
  for (pid_t tid : late) {
    if (!contains(pending_, tid)) pending_.push_back(tid);
  }
  unpaused += late.size();
  // The main thread not stopped: the process may have exited (a zombie main thread, its exit
  // not reported while other threads remain).
  if (main_exited || (!contains(stopped_, pid_) && exiting_or_gone(pid_))) {
    throw Error(ErrorKind::kNoSuchProcess, fmt::format("process {} has exited", pid_));
  }
  return unpaused;
}

void ThreadPauser::resume() {
  for (pid_t tid : stopped_) ptrace(PTRACE_CONT, tid, nullptr, nullptr);
  stopped_.clear();
  // Threads a pause gave up on that have stopped since: let them go now, not a sample later.
  for (pid_t tid : std::vector<pid_t>(pending_)) {
    switch (look(tid)) {
      case Look::kStopped:
        ptrace(PTRACE_CONT, tid, nullptr, nullptr);
        erase(pending_, tid);
        break;
      case Look::kGone:
        forget(tid);
        break;
      case Look::kRunning:
        break;
    }
  }
}

void ThreadPauser::detach() {
  // PTRACE_DETACH needs a stopped tracee: stop each (unless already), then let it go. Threads
  // that ended are reaped on the way (the main thread last, see pause()).
  std::stable_partition(attached_.begin(), attached_.end(), [&](pid_t t) { return t != pid_; });
  std::vector<pid_t> waiting;
  for (pid_t tid : attached_) {
    if (contains(stopped_, tid)) {
      ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
    } else if (contains(pending_, tid) || ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) == 0) {
      waiting.push_back(tid);
    }
  }
  arm(kDetachSeconds);
  for (pid_t tid : waiting) {
    Look seen = look(tid);
    // A zombie main thread whose exit waits for threads spyglass does not trace has nothing to
    // let go: the kernel hands it over to its parent when spyglass exits.
    if (seen == Look::kRunning && !(tid == pid_ && exiting_or_gone(tid))) seen = wait_for(tid);
    if (seen == Look::kStopped) ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
  }
  disarm();
  attached_.clear();
  stopped_.clear();
  pending_.clear();
}

}  // namespace spyglass::sampling
