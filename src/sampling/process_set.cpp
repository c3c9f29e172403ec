#include "sampling/process_set.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "common/clock.h"
#include "common/error.h"
#include "process/descendants.h"

namespace spyglass::sampling {

ProcessSet::ProcessSet(pid_t root, const SamplerOptions& options, bool follow)
    : root_(root), follow_(follow), options_(options), sampler_(options) {
  if (!follow_) {
    auto member = std::make_unique<Member>();
    member->pid = root;
    member->target = std::make_unique<cpython::Target>(root);
    member->sampler =
        std::make_unique<ProcessSampler>(*member->target, options_, sampler_.origin());
    sampler_.add(*member->sampler);
    members_.push_back(std::move(member));
    return;
  }
  if (!process::process_alive(root)) {
    throw Error(ErrorKind::kNoSuchProcess, fmt::format("process {} does not exist", root));
  }
  sampler_.set_more_may_come(true);
  scan(true);
  started_ = monotonic_seconds();  // what the first look found was there at the start
  {
    // The process itself must be ours to read, whatever it runs.
    std::lock_guard lock(mutex_);
    const Member* first = members_.empty() ? nullptr : members_.front().get();
    if (first && first->pid == root && first->not_read.starts_with("no permission")) {
      throw Error(ErrorKind::kPermission, first->not_read);
    }
  }
  watcher_ = std::thread([this] { watch(); });
}

ProcessSet::~ProcessSet() {
  {
    std::lock_guard lock(watch_mutex_);
    stop_watching_ = true;
  }
  watch_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
  sampler_.stop();
}

ProcessSet::Member* ProcessSet::find(pid_t pid) {
  for (auto it = members_.rbegin(); it != members_.rend(); ++it) {
    if ((*it)->pid == pid) return it->get();
  }
  return nullptr;
}

const ProcessSet::Member* ProcessSet::first_sampled() const {
  for (const auto& m : members_) {
    if (m->sampler) return m.get();
  }
  return nullptr;
}

void ProcessSet::try_attach(Member& member, double now) {
  const std::optional<bool> python = process::maps_python(member.pid);
  if (!python) {
    // No mapping to read: gone, or in the middle of an exec. Looked at again for a while.
    if (now - member.first_seen > kStartupSeconds) member.not_read = "its memory map is unreadable";
    return;
  }
  if (!*python) {
    member.not_read = "not Python";
    return;
  }
  try {
    member.target = std::make_unique<cpython::Target>(member.pid);
    SamplerOptions options = options_;
    options.mode = sampler_.mode();
    options.rate_hz = sampler_.rate_hz();
    member.sampler = std::make_unique<ProcessSampler>(*member.target, options, sampler_.origin());
    member.not_read.clear();
    // Processes there before the run are not late; one that started since was running for
    // a while before it was found and read (the run's scans, its interpreter's symbols).
    if (member.first_seen > started_) {
      member.found_after = process::seconds_since_start(member.pid).value_or(0);
    }
  } catch (const Error& e) {
    member.target.reset();
    switch (e.kind()) {
      case ErrorKind::kNoSuchProcess:
        member.not_read = "exited";
        break;
      case ErrorKind::kPermission:
        member.not_read = fmt::format("no permission: {}", e.what());
        break;
      case ErrorKind::kUnsupported:
        member.not_read = fmt::format("cannot be read: {}", e.what());
        break;
      default:
        // A process that has just started Python is not readable until its interpreter is
        // set up: tried again at each look for a while.
        if (now - member.first_seen > kStartupSeconds) {
          member.not_read = fmt::format("not read as Python: {}", e.what());
        }
        break;
    }
  }
}

void ProcessSet::scan(bool root_alive) {
  std::vector<pid_t> family{root_};
  if (root_alive) {
    for (pid_t pid : process::descendants(root_)) family.push_back(pid);
  }
  const double now = monotonic_seconds();
  for (pid_t pid : family) {
    const uint64_t identity = process::exec_identity(pid);
    std::unique_ptr<Member> fresh;
    Member* member = nullptr;
    {
      std::lock_guard lock(mutex_);
      member = find(pid);
      if (member && identity != 0 && member->identity == 0) {
        // First seen while its auxiliary vector could not be read (an exec under way): what
        // was judged of it then is judged again.
        member->identity = identity;
        if (!member->sampler) member->not_read.clear();
      }
      if (member && identity != 0 && member->identity != 0 && identity != member->identity) {
        // The same pid now runs another program (a shell's exec, multiprocessing's spawn):
        // what it ran keeps its results, and the new program is a process of its own.
        if (member->sampler) member->sampler->set_exited();
        member->replaced = true;
        member = nullptr;
      }
      if (member && (member->sampler || !member->not_read.empty())) continue;
    }
    if (!member) {
      if (!process::process_alive(pid)) continue;
      fresh = std::make_unique<Member>();
      fresh->pid = pid;
      fresh->identity = identity;
      fresh->first_seen = now;
      member = fresh.get();
    }
    // Tried outside the lock (reading an interpreter's symbols takes milliseconds); only this
    // thread changes a member not yet read.
    Member attempt;
    attempt.pid = pid;
    attempt.first_seen = member->first_seen;
    try_attach(attempt, now);
    attempt.command = process::command_line(pid);
    std::lock_guard lock(mutex_);
    member->command = attempt.command;
    member->not_read = attempt.not_read;
    member->found_after = attempt.found_after;
    if (attempt.target) {
      member->target = std::move(attempt.target);
      member->sampler = std::move(attempt.sampler);
    }
    if (fresh) members_.push_back(std::move(fresh));
    if (member->sampler) sampler_.add(*member->sampler);
  }
}

void ProcessSet::watch() {
  // New workers start at once, often busy from their first moment, while the family keeps
  // every core busy: at normal priority this thread waited its turn behind them, and found
  // pool workers 70-150 ms after they started (their time till then is not in the results).
  // Above them (below the sampling thread) it finds them within about one look.
  raise_thread_priority(options_.realtime, 5);
  std::unique_lock lock(watch_mutex_);
  while (!stop_watching_) {
    watch_cv_.wait_for(lock, std::chrono::duration<double>(kScanSeconds),
                       [this] { return stop_watching_; });
    if (stop_watching_) break;
    lock.unlock();
    const bool root_alive = process::process_alive(root_);
    scan(root_alive);
    // Once the process is gone, its orphans are no longer its descendants: no more can come,
    // and the run ends when those already read have exited.
    if (!root_alive) sampler_.set_more_may_come(false);
    lock.lock();
    if (!root_alive) break;
  }
}

std::string ProcessSet::python_version() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> versions;
  for (const auto& m : members_) {
    if (!m->target) continue;
    std::string v = m->target->runtime().layout.version.str();
    if (std::find(versions.begin(), versions.end(), v) == versions.end()) versions.push_back(v);
  }
  if (versions.empty()) return "none yet";
  std::string out;
  for (const auto& v : versions) out += (out.empty() ? "" : ", ") + v;
  return out;
}

SamplerStatus ProcessSet::status() const {
  std::lock_guard lock(mutex_);
  const SamplerStatus run = sampler_.status();
  if (!follow_) {
    SamplerStatus s = members_.front()->sampler->status();
    s.running = run.running;
    return s;
  }
  SamplerStatus total;
  total.running = run.running;
  total.target_exited = run.target_exited;
  total.rate_hz = run.rate_hz;
  total.mode = run.mode;
  total.scheduling = run.scheduling;
  total.realtime_given_up = run.realtime_given_up;
  total.sampler_cpu_seconds = run.sampler_cpu_seconds;
  double walk_us = 0, read_us = 0;
  for (const auto& m : members_) {
    if (!m->sampler) continue;
    const SamplerStatus s = m->sampler->status();
    if (s.samples >= total.samples) {
      total.samples = s.samples;
      total.profiled_seconds = s.profiled_seconds;
      total.late = s.late;
      total.missed = s.missed;
    }
    total.failed_walks += s.failed_walks;
    total.slow_samples += s.slow_samples;
    total.slow_seconds += s.slow_seconds;
    total.thread_samples += s.thread_samples;
    total.reread_stacks += s.reread_stacks;
    total.incomplete_stacks += s.incomplete_stacks;
    total.returned_frames += s.returned_frames;
    total.frames_read_again += s.frames_read_again;
    total.returning_frames += s.returning_frames;
    total.reread_thread_lists += s.reread_thread_lists;
    total.cut_thread_lists += s.cut_thread_lists;
    total.unpaused_threads += s.unpaused_threads;
    total.async_aware = total.async_aware || s.async_aware;
    total.task_samples += s.task_samples;
    total.unreadable_tasks += s.unreadable_tasks;
    total.cut_task_chains += s.cut_task_chains;
    total.cut_task_lists += s.cut_task_lists;
    total.linked_task_samples += s.linked_task_samples;
    total.unreadable_task_links += s.unreadable_task_links;
    if (total.tasks_source.empty()) total.tasks_source = s.tasks_source;
    total.read_calls += s.read_calls;
    total.memory_reads += s.memory_reads;
    total.prefetched_reads += s.prefetched_reads;
    total.code_reads += s.code_reads;
    total.code_proofs += s.code_proofs;
    total.counter_faults += s.counter_faults;
    total.counter_off = total.counter_off || s.counter_off;
    total.stacks_read += s.stacks_read;
    total.unchanged_stacks += s.unchanged_stacks;
    // Per round, every live process is read in turn.
    if (!s.target_exited && s.error.empty()) {
      walk_us += s.mean_walk_us;
      read_us += s.mean_read_us;
    }
  }
  total.mean_walk_us = walk_us;
  total.mean_read_us = read_us;
  total.achieved_rate_hz =
      total.profiled_seconds > 0 ? static_cast<double>(total.samples) / total.profiled_seconds : 0;
  return total;
}

std::vector<KeptRun> ProcessSet::kept_runs() const {
  std::lock_guard lock(mutex_);
  const Member* first = first_sampled();
  return first ? first->sampler->kept_runs() : std::vector<KeptRun>{};
}

Profile ProcessSet::snapshot(bool rooted, bool merge_identical) const {
  std::lock_guard lock(mutex_);
  if (!follow_) return members_.front()->sampler->snapshot();
  Profile out;
  out.run.pid = root_;
  bool first = true;
  for (const auto& m : members_) {
    if (!m->sampler) continue;
    Profile one = m->sampler->snapshot();
    if (first) {
      out.run = one.run;
      out.run.pid = root_;
      out.timeline_limit = one.timeline_limit;
      first = false;
    }
    if (one.run.samples > out.run.samples) {
      out.run.samples = one.run.samples;
      out.run.duration_seconds = one.run.duration_seconds;
      out.run.late_samples = one.run.late_samples;
      out.run.missed_samples = one.run.missed_samples;
    }
    if (one.run.start_unix_time > 0 &&
        (out.run.start_unix_time == 0 || one.run.start_unix_time < out.run.start_unix_time)) {
      out.run.start_unix_time = one.run.start_unix_time;
    }
    const std::string root =
        rooted ? process_root_name(merge_identical ? 0 : m->pid, m->command) : std::string();
    out.merge(one, root, m->pid);
  }
  return out;
}

std::vector<ProcessEntry> ProcessSet::processes() const {
  std::lock_guard lock(mutex_);
  std::vector<ProcessEntry> out;
  const bool running = sampler_.running();
  for (const auto& m : members_) {
    // What a pid ran before it ran another program, never read: a shell's exec, or spyglass's
    // own fork before `run` started the program. Nothing to show.
    if (m->replaced && !m->sampler) continue;
    ProcessEntry e;
    e.pid = m->pid;
    e.command = m->command.empty() ? process::command_line(m->pid) : m->command;
    if (m->sampler) {
      e.sampled = true;
      e.status = m->sampler->status();
      e.python_version = m->target->runtime().layout.version.str();
      e.found_after_seconds = m->found_after;
      if (m->replaced) {
        e.state = "ran another program";
      } else if (e.status.target_exited) {
        e.state = "exited";
      } else if (!e.status.error.empty()) {
        e.state = "stopped: " + e.status.error;
      } else {
        e.state = running ? "profiling" : "stopped";
      }
    } else {
      e.state = m->replaced           ? "ran another program"
                : m->not_read.empty() ? "starting"
                                      : m->not_read;
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::optional<Profile> ProcessSet::snapshot_of(pid_t pid) const {
  std::lock_guard lock(mutex_);
  std::optional<Profile> out;
  for (const auto& m : members_) {
    if (m->pid != pid || !m->sampler) continue;
    Profile one = m->sampler->snapshot();
    if (!out) {
      out = std::move(one);
    } else {
      out->merge(one, "", pid);  // the programs one pid ran, one after the other
    }
  }
  return out;
}

std::optional<SamplerStatus> ProcessSet::status_of(pid_t pid) const {
  std::lock_guard lock(mutex_);
  for (auto it = members_.rbegin(); it != members_.rend(); ++it) {
    if ((*it)->pid == pid && (*it)->sampler) return (*it)->sampler->status();
  }
  return std::nullopt;
}

bool ProcessSet::threads_now(pid_t pid, std::vector<ThreadSnapshot>& out, double timeout_seconds) {
  ProcessSampler* chosen = nullptr;
  {
    std::lock_guard lock(mutex_);
    for (auto it = members_.rbegin(); it != members_.rend(); ++it) {
      const Member& m = **it;
      if (!m.sampler || m.replaced || (pid != 0 && m.pid != pid)) continue;
      chosen = m.sampler.get();
      if (pid != 0) break;
    }
  }
  return chosen && chosen->threads_now(out, timeout_seconds);
}

}  // namespace spyglass::sampling
