// A Python process attached to for reading: its memory, its interpreter, its walker.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "cpython/interpreter.h"
#include "cpython/objects.h"
#include "cpython/stack.h"
#include "cpython/task_links.h"
#include "cpython/tasks.h"
#include "cpython/walker.h"
#include "process/maps.h"
#include "process/memory.h"
#include "process/prefetch.h"

namespace spyglass::cpython {

class Target {
 public:
  // Checks access and locates the interpreter; throws Error with one clear line otherwise.
  explicit Target(pid_t pid);
  ~Target();
  pid_t pid() const { return pid_; }
  const RuntimeLocation& runtime() const { return runtime_; }
  StackWalker& walker() { return *walker_; }
  process::LiveMemory& memory() { return *memory_; }
  // Prefetch hits and misses, for status and benchmarks.
  const process::PrefetchingMemory& prefetch() const { return *prefetch_; }
  // Walks every thread; native ids resolved for every version. Throws Error(kNoSuchProcess)
  // when the process has exited; returns false when this walk failed for another reason.
  bool walk(std::vector<ThreadStack>& out);
  // walk(), and in the same instant every suspended asyncio task (see tasks.h); `tasks` is
  // empty when no task registry is known yet.
  bool walk_with_tasks(std::vector<ThreadStack>& out, std::vector<TaskStack>& tasks,
                       bool with_names = false);
  TaskReader& tasks() { return *tasks_; }
  // Who awaits whom among the tasks of the last walk_with_tasks (see task_links.h), read from
  // the live process.
  TaskLinker& task_links() { return *task_links_; }
  // The name of each thread of a walk: Python's threading.Thread.name where the thread runs a
  // threading.Thread (read from the Thread object its bootstrap frame holds), "MainThread" for
  // the main thread, else the kernel's name (/proc/PID/task/TID/comm).
  std::vector<std::string> thread_names(const std::vector<ThreadStack>& stacks);
  std::string thread_name(const ThreadStack& stack);
  // Reading objects: a frame's locals (valid for the frames of the last walk only).
  ObjectReader& objects() { return *objects_; }

 private:
  // 3.8-3.10: the thread ids a walk's pthread reads are checked against, ready for a new walk
  // (nullptr from 3.11, whose thread states hold them).
  process::ThreadIds* thread_ids_for_walk();
  pid_t pid_;
  std::unique_ptr<process::LiveMemory> memory_;
  std::unique_ptr<process::PrefetchingMemory> prefetch_;  // what the walker reads through
  RuntimeLocation runtime_;
  std::unique_ptr<StackWalker> walker_;
  std::unique_ptr<ObjectReader> objects_;
  std::unique_ptr<ObjectReader> task_objects_;  // reads through the prefetch, like the walker
  std::unique_ptr<TaskReader> tasks_;
  std::unique_ptr<TaskLinker> task_links_;
  std::vector<uint64_t> thread_states_;  // of the last walk, for the next task read
  std::unique_ptr<process::ThreadIds> tids_;
};

}  // namespace spyglass::cpython
