// The processes a run samples: one, or with --subprocesses a process and every Python process
// it starts (and they start), found at the start and while sampling runs, each read with its
// own interpreter's layout, all sampled by one sampling thread. A process that exits keeps its
// results; one that is not Python, or cannot be read, is listed with the reason, never an
// error for the whole run.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cpython/target.h"
#include "sampling/sampler.h"

namespace spyglass::sampling {

// One process of the set, as listed to the user.
struct ProcessEntry {
  pid_t pid = 0;
  std::string command;         // its command line
  std::string python_version;  // empty when it is not read as Python
  // "profiling", "stopped", "exited", "ran another program", or why it is not read: "not
  // Python", "cannot be read: ..."
  std::string state;
  bool sampled = false;  // read as Python: has a status and results of its own
  // How long it had been running when it was first read (its time before that is not in the
  // results): 0 for the processes there at the start.
  double found_after_seconds = 0;
  SamplerStatus status;
};

class ProcessSet {
 public:
  // Without `follow`, the process alone, attached here (Error with one clear line when it
  // cannot be). With it, also its descendants; the process itself may be something else than
  // Python (a shell, a launcher), but must exist and be ours to read.
  ProcessSet(pid_t root, const SamplerOptions& options, bool follow);
  ~ProcessSet();
  ProcessSet(const ProcessSet&) = delete;
  ProcessSet& operator=(const ProcessSet&) = delete;

  pid_t root() const { return root_; }
  bool follow() const { return follow_; }
  // The Python version of the processes read ("3.12.1"; "3.12.1, 3.11.7" when they differ;
  // "none yet" when no Python process was found yet).
  std::string python_version() const;

  // --- Sampling (all safe while sampling runs) -------------------------------------------
  void start() { sampler_.start(); }
  void stop() { sampler_.stop(); }
  bool running() const { return sampler_.running(); }
  RunSwitch set_rate(double hz) { return sampler_.set_rate(hz); }
  RunSwitch set_mode(Mode mode) { return sampler_.set_mode(mode); }
  void reset() { sampler_.reset(); }
  bool wait_stopped(double seconds) { return sampler_.wait_stopped(seconds); }
  void on_exit(std::function<void()> callback) { sampler_.on_exit(std::move(callback)); }
  // Every process's figures together: counts summed; samples, time profiled, late and missed
  // those of the process sampled longest.
  SamplerStatus status() const;
  // The runs kept apart by mode and rate (the same for every process).
  std::vector<KeptRun> kept_runs() const;

  // --- What was gathered ------------------------------------------------------------------
  // Every process's profile in one. `rooted`: each process's stacks open with a frame of
  // its own (pid and command line; command line alone with `merge_identical`, so identical
  // workers are drawn as one), for trees and exports; results read the profile without.
  Profile snapshot(bool rooted = false, bool merge_identical = false) const;
  std::vector<ProcessEntry> processes() const;
  // One sampled process's own profile and status (nullopt: no such process in the set).
  std::optional<Profile> snapshot_of(pid_t pid) const;
  std::optional<SamplerStatus> status_of(pid_t pid) const;
  // Every thread's stack now, of process `pid` (0: the first process read).
  bool threads_now(pid_t pid, std::vector<ThreadSnapshot>& out, double timeout_seconds);

  // How often a followed family is looked at for new processes.
  static constexpr double kScanSeconds = 0.02;
  // How long a new process that is not readable as Python yet (starting up) is tried again.
  static constexpr double kStartupSeconds = 5.0;

 private:
  struct Member {
    pid_t pid = 0;
    uint64_t identity = 0;  // process::exec_identity when first seen
    std::string command;
    double first_seen = 0;
    std::unique_ptr<cpython::Target> target;
    std::unique_ptr<ProcessSampler> sampler;
    std::string not_read;    // why it is not read (empty while it may still be)
    double found_after = 0;  // see ProcessEntry::found_after_seconds
    bool replaced = false;   // it ran another program since: a new member has the pid
  };
  // Looks for new processes in the family (the process's own children only while it lives),
  // and for members that ran another program.
  void scan(bool root_alive);
  void watch();
  // Tries to read `member` as Python; the member is not yet in members_.
  void try_attach(Member& member, double now);
  Member* find(pid_t pid);              // the newest member with that pid; mutex_ held
  const Member* first_sampled() const;  // mutex_ held

  const pid_t root_;
  const bool follow_;
  double started_ = 1e300;  // when the first look began: processes seen later are new
  SamplerOptions options_;
  mutable std::mutex mutex_;  // guards members_ (the list; each member's objects are stable)
  std::vector<std::unique_ptr<Member>> members_;
  // After the members: destroyed first, it stops before the processes it samples go.
  Sampler sampler_;
  std::thread watcher_;
  std::mutex watch_mutex_;
  std::condition_variable watch_cv_;
  bool stop_watching_ = false;
};

}  // namespace spyglass::sampling
