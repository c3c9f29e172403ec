#include "cpython/target.h"

#include <fmt/format.h>

#include "common/clock.h"
#include "common/error.h"
#include "process/maps.h"
#include "process/rseq.h"

namespace spyglass::cpython {

Target::Target(pid_t pid) : pid_(pid) {
  if (pid <= 0) throw Error(ErrorKind::kUsage, fmt::format("{} is not a valid process id", pid));
  if (!process::process_alive(pid)) {
    throw Error(ErrorKind::kNoSuchProcess, fmt::format("no process with id {}", pid));
  }
  try {
    std::vector<process::Mapping> maps = process::read_maps(pid);
    memory_ = std::make_unique<process::LiveMemory>(pid);
    for (const auto& m : maps) {
      if (m.readable && !m.path.empty() && m.path[0] == '/') {
        memory_->check_access(m.start);
        break;
      }
    }
    runtime_ = locate_runtime(pid, *memory_, maps);
  } catch (const Error& e) {
    // Whatever failed, a process that exited meanwhile is reported as exited.
    if (e.kind() != ErrorKind::kNoSuchProcess && !process::process_alive(pid)) {
      throw Error(ErrorKind::kNoSuchProcess, fmt::format("process {} has exited", pid));
    }
    throw;
  }
  WalkerConfig config;
  config.layout = runtime_.layout;
  config.runtime_addr = runtime_.runtime_addr;
  config.code_type = runtime_.code_type;
  config.unicode_type = runtime_.unicode_type;
  config.bytes_type = runtime_.bytes_type;
  config.code_counter_addr = runtime_.code_counter;
  config.rseq_cpu_offset = process::rseq_cpu_offset(pid, *memory_);
  prefetch_ = std::make_unique<process::PrefetchingMemory>(*memory_);
  walker_ = std::make_unique<StackWalker>(*prefetch_, config);
  objects_ =
      std::make_unique<ObjectReader>(*memory_, walker_->config().layout, walker_->code_cache());
  task_objects_ =
      std::make_unique<ObjectReader>(*prefetch_, walker_->config().layout, walker_->code_cache());
  tasks_ =
      std::make_unique<TaskReader>(pid, *prefetch_, *memory_, walker_->config().layout,
                                   walker_->code_cache(), *task_objects_, runtime_.runtime_addr);
  task_links_ = std::make_unique<TaskLinker>(*memory_, walker_->config().layout,
                                             walker_->code_cache(), *tasks_);
  if (runtime_.layout.thread.native_thread_id == 0)
    tids_ = std::make_unique<process::ThreadIds>(pid);
}

Target::~Target() = default;

process::ThreadIds* Target::thread_ids_for_walk() {
  if (tids_) tids_->begin_walk(monotonic_seconds());
  return tids_.get();
}

bool Target::walk(std::vector<ThreadStack>& out) {
  process::ThreadIds* tids = thread_ids_for_walk();
  prefetch_->begin_walk();
  bool ok = walker_->walk(out, tids);
  prefetch_->end_walk();
  if (!ok && !process::process_alive(pid_)) {
    throw Error(ErrorKind::kNoSuchProcess, fmt::format("process {} has exited", pid_));
  }
  return ok;
}

bool Target::walk_with_tasks(std::vector<ThreadStack>& out, std::vector<TaskStack>& tasks,
                             bool with_names) {
  process::ThreadIds* tids = thread_ids_for_walk();
  prefetch_->begin_walk(&tasks_->batch());
  // The tasks first, then the threads (the sample's instant), then the two are squared with
  // each other (TaskReader::reconcile). 3.14+ find tasks per thread: the previous walk's threads.
  if (thread_states_.empty()) {  // the first sample: the thread states alone, cheaply
    std::vector<ThreadStack> listed;
    if (walker_->list_threads(listed, tids)) {
      for (const auto& t : listed) thread_states_.push_back(t.tstate_addr);
    }
  }
  tasks_->read(thread_states_, tasks, with_names);
  bool ok = walker_->walk(out, tids);
  if (ok) {
    tasks_->reconcile(out, tasks, with_names);
    thread_states_.clear();
    for (const auto& t : out) thread_states_.push_back(t.tstate_addr);
  } else {
    tasks.clear();
  }
  prefetch_->end_walk();
  if (!ok && !process::process_alive(pid_)) {
    throw Error(ErrorKind::kNoSuchProcess, fmt::format("process {} has exited", pid_));
  }
  return ok;
}

std::string Target::thread_name(const ThreadStack& stack) {
  // A threading.Thread runs under Thread._bootstrap(self), its outermost frame (3.8-3.10 name
  // it `_bootstrap`, without the class).
  if (!stack.frames.empty() && !stack.truncated) {
    const Frame& outer = stack.frames.back();
    if (outer.code && outer.code->name == "_bootstrap" &&
        outer.code->filename.ends_with("threading.py")) {
      if (auto name = objects_->string_attribute(objects_->local_object(outer, 0), "_name")) {
        return *name;
      }
    }
  }
  if (stack.native_id == pid_) return "MainThread";
  return stack.native_id ? process::read_thread_name(pid_, stack.native_id) : std::string();
}

std::vector<std::string> Target::thread_names(const std::vector<ThreadStack>& stacks) {
  std::vector<std::string> names;
  names.reserve(stacks.size());
  for (const auto& s : stacks) names.push_back(thread_name(s));
  return names;
}

}  // namespace spyglass::cpython
