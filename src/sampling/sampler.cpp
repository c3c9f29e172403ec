#include "sampling/sampler.h"

#include <fmt/format.h>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "common/clock.h"
#include "common/error.h"
#include "process/maps.h"
#include "sampling/placement.h"
#include "sampling/thread_pauser.h"

namespace spyglass::sampling {
namespace {

// How often the sampling thread looks where the GIL holder runs (see CpuPlacement).
constexpr double kPlacementSeconds = 1e-3;
// The sampling thread's share of a core above which it gives up real-time priority, and below
// which it takes it again (see Sampler::run).
constexpr double kMaxRealtimeBusy = 0.9;
constexpr double kMinRealtimeBusy = 0.5;
constexpr double kBusyWindowSeconds = 0.05;
constexpr double kIdleWindowSeconds = 0.2;
constexpr int kFifoPriority = 10;
constexpr const char* kBusyNote = " (real-time priority given up: the sampler needs a whole core)";
// How often a process's files of ended threads are closed (ThreadStateReader::forget_missing).
constexpr uint64_t kForgetEndedThreadsEvery = 1024;

// CPU time of the calling thread (a system call here, ~1.5 µs: read every 1,024 samples).
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void sleep_until(double deadline) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(deadline);
  ts.tv_nsec = static_cast<long>((deadline - static_cast<double>(ts.tv_sec)) * 1e9);
  if (ts.tv_nsec >= 1'000'000'000) {
    ts.tv_sec += 1;
    ts.tv_nsec -= 1'000'000'000;
  }
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// Waits for the deadline: sleeps, and spins the last stretch only when the period is too short
// for the scheduler's wake-up latency. A SCHED_FIFO thread with 1 ns timer slack wakes from
// clock_nanosleep(TIMER_ABSTIME) 6-16 µs late (p50-p90; p99 under 40 µs, measured on a loaded
// 2-core machine of this kind), well inside the half period that counts as late down to 10 kHz;
// spinning there would only burn the core the target needs (it did: 40 µs of every 100 µs at
// 10 kHz, and the target ran up to 2x slower). Above 50 kHz a wait of up to four periods is
// spun whole: the gaps there are a few µs, and sleeping one cost a wake-up of 14-25 µs on a
// KVM guest whose idle CPUs halt (2,500 a second at 100 kHz on a 64-deep stack: 3.15 read it at
// 87.5k samples/s, 92.5k spun). Within one period only, the 2 % of gaps drawn longer still
// slept, and 10k of 590k samples were late (900 spun out to four periods).
void wait_until(double deadline, double period) {
  const double spin = period < 100e-6 ? (period <= 20e-6 ? 4 * period : 20e-6) : 0;
  double now = monotonic_seconds();
  if (deadline - now > spin) sleep_until(deadline - spin);
  while (spin > 0 && monotonic_seconds() < deadline) {
  }
}

}  // namespace

std::string raise_thread_priority(bool realtime, int fifo_priority) {
  if (realtime) {
    sched_param param{};
    param.sched_priority = fifo_priority;
    if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &param) == 0) return "SCHED_FIFO";
  }
  pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(tid), -20) == 0) return "nice -20";
  return "normal";
}

std::string lower_to_nice() {
  sched_param param{};
  pthread_setschedparam(pthread_self(), SCHED_OTHER, &param);
  // Leaving a real-time policy gives the thread the default timer slack again (50 µs: sleeps
  // overshot by that much, 10 % of the samples at 100 kHz went missing).
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  return raise_thread_priority(false, 0);
}

double slow_read_seconds(double rate_hz) {
  return std::max(0.01, 2 / rate_hz);
}

const char* mode_name(Mode mode) {
  switch (mode) {
    case Mode::kWall:
      return "wall";
    case Mode::kCpu:
      return "cpu";
    case Mode::kGil:
      return "gil";
  }
  return "wall";
}

Mode parse_mode(const std::string& text) {
  if (text == "wall") return Mode::kWall;
  if (text == "cpu") return Mode::kCpu;
  if (text == "gil") return Mode::kGil;
  throw Error(ErrorKind::kUsage, fmt::format("unknown mode '{}': use wall, cpu or gil", text));
}

void check_rate(double hz) {
  if (!(hz >= kMinRateHz && hz <= kMaxRateHz)) {
    throw Error(ErrorKind::kUsage, fmt::format("rate {} Hz is out of range: use {} to {} Hz", hz,
                                               kMinRateHz, kMaxRateHz));
  }
}

ProcessSampler::ProcessSampler(cpython::Target& target, const SamplerOptions& options,
                               double origin)
    : target_(target),
      options_(options),
      mode_(options.mode),
      rate_hz_(options.rate_hz),
      origin_(origin),
      thread_states_(target.pid()) {
  stats_.rate_hz = options_.rate_hz;
  stats_.mode = options_.mode;
  profile_.run.pid = target.pid();
  profile_.run.python_version = target.runtime().layout.version.str();
  profile_.run.mode = mode_name(options_.mode);
  profile_.timeline_limit = options_.timeline_spans;
}

void ProcessSampler::set_running(bool running, const std::string& scheduling) {
  std::lock_guard lock(mutex_);
  stats_.running = running && !stats_.target_exited;
  if (!scheduling.empty()) stats_.scheduling = scheduling;
  if (!running) threads_cv_.notify_all();
}

void ProcessSampler::count_realtime_given_up() {
  std::lock_guard lock(mutex_);
  ++stats_.realtime_given_up;
}

void ProcessSampler::set_exited() {
  std::lock_guard lock(mutex_);
  stats_.target_exited = true;
  stats_.running = false;
  threads_cv_.notify_all();
}

void ProcessSampler::set_error(const std::string& error) {
  std::lock_guard lock(mutex_);
  stats_.error = error;
  stats_.running = false;
  threads_cv_.notify_all();
}

bool ProcessSampler::exited() const {
  std::lock_guard lock(mutex_);
  return stats_.target_exited;
}

RunSwitch ProcessSampler::switch_run(Mode mode, double rate_hz) {
  std::lock_guard lock(mutex_);
  RunSwitch outcome;
  const Mode old_mode = mode_.load();
  const double old_rate = rate_hz_.load();
  if (mode == old_mode && rate_hz == old_rate) return outcome;
  outcome.changed = true;
  // Samples of one mode and rate under one label: the run so far is set aside (replacing one
  // kept with the same mode and rate, which it continued), and a kept run of the new mode and
  // rate goes on where it stopped.
  auto same = [](Mode m, double r) {
    return [=](const Stash& s) { return s.stats.mode == m && s.stats.rate_hz == r; };
  };
  const bool running = stats_.running, exited = stats_.target_exited;
  const std::string scheduling = stats_.scheduling;
  const pid_t pid = profile_.run.pid;
  const std::string version = profile_.run.python_version;
  if (stats_.samples > 0) {
    outcome.kept_samples = stats_.samples;
    std::erase_if(kept_, same(old_mode, old_rate));
    kept_.push_back(Stash{std::move(profile_), stats_, walk_seconds_, read_seconds_});
  }
  auto found = std::find_if(kept_.begin(), kept_.end(), same(mode, rate_hz));
  if (found != kept_.end()) {
    outcome.resumed_samples = found->stats.samples;
    profile_ = std::move(found->profile);
    stats_ = found->stats;
    walk_seconds_ = found->walk_seconds;
    read_seconds_ = found->read_seconds;
    kept_.erase(found);
  } else {
    profile_ = Profile();
    profile_.run.pid = pid;
    profile_.run.python_version = version;
    profile_.timeline_limit = options_.timeline_spans;
    stats_ = SamplerStatus{};
    walk_seconds_ = read_seconds_ = 0;
  }
  stats_.running = running;
  stats_.target_exited = exited;
  stats_.scheduling = scheduling;
  // collect() reads these without the lock.
  mode_ = stats_.mode = mode;
  rate_hz_ = stats_.rate_hz = rate_hz;
  profile_.run.mode = mode_name(mode);
  // Frame ids belong to the profile they were interned in.
  frame_ids_.clear();
  paths_.clear();
  return outcome;
}

std::vector<KeptRun> ProcessSampler::kept_runs() const {
  std::lock_guard lock(mutex_);
  std::vector<KeptRun> out;
  for (const Stash& s : kept_) {
    out.push_back(
        KeptRun{s.stats.mode, s.stats.rate_hz, s.stats.samples, s.stats.profiled_seconds});
  }
  return out;
}

void ProcessSampler::reset(double origin) {
  std::lock_guard lock(mutex_);
  pid_t pid = profile_.run.pid;
  std::string version = profile_.run.python_version;
  profile_.clear();
  profile_.run.pid = pid;
  profile_.run.python_version = version;
  profile_.run.mode = mode_name(mode_);
  profile_.timeline_limit = options_.timeline_spans;
  frame_ids_.clear();
  paths_.clear();
  kept_.clear();
  const bool running = stats_.running, exited = stats_.target_exited;
  std::string scheduling = stats_.scheduling;
  stats_ = SamplerStatus{};
  stats_.running = running;
  stats_.target_exited = exited;
  stats_.scheduling = scheduling;
  stats_.rate_hz = rate_hz_;
  stats_.mode = mode_;
  walk_seconds_ = 0;
  read_seconds_ = 0;
  origin_ = origin;
}

SamplerStatus ProcessSampler::status() const {
  std::lock_guard lock(mutex_);
  SamplerStatus s = stats_;
  s.achieved_rate_hz =
      s.profiled_seconds > 0 ? static_cast<double>(s.samples) / s.profiled_seconds : 0;
  s.mean_walk_us = s.samples ? walk_seconds_ / static_cast<double>(s.samples) * 1e6 : 0;
  s.mean_read_us = s.samples ? read_seconds_ / static_cast<double>(s.samples) * 1e6 : 0;
  return s;
}

Profile ProcessSampler::snapshot() const {
  std::lock_guard lock(mutex_);
  Profile copy = profile_;
  copy.run.rate_hz = stats_.rate_hz;
  copy.run.mode = mode_name(stats_.mode);
  copy.run.duration_seconds = stats_.profiled_seconds;
  copy.run.samples = stats_.samples;
  copy.run.late_samples = stats_.late;
  copy.run.missed_samples = stats_.missed;
  return copy;
}

Sampler::Sampler(SamplerOptions options)
    : options_(options), rate_hz_(options.rate_hz), mode_(options.mode) {
  check_rate(options_.rate_hz);
  stats_.rate_hz = options_.rate_hz;
  stats_.mode = options_.mode;
  origin_ = monotonic_seconds();
}

Sampler::~Sampler() {
  stop();
}

void Sampler::add(ProcessSampler& process) {
  std::lock_guard lock(mutex_);
  all_.push_back(&process);
  added_.push_back(&process);
  if (stats_.running) process.set_running(true, stats_.scheduling);
}

void Sampler::set_more_may_come(bool more) {
  std::lock_guard lock(mutex_);
  more_may_come_ = more;
}

void Sampler::start() {
  if (running_) return;
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard lock(mutex_);
    const bool any_alive =
        std::any_of(all_.begin(), all_.end(), [](ProcessSampler* p) { return !p->exited(); });
    if (!any_alive && !more_may_come_) {
      throw Error(ErrorKind::kNoSuchProcess,
                  all_.size() == 1 ? fmt::format("process {} has exited", all_[0]->pid())
                                   : std::string("every process has exited"));
    }
    stats_.running = true;
    stats_.target_exited = false;
  }
  stop_requested_ = false;
  running_ = true;
  thread_ = std::thread([this] { run(); });
}

void Sampler::stop() {
  stop_requested_ = true;
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  running_ = false;
  std::lock_guard lock(mutex_);
  stats_.running = false;
  for (ProcessSampler* p : all_) p->set_running(false, "");
}

bool Sampler::wait_stopped(double seconds) {
  std::unique_lock lock(mutex_);
  return stopped_cv_.wait_for(lock, std::chrono::duration<double>(seconds),
                              [this] { return !stats_.running; });
}

RunSwitch Sampler::set_rate(double hz) {
  check_rate(hz);
  std::lock_guard lock(mutex_);
  return switch_all(mode_.load(), hz);
}

RunSwitch Sampler::set_mode(Mode mode) {
  std::lock_guard lock(mutex_);
  return switch_all(mode, rate_hz_.load());
}

RunSwitch Sampler::switch_all(Mode mode, double rate_hz) {
  // Every process switches; what is said of it is the process with the most samples'.
  RunSwitch outcome;
  for (ProcessSampler* p : all_) {
    const RunSwitch one = p->switch_run(mode, rate_hz);
    outcome.changed = outcome.changed || one.changed;
    outcome.kept_samples = std::max(outcome.kept_samples, one.kept_samples);
    outcome.resumed_samples = std::max(outcome.resumed_samples, one.resumed_samples);
  }
  outcome.changed = outcome.changed || mode != mode_.load() || rate_hz != rate_hz_.load();
  mode_ = stats_.mode = mode;
  rate_hz_ = stats_.rate_hz = rate_hz;
  return outcome;
}

void Sampler::on_exit(std::function<void()> callback) {
  std::lock_guard lock(mutex_);
  on_exit_ = std::move(callback);
}

void Sampler::reset() {
  std::lock_guard lock(mutex_);
  if (running_) origin_ = monotonic_seconds();
  for (ProcessSampler* p : all_) p->reset(origin_);
  stats_.sampler_cpu_seconds = 0;
}

SamplerStatus Sampler::status() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void Sampler::run() {
  // A sampler that only gets a core when the target's threads sleep sees them asleep far too
  // often (a biased estimate). Real-time scheduling lets it preempt them at each deadline.
  std::string scheduling = raise_thread_priority(options_.realtime, kFifoPriority);
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  // The processes sampled, each with its pauser (--blocking: ptrace belongs to the thread that
  // attached, so pausers live and die with this thread) and the time spent reading it.
  struct Sampled {
    ProcessSampler* process;
    std::unique_ptr<ThreadPauser> pauser;
    double walk = 0;            // this round
    double walk_since_cpu = 0;  // since the thread's CPU time was last shared out
    bool gone = false;
  };
  std::vector<Sampled> sampled;
  {
    std::lock_guard lock(mutex_);
    stats_.scheduling = scheduling;
    added_.clear();
    for (ProcessSampler* p : all_) {
      if (p->exited()) continue;
      p->set_running(true, scheduling);
      sampled.push_back(Sampled{p, nullptr});
    }
  }
  // Real-time priority is given up while the sampler needs most of a core, and taken again
  // when it no longer does. A thread that keeps a CPU busy never wakes to preempt anyone, so
  // SCHED_FIFO buys it nothing there; and the kernel lets real-time threads run only 950 ms of
  // every second (sched_rt_runtime_us): above ~95 % of a core (100 kHz on a 64-deep stack,
  // 40 kHz on one where a sample spins out its gap) the sampler was stopped 50 ms each second,
  // a hole in the profile, and read 93-95k samples/s at 100 kHz asked instead of 100k.
  const bool may_be_realtime = scheduling == "SCHED_FIFO";
  bool realtime = may_be_realtime;
  auto set_scheduling = [&](const std::string& now, bool given_up) {
    scheduling = now;
    std::lock_guard lock(mutex_);
    stats_.scheduling = scheduling;
    if (given_up) ++stats_.realtime_given_up;
    for (ProcessSampler* p : all_) {
      if (p->exited()) continue;
      p->set_running(true, scheduling);
      if (given_up) p->count_realtime_given_up();
    }
  };
  // The sampling thread's CPU time, shared out among the processes by the time each took to
  // read (one clock reading every 256 rounds: ~1.5 µs each).
  double cpu_mark = thread_cpu_seconds();
  // Measured over windows of kBusyWindowSeconds or more (kIdleWindowSeconds to take it again:
  // the first milliseconds after it is given up, the sampler waits its turn behind whatever
  // queued on its CPU meanwhile).
  double busy_cpu_mark = cpu_mark, busy_wall_mark = monotonic_seconds();
  auto share_cpu = [&] {
    const double now = thread_cpu_seconds();
    const double spent = now - cpu_mark;
    cpu_mark = now;
    const double wall = monotonic_seconds() - busy_wall_mark;
    if (may_be_realtime && wall >= (realtime ? kBusyWindowSeconds : kIdleWindowSeconds)) {
      const double busy = (now - busy_cpu_mark) / wall;
      busy_cpu_mark = now;
      busy_wall_mark += wall;
      if (realtime && busy > kMaxRealtimeBusy) {
        realtime = false;
        set_scheduling(lower_to_nice() + kBusyNote, true);
      } else if (!realtime && busy < kMinRealtimeBusy) {
        realtime = true;
        set_scheduling(raise_thread_priority(true, kFifoPriority), false);
      }
    }
    double total = 0;
    for (const Sampled& s : sampled) total += s.walk_since_cpu;
    for (Sampled& s : sampled) {
      const double part =
          total > 0 ? s.walk_since_cpu / total : 1.0 / static_cast<double>(sampled.size());
      s.process->add_cpu_seconds(spent * part);
      s.walk_since_cpu = 0;
    }
    std::lock_guard lock(mutex_);
    stats_.sampler_cpu_seconds += spent;
  };
  // When to sample. The target is not indifferent to the sampler: under CPU contention a
  // thread that is waiting for a core often gets it right after the sampler goes back to sleep
  // (its wake-up and sleep are scheduling points), so the target's work starts just after a
  // sample. A grid, even jittered within its slots, then lands less often just after a sample
  // and misses those starts: a background thread's 2 ms calls read 5-15 % low on a busy machine
  // (the accuracy tests in CI). Gaps drawn from an exponential distribution, counted from the
  // moment the sampler sleeps, have no memory: whatever the target does on that cue, the next
  // sample is as likely to land at any moment of it, which keeps the estimate unbiased (and
  // nothing aliases with a periodic program either). The mean gap is the period less the rest
  // of a round (reading, bookkeeping, waking up), so the rate asked is the rate achieved.
  // A sample stands for the time it covers: its lateness, its own reading (the target goes on
  // meanwhile, mostly where the sample saw it) and its gap. Weighing each sample the same
  // instead read a sympy request handler 35 % low at 10 kHz (its deep stacks take long to read,
  // which leaves fewer moments to sample it); its reading plus the mean gap, 3-5 % high.
  // With several processes, each is read in turn and every one's sample stands for the whole
  // round: from its reading in this round to its reading in the next is the round's length
  // plus the gap, whichever place it has in the round.
  std::mt19937_64 rng(std::random_device{}());
  std::exponential_distribution<double> exponential(1.0);
  double overhead = 0;  // a round's time besides its gap (moving average)
  double next = monotonic_seconds();
  double previous_start = 0, previous_gap = 0;
  uint64_t rounds = 0;
  bool all_exited = false;
  CpuPlacement placement;
  double placed = 0, cpu_seen = 0;
  while (!stop_requested_) {
    const double period = 1.0 / rate_hz_.load(std::memory_order_relaxed);
    wait_until(next, period);
    if (stop_requested_) break;
    {
      std::lock_guard lock(mutex_);
      for (ProcessSampler* p : added_) sampled.push_back(Sampled{p, nullptr});
      added_.clear();
      if (sampled.empty() && !more_may_come_) {
        all_exited =
            std::all_of(all_.begin(), all_.end(), [](ProcessSampler* p) { return p->exited(); });
        break;
      }
    }
    if (sampled.empty()) {  // nothing to read yet (following a process's children)
      next = monotonic_seconds() + period;
      previous_start = 0;
      continue;
    }
    const double start = monotonic_seconds();
    const double behind = std::max(0.0, start - next);
    // Woken a period or more late: the samples due meanwhile are counted as missed, not
    // piled up; the time goes to this sample.
    const auto skipped = static_cast<uint64_t>(behind / period);
    const bool late = behind > period / 2;
    if (previous_start > 0) {
      const double rest = std::clamp(start - previous_start - previous_gap, 0.0, period);
      overhead += (rest - overhead) / 64;
    }
    // Never a mean below a tenth of the period: at rates beyond what reading allows, samples
    // follow each other closely but still at random moments.
    const double mean_gap = std::max(period - overhead, period / 10);
    const double gap = exponential(rng) * mean_gap;
    for (Sampled& s : sampled) {
      // Marked exited from outside: it ran another program (ProcessSet), whose memory its
      // reader must not go on reading as the old one's.
      if (s.process->exited()) {
        s.gone = true;
        s.walk = 0;
        continue;
      }
      const double t0 = monotonic_seconds();
      try {
        if (options_.blocking && !s.pauser) {
          s.pauser = std::make_unique<ThreadPauser>(s.process->pid());
        }
        s.process->collect(s.pauser.get());
      } catch (const Error& e) {
        if (e.kind() == ErrorKind::kNoSuchProcess) {
          s.process->set_exited();
        } else {
          s.process->set_error(e.what());
        }
        s.gone = true;
      } catch (const std::exception& e) {
        // Never take the whole program down from the sampling thread.
        s.process->set_error(fmt::format("internal error: {}", e.what()));
        s.gone = true;
      }
      s.walk = monotonic_seconds() - t0;
      s.walk_since_cpu += s.walk;
    }
    const double finished = monotonic_seconds();
    const double weight = behind + (finished - start) + gap;
    for (Sampled& s : sampled) {
      if (!s.gone) s.process->record(start, weight, s.walk, late, skipped);
    }
    if (++rounds % 256 == 0) share_cpu();
    // Where the GIL holder runs: a look a millisecond is enough, as it changes at the pace of
    // the target's wake-ups, not of samples (a look every 4 ms lost most of the gain). With
    // glibc's rseq area (see process/rseq.h) the walk polls it: asked for from a millisecond
    // after the last answer until the next one (a walk or two). Otherwise it takes a pread of
    // /proc (~3 µs), once a millisecond.
    if (options_.keep_off_gil_cpu) {
      const bool may_read_proc = finished - placed >= kPlacementSeconds;
      if (may_read_proc) placed = finished;
      for (const Sampled& s : sampled) {
        if (s.gone) continue;
        if (const int cpu = s.process->gil_holder_cpu(may_read_proc); cpu >= 0) {
          placement.keep_off(cpu);
          cpu_seen = finished;
          break;
        }
      }
    }
    // Asked for when a millisecond will have passed by the next sample: at 1 kHz and below,
    // every sample, as before it was a poll.
    const bool cpu_wanted =
        options_.keep_off_gil_cpu && finished - cpu_seen + period >= kPlacementSeconds;
    for (const Sampled& s : sampled) {
      if (!s.gone) s.process->want_gil_holder_cpu(cpu_wanted);
    }
    for (Sampled& s : sampled) {
      if (!s.gone || !s.pauser) continue;
      s.pauser->resume();
      s.pauser->detach();
      s.pauser.reset();
    }
    std::erase_if(sampled, [](const Sampled& s) { return s.gone; });
    next = finished + gap;
    previous_start = start;
    previous_gap = gap;
  }
  share_cpu();
  for (Sampled& s : sampled) {
    if (!s.pauser) continue;
    s.pauser->resume();
    s.pauser->detach();
  }
  std::function<void()> on_exit;
  {
    std::lock_guard lock(mutex_);
    stats_.running = false;
    stats_.target_exited = all_exited;
    for (ProcessSampler* p : all_) p->set_running(false, "");
    on_exit = on_exit_;
  }
  running_ = false;
  stopped_cv_.notify_all();
  if (all_exited && on_exit) on_exit();
}

namespace {

// Thread ids of the pseudo-threads that hold suspended tasks (no pthread_t has this bit).
constexpr uint64_t kTaskThreadBit = uint64_t{1} << 63;

std::vector<ThreadSnapshot> snapshot_threads(cpython::Target& target,
                                             const std::vector<cpython::ThreadStack>& stacks) {
  std::vector<std::string> names = target.thread_names(stacks);
  std::vector<ThreadSnapshot> out(stacks.size());
  for (size_t i = 0; i < stacks.size(); ++i) {
    const auto& s = stacks[i];
    auto& t = out[i];
    t.thread_id = s.thread_id;
    t.native_id = s.native_id;
    t.name = std::move(names[i]);
    t.holds_gil = s.holds_gil;
    t.gil_known = s.gil_known;
    t.truncated = s.truncated;
    for (const auto& f : s.frames) {
      t.frames.push_back(
          FrameInfo{f.code->qualname, f.code->filename, f.line, f.code->firstlineno});
    }
  }
  return out;
}

}  // namespace

bool ProcessSampler::threads_now(std::vector<ThreadSnapshot>& out, double timeout_seconds) {
  std::unique_lock lock(mutex_);
  if (!stats_.running) {
    lock.unlock();
    std::vector<cpython::ThreadStack> stacks;
    // A thread may appear or vanish mid-walk; one retry gives a consistent picture.
    if (!target_.walk(stacks) && !target_.walk(stacks)) return false;
    out = snapshot_threads(target_, stacks);
    return true;
  }
  const uint64_t generation = threads_generation_;
  threads_wanted_ = true;
  bool handed = threads_cv_.wait_for(lock, std::chrono::duration<double>(timeout_seconds), [&] {
    return threads_generation_ != generation || !stats_.running;
  });
  if (!handed || threads_generation_ == generation) return false;
  out = threads_handed_;
  return true;
}

void ProcessSampler::hand_over_threads() {
  threads_handed_ = snapshot_threads(target_, stacks_);
  ++threads_generation_;
  threads_wanted_ = false;
  threads_cv_.notify_all();
}

void ProcessSampler::add_cpu_seconds(double seconds) {
  std::lock_guard lock(mutex_);
  stats_.sampler_cpu_seconds += seconds;
}

StackId ProcessSampler::intern_stack(uint64_t path_key, const std::vector<cpython::Frame>& frames) {
  // Frames innermost first; the trie is built root first.
  StackId id = kRootStack;
  InternedPath& path = paths_[path_key];
  bool shared = true;
  size_t depth = 0;
  for (auto it = frames.rbegin(); it != frames.rend(); ++it, ++depth) {
    int line = options_.lines ? it->line : 0;
    uint64_t key = (static_cast<uint64_t>(it->code->id) << 32) | static_cast<uint32_t>(line);
    if (shared && depth < path.keys.size() && path.keys[depth] == key) {
      id = path.ids[depth];
      continue;
    }
    if (shared) {  // the rest of the remembered path no longer holds
      path.keys.resize(depth);
      path.ids.resize(depth);
      shared = false;
    }
    auto found = frame_ids_.find(key);
    FrameId frame;
    if (found != frame_ids_.end()) {
      frame = found->second;
    } else {
      frame = profile_.frames.intern(
          FrameInfo{it->code->qualname, it->code->filename, line, it->code->firstlineno});
      // Code ids are never reused: a program that keeps making code objects (exec, namedtuple)
      // would grow this cache for ever. It only spares FrameTable::intern's lookup by content,
      // so starting it afresh loses nothing.
      if (frame_ids_.size() >= (size_t{1} << 18)) frame_ids_.clear();
      frame_ids_.emplace(key, frame);
    }
    id = profile_.stacks.child(id, frame);
    path.keys.push_back(key);
    path.ids.push_back(id);
  }
  path.keys.resize(depth);  // a shorter stack than the one remembered
  path.ids.resize(depth);
  return id;
}

void ProcessSampler::draw_tasks_under_awaiters() {
  const size_t n = tasks_.size();
  task_prefixes_.assign(n, kRootStack);
  task_through_children_.assign(n, 0);
  if (awaited_by_.size() != n) return;
  std::vector<uint64_t> addrs(n);
  for (size_t i = 0; i < n; ++i) {
    // A task without a stack of its own is nobody's awaiter here.
    addrs[i] = task_stacks_[i] != kRootStack ? tasks_[i].task_addr : 0;
  }
  const std::vector<size_t> parent = cpython::TaskLinker::choose_parents(addrs, awaited_by_);
  const FrameId marker =
      profile_.frames.intern(FrameInfo{cpython::TaskLinker::task_marker().qualname, "", 0, 0});
  // Each prefix is its awaiter's prefix, then the awaiter's own frames (its `<await>` left
  // out: it waits for this task, drawn below), then the marker. Awaiters first: an order found
  // by walking up (the parents have no cycle, and a chain is at most n long).
  std::vector<char> done(n, 0);
  std::vector<size_t> chain;
  std::vector<FrameId> path;
  for (size_t i = 0; i < n; ++i) {
    if (task_stacks_[i] == kRootStack) continue;
    chain.clear();
    for (size_t node = i; node != SIZE_MAX && !done[node] && chain.size() <= n;
         node = parent[node]) {
      chain.push_back(node);
    }
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      const size_t node = *it;
      done[node] = 1;
      const size_t up = parent[node];
      if (up == SIZE_MAX || task_stacks_[up] == kRootStack) continue;
      StackId prefix = task_prefixes_[up];
      profile_.stacks.path(task_stacks_[up], path);
      for (size_t k = 0; k + 1 < path.size(); ++k) prefix = profile_.stacks.child(prefix, path[k]);
      task_prefixes_[node] = profile_.stacks.child(prefix, marker);
      task_through_children_[up] = 1;
    }
  }
}

void ProcessSampler::collect(ThreadPauser* pauser) {
  Collected& c = collected_;
  c = Collected{};
  const Mode mode = mode_.load(std::memory_order_relaxed);
  c.mode = mode;
  // A server that starts a thread per request would otherwise keep two files open for each.
  if (++collects_ % kForgetEndedThreadsEvery == 0) thread_states_.forget_missing();
  // Thread states are read before any pause: a thread stopped by ptrace looks idle.
  running_tids_.clear();
  if (mode == Mode::kCpu) {
    for (pid_t tid : process::list_threads(target_.pid())) {
      if (thread_states_.state(tid) == 'R') running_tids_.push_back(tid);
    }
  }
  c.unpaused = pauser ? pauser->pause() : 0;
  const cpython::WalkStats before = target_.walker().stats();
  const auto& prefetch = target_.prefetch();
  const double read_before = prefetch.read_seconds();
  const uint64_t calls_before = prefetch.calls();
  const uint64_t reads_before = prefetch.reads();
  const uint64_t prefetched_before = prefetch.hits() + prefetch.page_hits();
  const cpython::CodeCache& codes = target_.walker().code_cache();
  const uint64_t code_reads_before = codes.headers_read();
  const uint64_t code_proofs_before = codes.proven();
  const uint64_t counter_faults_before = codes.counter_faults();
  c.with_tasks = mode == Mode::kWall && options_.async_tasks;
  const cpython::TaskStats tasks_before = target_.tasks().stats();
  c.ok = c.with_tasks ? target_.walk_with_tasks(stacks_, tasks_) : target_.walk(stacks_);
  if (!c.with_tasks) tasks_.clear();
  if (pauser) pauser->resume();
  // Who awaits whom, for drawing only (the counted stacks are read): after the pause, as the
  // thread names are.
  const cpython::TaskLinkStats links_before = target_.task_links().stats();
  awaited_by_.clear();
  if (c.ok && c.with_tasks && options_.link_tasks && tasks_.size() > 1) {
    target_.task_links().link(tasks_, awaited_by_);
  }
  const cpython::WalkStats& after = target_.walker().stats();
  c.retries = after.torn_retries - before.torn_retries;
  c.returned = after.returned_frames - before.returned_frames;
  c.frames_again = after.frames_read_again - before.frames_read_again;
  c.returning = after.returning_frames - before.returning_frames;
  c.list_retries = after.thread_list_retries - before.thread_list_retries;
  c.cut_lists = after.cut_thread_lists - before.cut_thread_lists;
  c.read_seconds = prefetch.read_seconds() - read_before;
  c.read_calls = prefetch.calls() - calls_before;
  c.memory_reads = prefetch.reads() - reads_before;
  c.prefetched_reads = prefetch.hits() + prefetch.page_hits() - prefetched_before;
  c.code_reads = codes.headers_read() - code_reads_before;
  c.code_proofs = codes.proven() - code_proofs_before;
  c.counter_faults = codes.counter_faults() - counter_faults_before;
  c.counter_off = !codes.counter_trusted();
  c.stacks_read = after.stacks_read - before.stacks_read;
  c.unchanged_stacks = after.unchanged_stacks - before.unchanged_stacks;
  if (c.with_tasks) {
    const cpython::TaskStats& tasks_after = target_.tasks().stats();
    c.unreadable_tasks = tasks_after.unreadable - tasks_before.unreadable;
    c.cut_task_chains = tasks_after.cut_chains - tasks_before.cut_chains;
    c.cut_task_lists = tasks_after.cut_lists - tasks_before.cut_lists;
    c.unreadable_links = target_.task_links().stats().unreadable - links_before.unreadable;
  }
  include_.assign(stacks_.size(), 1);
  if (c.ok && mode == Mode::kCpu) {
    for (size_t i = 0; i < stacks_.size(); ++i) {
      include_[i] = std::find(running_tids_.begin(), running_tids_.end(), stacks_[i].native_id) !=
                    running_tids_.end();
    }
  } else if (c.ok && mode == Mode::kGil) {
    for (size_t i = 0; i < stacks_.size(); ++i) include_[i] = stacks_[i].holds_gil;
  }
}

void ProcessSampler::want_gil_holder_cpu(bool wanted) {
  target_.walker().want_holder_cpu(wanted);
}

int ProcessSampler::gil_holder_cpu(bool may_read_proc) {
  for (const auto& s : stacks_) {
    if (!s.holds_gil) continue;
    if (s.cpu >= 0) return s.cpu;
    // With an rseq area the walk polls it (a walk or two after it is asked for).
    if (target_.walker().config().rseq_cpu_offset) return -1;
    return may_read_proc ? thread_states_.cpu(s.native_id) : -1;
  }
  return -1;
}

void ProcessSampler::record(double start, double weight, double walk_seconds, bool late,
                            uint64_t missed) {
  const Collected& c = collected_;
  std::lock_guard lock(mutex_);
  // Taken under a mode since changed: it belongs to neither run (see switch_run).
  if (c.mode != mode_.load(std::memory_order_relaxed)) return;
  ++stats_.samples;
  if (late) ++stats_.late;
  if (walk_seconds > slow_read_seconds(rate_hz_.load(std::memory_order_relaxed))) {
    ++stats_.slow_samples;
    stats_.slow_seconds += walk_seconds;
  }
  stats_.missed += missed;
  if (profile_.run.start_unix_time == 0) {
    profile_.run.start_unix_time = static_cast<double>(time(nullptr));
  }
  stats_.profiled_seconds += weight;
  walk_seconds_ += walk_seconds;
  read_seconds_ += c.read_seconds;
  stats_.read_calls += c.read_calls;
  stats_.memory_reads += c.memory_reads;
  stats_.prefetched_reads += c.prefetched_reads;
  stats_.code_reads += c.code_reads;
  stats_.code_proofs += c.code_proofs;
  stats_.counter_faults += c.counter_faults;
  stats_.counter_off = stats_.counter_off || c.counter_off;
  stats_.stacks_read += c.stacks_read;
  stats_.unchanged_stacks += c.unchanged_stacks;
  stats_.reread_stacks += c.retries;
  stats_.returned_frames += c.returned;
  stats_.frames_read_again += c.frames_again;
  stats_.returning_frames += c.returning;
  stats_.reread_thread_lists += c.list_retries;
  stats_.cut_thread_lists += c.cut_lists;
  stats_.unpaused_threads += c.unpaused;
  if (c.with_tasks) {
    stats_.async_aware = true;
    stats_.unreadable_tasks += c.unreadable_tasks;
    stats_.cut_task_chains += c.cut_task_chains;
    stats_.cut_task_lists += c.cut_task_lists;
    stats_.unreadable_task_links += c.unreadable_links;
    if (stats_.samples % 256 == 1) stats_.tasks_source = target_.tasks().describe();
  }
  if (c.ok && threads_wanted_.load(std::memory_order_relaxed)) hand_over_threads();
  if (!c.ok) {
    ++stats_.failed_walks;
    return;
  }
  const std::vector<char>& include = include_;
  double t = start - origin_;
  for (size_t i = 0; i < stacks_.size(); ++i) {
    const auto& s = stacks_[i];
    ++stats_.thread_samples;
    if (s.truncated) ++stats_.incomplete_stacks;
    if (!include[i] || s.frames.empty()) continue;
    auto name_it = names_by_tid_.find(s.native_id);
    if (name_it == names_by_tid_.end()) {
      // Python's name (threading.Thread.name) where there is one: read once per thread.
      name_it = names_by_tid_.emplace(s.native_id, target_.thread_name(s)).first;
    }
    uint32_t thread = profile_.thread_index(s.thread_id, s.native_id, name_it->second);
    profile_.add_sample(thread, intern_stack(s.tstate_addr, s.frames), t, weight);
  }
  // Suspended tasks: a stack each, under a pseudo-thread per task address. Tasks come and go
  // (a server's every request), but two alive at once never share an address, so each
  // pseudo-thread holds at most one stack a sample, as a thread does, which the error bound
  // assumes (one pseudo-thread per coroutine function held eight connections' handlers at
  // once, and gave them a fifth of their real error); and freed addresses are reused, so
  // their number follows the most tasks alive at once, not all there ever were.
  task_stacks_.assign(tasks_.size(), kRootStack);
  for (size_t i = 0; i < tasks_.size(); ++i) {
    const auto& task = tasks_[i];
    if (task.frames.size() < 2) continue;
    task_stacks_[i] = intern_stack(task.task_addr, task.frames);
  }
  draw_tasks_under_awaiters();
  for (size_t i = 0; i < tasks_.size(); ++i) {
    const auto& task = tasks_[i];
    if (task.frames.size() < 2) continue;
    ++stats_.task_samples;
    if (task.truncated) ++stats_.incomplete_stacks;
    if (task_prefixes_[i] != kRootStack) ++stats_.linked_task_samples;
    const cpython::CodeInfo& entry = *task.frames.back().code;
    const int64_t known = profile_.known_thread(kTaskThreadBit | task.task_addr, 0);
    uint32_t thread = known >= 0 ? static_cast<uint32_t>(known)
                                 : profile_.thread_index(kTaskThreadBit | task.task_addr, 0,
                                                         "asyncio task: " + entry.qualname);
    // Counted on its own stack, as before; drawn under its awaiter (presentation only).
    profile_.add_sample(thread, task_stacks_[i], t, weight, task_prefixes_[i],
                        task_through_children_[i] != 0);
  }
  // Thread names are cached by TID; forget them now and then so reused TIDs get fresh names.
  if (names_by_tid_.size() > 4096) names_by_tid_.clear();
  if (paths_.size() > 4096) paths_.clear();  // thread states come and go
}

}  // namespace spyglass::sampling
