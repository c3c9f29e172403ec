// Sampling: a thread that walks the stacks of one or more processes at a set rate
// (Sampler), and what each process's samples gathered (ProcessSampler).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cpython/target.h"
#include "sampling/profile.h"
#include "sampling/thread_state.h"

namespace spyglass::sampling {

class ThreadPauser;

enum class Mode { kWall, kCpu, kGil };
const char* mode_name(Mode mode);
// Throws Error(kUsage) for anything but wall, cpu, gil.
Mode parse_mode(const std::string& text);

struct SamplerOptions {
  double rate_hz = 1000;
  Mode mode = Mode::kWall;
  bool blocking = false;  // pause the target's threads for each sample
  bool realtime = true;   // ask for real-time scheduling when permitted
  // Between samples, keep the sampling thread off the CPU of the thread holding the GIL
  // (sampling/placement.h). Off: it wakes where the kernel puts it (--any-cpu).
  bool keep_off_gil_cpu = true;
  bool lines = true;  // keep line numbers in the stored frames
  // Wall mode: every suspended asyncio task is a stack of its own (cpython/tasks.h), so a
  // coroutine's call counts while it awaits. Off: only what threads run (--no-async).
  bool async_tasks = true;
  // With async_tasks: read who awaits each suspended task, so trees and exports draw it under
  // its awaiter (Profile::drawn). Figures never depend on it.
  bool link_tasks = true;
  size_t timeline_spans = 200'000;  // the timeline's bound (0: none; only timeline formats use it)
};

// Raises the calling thread's priority: SCHED_FIFO at `fifo_priority` when `realtime` and
// permitted, else nice -20 when permitted. Returns what it got: "SCHED_FIFO", "nice -20" or
// "normal".
std::string raise_thread_priority(bool realtime, int fifo_priority);

constexpr double kMinRateHz = 1;
constexpr double kMaxRateHz = 1'000'000;
// Throws Error(kUsage) when the rate is outside [kMinRateHz, kMaxRateHz].
void check_rate(double hz);

// How long a reading may take before its sample counts as slow at `rate_hz`: 10 ms, or two
// periods at rates under 200 Hz (a sample stands for a whole period anyway). The walks of the
// test suite's real programs take 10-200 µs; every one found longer than 10 ms was a walk led
// astray through freed memory (a thread that had just ended).
double slow_read_seconds(double rate_hz);

struct SamplerStatus {
  bool running = false;
  bool target_exited = false;
  double rate_hz = 0;           // requested
  double achieved_rate_hz = 0;  // over the profiled time
  double profiled_seconds = 0;
  uint64_t samples = 0;       // sampling rounds
  uint64_t late = 0;          // rounds taken more than half a period after their deadline
  uint64_t missed = 0;        // deadlines skipped entirely
  uint64_t failed_walks = 0;  // rounds whose walk did not check out
  // Rounds whose reading took longer than slow_read_seconds(): each stands for that whole time
  // with what it read, and what ran meanwhile may have been elsewhere.
  uint64_t slow_samples = 0;
  double slow_seconds = 0;  // their reading time, summed
  uint64_t thread_samples = 0;
  uint64_t reread_stacks = 0;        // thread stacks read again: caught mid-change (see walker.cpp)
  uint64_t incomplete_stacks = 0;    // thread stacks kept incomplete (still torn, or too deep)
  uint64_t returned_frames = 0;      // 3.8-3.10: newest frames already returned, read from caller
  uint64_t frames_read_again = 0;    // 3.8-3.10: frames whose copy looked finished, read live
  uint64_t returning_frames = 0;     // 3.12+: newest functions caught returning, counted to them
  uint64_t reread_thread_lists = 0;  // thread lists read again after breaking off mid-change
  uint64_t cut_thread_lists = 0;     // ... still cut after the last retry: later threads lost
  // --blocking: threads a sample could not pause (exiting: ESRCH or EPERM; or not stopped in
  // time), summed over the samples; those samples read them running.
  uint64_t unpaused_threads = 0;
  // Async-aware sampling (wall mode with SamplerOptions::async_tasks): suspended tasks'
  // stacks recorded, tasks found but not readable (another class than asyncio's C task, or
  // damaged), chains of coroutines that broke off (a partial stack), task lists cut short.
  bool async_aware = false;
  uint64_t task_samples = 0;
  uint64_t unreadable_tasks = 0;
  uint64_t cut_task_chains = 0;
  uint64_t cut_task_lists = 0;
  // Who awaits whom (cpython/task_links.h), for drawing only: task stacks drawn under an
  // awaiting task's frames, and records of links that could not be read (those tasks are
  // drawn as roots; their figures are the same either way).
  uint64_t linked_task_samples = 0;
  uint64_t unreadable_task_links = 0;
  std::string tasks_source;  // where the tasks are read from (TaskReader::describe)
  // Reading the target's memory (the walks' reads, see process/prefetch.h): system calls made,
  // reads asked for, and of those the ones the prefetch served.
  uint64_t read_calls = 0;
  uint64_t memory_reads = 0;
  uint64_t prefetched_reads = 0;
  // Code objects the walks met: read (their header checked) and, 3.12+, known unchanged by
  // the counter that numbers new ones, without a read (cpython/code_cache.h).
  uint64_t code_reads = 0;
  uint64_t code_proofs = 0;
  // Readings of that counter that could not be right (it ran backwards, or a code object's
  // co_version was past it: one made during the walk, or not the counter), and whether there
  // were enough for it to be no longer trusted (every code object met is read from then on).
  uint64_t counter_faults = 0;
  bool counter_off = false;
  // Thread stacks the walks read, and those known unchanged without a read: no other thread
  // took the GIL since they were read (cpython/walker.h).
  uint64_t stacks_read = 0;
  uint64_t unchanged_stacks = 0;
  double mean_walk_us = 0;  // time to walk all threads, per round
  double mean_read_us = 0;  // of which reading the target's memory (system calls)
  // CPU time of the sampling thread while it sampled (kernel time of its reads included):
  // spyglass's own cost, without start-up (symbols, the first walks) or output.
  double sampler_cpu_seconds = 0;
  std::string scheduling;  // "SCHED_FIFO", "nice -20", "normal"
  // Times the sampling thread gave up real-time priority, needing a whole core (see
  // Sampler::run).
  uint64_t realtime_given_up = 0;
  std::string error;  // why sampling stopped, when it stopped on an error
  Mode mode = Mode::kWall;
};

// One thread of the target as a walk found it, held by value (a walk's own frames point into
// the walker's cache, which the sampling thread goes on changing).
struct ThreadSnapshot {
  uint64_t thread_id = 0;
  pid_t native_id = 0;
  std::string name;
  bool holds_gil = false;
  bool gil_known = false;
  bool truncated = false;
  std::vector<FrameInfo> frames;  // innermost first
};

// What changing the mode or the rate did to the results: samples of one mode and rate are never
// mixed with another's. The run so far is kept apart, and a run kept earlier with the new
// mode and rate goes on.
struct RunSwitch {
  bool changed = false;          // false: already that mode and rate
  uint64_t kept_samples = 0;     // samples of the run left, kept apart (0: it had none)
  uint64_t resumed_samples = 0;  // samples of the run that goes on (0: a new one)
};

// A run kept apart, for the results to mention.
struct KeptRun {
  Mode mode = Mode::kWall;
  double rate_hz = 0;
  uint64_t samples = 0;
  double profiled_seconds = 0;
};

// One process's side of sampling: what its samples gathered (profile and counts), its runs
// kept apart by mode and rate, and the reading of its stacks. It has no thread of its own: a
// Sampler drives it, alone or beside other processes (--subprocesses), so that one sampling
// thread serves them all.
class ProcessSampler {
 public:
  // `origin`: the monotonic time the timeline counts from (shared by every process of a run).
  ProcessSampler(cpython::Target& target, const SamplerOptions& options, double origin);
  ProcessSampler(const ProcessSampler&) = delete;
  ProcessSampler& operator=(const ProcessSampler&) = delete;
  pid_t pid() const { return target_.pid(); }
  cpython::Target& target() { return target_; }

  // --- The sampling thread's side (Sampler) -----------------------------------------------
  // Reads every stack of the process now, pausing its threads around the reading when
  // `pauser` is given. Throws Error(kNoSuchProcess) when the process has gone.
  void collect(ThreadPauser* pauser);
  // Records what collect() read: a sample begun at `start`, standing for `weight` seconds
  // (see Sampler::run), that took `walk_seconds` to read; `late`, `missed`: the round's own.
  void record(double start, double weight, double walk_seconds, bool late, uint64_t missed);
  // Whether the next collect()s look where the GIL holder runs (see StackWalker::
  // want_holder_cpu): the sampler asks about once a millisecond.
  void want_gil_holder_cpu(bool wanted);
  // The CPU the thread that held the GIL at the last collect() runs on (or last ran on); -1
  // when no thread held it, or it was not known. The walk reads it where it can (glibc's
  // rseq area, when asked); else it is read from /proc, only when `may_read_proc`.
  int gil_holder_cpu(bool may_read_proc);
  // The sampling thread's CPU time spent on this process (its share of the thread's).
  void add_cpu_seconds(double seconds);
  void set_running(bool running, const std::string& scheduling);
  // The sampling thread gave up real-time priority (SamplerStatus::realtime_given_up).
  void count_realtime_given_up();
  void set_exited();
  void set_error(const std::string& error);
  bool exited() const;

  // --- Everyone else's side (all safe while sampling runs) --------------------------------
  RunSwitch switch_run(Mode mode, double rate_hz);
  std::vector<KeptRun> kept_runs() const;
  void reset(double origin);
  SamplerStatus status() const;
  Profile snapshot() const;
  // Every thread's stack now: handed over by the sampling thread while it runs (the target's
  // reader is not shared between threads), read here when it does not.
  bool threads_now(std::vector<ThreadSnapshot>& out, double timeout_seconds);

 private:
  void hand_over_threads();  // mutex_ held
  // `path_key` names whose previous stack this one most likely shares (a thread state or task).
  StackId intern_stack(uint64_t path_key, const std::vector<cpython::Frame>& frames);
  // Draws each task of tasks_ under its awaiter (fills task_prefixes_, task_through_children_).
  void draw_tasks_under_awaiters();

  cpython::Target& target_;
  const SamplerOptions options_;
  // Read by collect() without the lock, written by switch_run.
  std::atomic<Mode> mode_;
  std::atomic<double> rate_hz_;
  mutable std::mutex mutex_;  // guards profile_, stats_ and the runs kept apart
  std::condition_variable threads_cv_;
  std::atomic<bool> threads_wanted_{false};
  std::vector<ThreadSnapshot> threads_handed_;
  uint64_t threads_generation_ = 0;
  Profile profile_;
  SamplerStatus stats_;
  double walk_seconds_ = 0;
  double read_seconds_ = 0;
  double origin_ = 0;
  // Threads' /proc files (cpu mode's states, the GIL holder's CPU): kept open between samples,
  // those of ended threads closed every so many collects.
  ThreadStateReader thread_states_;
  uint64_t collects_ = 0;

  // What collect() read, for record().
  struct Collected {
    bool ok = false;
    Mode mode = Mode::kWall;
    bool with_tasks = false;
    size_t unpaused = 0;
    double read_seconds = 0;
    uint64_t read_calls = 0, memory_reads = 0, prefetched_reads = 0;
    uint64_t code_reads = 0, code_proofs = 0, counter_faults = 0;
    bool counter_off = false;
    uint64_t stacks_read = 0, unchanged_stacks = 0;
    uint64_t retries = 0, returned = 0, frames_again = 0, returning = 0, list_retries = 0,
             cut_lists = 0;
    uint64_t unreadable_tasks = 0, cut_task_chains = 0, cut_task_lists = 0;
    uint64_t unreadable_links = 0;
  } collected_;
  std::vector<int> running_tids_;
  // Frame interning: (code id, line) -> FrameId; per thread, the last stack seen.
  std::unordered_map<uint64_t, FrameId> frame_ids_;
  // Per thread state, the path of the last stack interned, root first: the next stack of that
  // thread mostly shares it (only the top of a deep stack moves), so only the frames past the
  // shared part are looked up.
  struct InternedPath {
    std::vector<uint64_t> keys;  // (code id << 32 | line)
    std::vector<StackId> ids;
  };
  std::unordered_map<uint64_t, InternedPath> paths_;
  std::vector<cpython::ThreadStack> stacks_;
  std::vector<cpython::TaskStack> tasks_;
  std::vector<std::vector<uint64_t>> awaited_by_;  // per task of tasks_: who awaits it
  // Per task of tasks_, while a sample is recorded: its own stack and what is drawn above it.
  std::vector<StackId> task_stacks_;
  std::vector<StackId> task_prefixes_;
  std::vector<char> task_through_children_;
  std::vector<char> include_;  // per stack of stacks_: counted in this mode (kept: no malloc)
  std::unordered_map<int, std::string> names_by_tid_;
  // Runs of other modes or rates (see RunSwitch), with what status() needs of each.
  struct Stash {
    Profile profile;
    SamplerStatus stats;
    double walk_seconds = 0, read_seconds = 0;
  };
  std::vector<Stash> kept_;
};

// The sampling engine: one thread that samples one or more processes at a set rate, with
// absolute deadlines, crediting each sample with the real time since the previous one. The
// processes are ProcessSamplers owned elsewhere; they can be added while sampling runs.
class Sampler {
 public:
  explicit Sampler(SamplerOptions options);
  ~Sampler();
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  // Sampled from the next round on. The process must outlive the sampler (or its removal
  // by the sampler itself when the process exits).
  void add(ProcessSampler& process);
  // Whether an empty set of processes ends the run. Following a process's children, the set
  // may be empty for a while (a shell starting Python); told when nothing more can come.
  void set_more_may_come(bool more);

  void start();  // no-op when running
  void stop();   // waits for the sampling thread; no-op when stopped
  bool running() const { return running_; }
  // Both take effect at the next sample, also while running.
  RunSwitch set_rate(double hz);
  RunSwitch set_mode(Mode mode);
  Mode mode() const { return mode_; }
  double rate_hz() const { return rate_hz_; }
  void reset();  // forget everything gathered, kept runs too
  // The run's own figures: running, exited, rate and mode asked, the thread's scheduling and
  // CPU time. (Samples, time profiled and the rest come from each ProcessSampler.)
  SamplerStatus status() const;
  double origin() const { return origin_; }
  // Called from the sampling thread once, when every process has exited and no more can come.
  void on_exit(std::function<void()> callback);
  // Waits until the sampler stops by itself (targets exited) or `seconds` pass; true if stopped.
  bool wait_stopped(double seconds);

 private:
  void run();
  RunSwitch switch_all(Mode mode, double rate_hz);  // mutex_ held
  SamplerOptions options_;
  std::atomic<double> rate_hz_;
  std::atomic<Mode> mode_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stop_requested_{false};
  std::thread thread_;
  mutable std::mutex mutex_;  // guards the fields below and the set of processes
  std::condition_variable stopped_cv_;
  std::vector<ProcessSampler*> added_;  // taken in by the sampling thread at its next round
  std::vector<ProcessSampler*> all_;    // every process ever added
  bool more_may_come_ = false;
  SamplerStatus stats_;  // the run's own figures (see status())
  double origin_ = 0;    // monotonic seconds the timeline counts from
  std::function<void()> on_exit_;
};

}  // namespace spyglass::sampling
