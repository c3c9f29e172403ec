// Who awaits whom among the target's asyncio tasks (issue 15): for each suspended task that
// TaskReader read, the tasks waiting for it, so that `dump` can nest tasks like
// `python -m asyncio pstree` and the reports can draw a task under the frames of the task that
// awaits it.
//
// Where the links come from:
//   3.14+     the interpreter records them: every native task's `task_awaited_by` holds the
//             task awaiting it, or a set of them (`task_awaited_by_is_set`), for a direct
//             `await task`, gather and TaskGroup alike (offsets from the AsyncioDebug table).
//   3.8-3.13  nothing records them; they are derived from the awaiting side, from what its
//             innermost coroutine awaits (TaskStack::awaits, the top of its value stack):
//               - a Task (through the future iterator `await` makes): a direct `await task`;
//               - a `_GatheringFuture`: its children, the instance attribute `_children` (a
//                 list; a child that is itself a gather is followed, a few levels deep);
//               - a TaskGroup's `__aexit__`/`_aexit` as the innermost coroutine (3.11-3.13):
//                 its `self` (local 0) is the group, whose `_tasks` set holds the children, and
//                 whose `_parent_task` must be the awaiting task itself.
//             Other ways to wait for tasks (asyncio.wait, shield, wait_for before 3.12) leave
//             no such trace: those tasks are drawn as roots.
// The links are read right after the walk, from the live process, and every pointer is
// untrusted: each object's type is checked, every container's size bounded, and an awaiter is
// kept only when it is one of the tasks read or an object of a Task type. What does not check
// out is counted (TaskLinkStats::unreadable), never followed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cpython/layout.h"
#include "cpython/objects.h"
#include "cpython/stack.h"
#include "process/batched.h"

namespace spyglass::process {
class MemoryReader;
}

namespace spyglass::cpython {

class CodeCache;
class TaskReader;
struct TaskStack;

struct TaskLinkStats {
  uint64_t reads = 0;       // times the links of a read were looked for
  uint64_t links = 0;       // (task, awaiter) pairs found
  uint64_t unreadable = 0;  // records or containers of links that did not check out
};

class TaskLinker {
 public:
  TaskLinker(process::MemoryReader& memory, const Layout& layout, CodeCache& codes,
             const TaskReader& reader);
  // For each of `tasks` (one read's suspended tasks), the addresses of the tasks that await
  // it, each once, in the order found (at most kMaxAwaiters).
  void link(const std::vector<TaskStack>& tasks, std::vector<std::vector<uint64_t>>& awaited_by);
  const TaskLinkStats& stats() const { return stats_; }

  static constexpr size_t kMaxAwaiters = 64;
  // The frame that marks where a task's own stack begins, under its awaiter's frames.
  static const CodeInfo& task_marker();
  // For each task, the index of the task it is drawn under (SIZE_MAX: none, a root): among its
  // awaiters that are in `tasks`, the lowest address (the same choice at every sample); a link
  // that would close a cycle is dropped. Pure: unit-tested.
  static std::vector<size_t> choose_parents(const std::vector<uint64_t>& task_addrs,
                                            const std::vector<std::vector<uint64_t>>& awaited_by);

 private:
  std::string type_of(uint64_t obj);  // the object's type name, "" when unreadable
  std::string name_of_type(uint64_t type);
  bool is_task(uint64_t obj);  // an _asyncio.Task, or of a subclass
  bool is_task_type(uint64_t type);
  // One word at each address (0: skipped, or unreadable), in one batch.
  void read_words(const std::vector<uint64_t>& addrs, std::vector<uint64_t>& out);
  // The members of a set (PySetObject) or list, bounded; false when it does not check out.
  bool read_set(uint64_t set, std::vector<uint64_t>& out);
  bool read_list(uint64_t list, std::vector<uint64_t>& out);
  void from_awaited_by(const TaskStack& task, uint64_t record, uint8_t is_set,
                       std::vector<uint64_t>& out);
  // `future`: what the task awaits, behind its future iterator (0: nothing readable).
  void from_awaiter(size_t index, const std::vector<TaskStack>& tasks, uint64_t future,
                    uint64_t future_type, std::vector<std::vector<uint64_t>>& awaited_by);
  void gather_children(uint64_t gathering, int depth, std::vector<uint64_t>& children);
  void add(std::vector<uint64_t>& awaiters, uint64_t awaiter);

  // Every read goes through a batch of the linker's own: what the last sample's links read is
  // fetched in one call at the start of the next (as the task reader does), instead of
  // thousands of scattered words a sample (1,000 tasks on 3.15: 1.1 ms of links a sample).
  process::BatchedMemory memory_;
  const Layout& layout_;
  // Instance attributes (a gather's `_children`, a TaskGroup's `_tasks`) through the batch
  // too: read from the process each, their dict keys, names and types took a system call
  // apiece, 0.8 of them a sample on the reference workload at 1 kHz.
  ObjectReader objects_;
  const TaskReader& reader_;
  TaskLinkStats stats_;
  std::unordered_map<uint64_t, std::string> type_names_;  // type address -> tp_name
  std::unordered_map<uint64_t, bool> task_types_;         // type address -> a Task type
  std::unordered_map<uint64_t, size_t> index_;            // task address -> index in `tasks`
  // Nothing of 3.8-3.13's links is kept from one read to the next: asyncio keeps its future
  // iterators on a free list and the allocator reuses a finished gather's memory for the next
  // one, so the same addresses soon stand for other awaits (a cache keyed on them left 40 % of
  // a gather loop's children unlinked).
};

}  // namespace spyglass::cpython
