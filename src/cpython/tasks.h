// asyncio tasks of the target, for async-aware wall-mode sampling: a task suspended in `await`
// is on no thread's stack, yet its coroutines' calls are in progress. Each suspended task is
// read as a logical stack: its coroutine, then the coroutine that one awaits, and so on down to
// the innermost awaitable, where an `<await>` marker takes the waiting time (never a frame's
// own time).
//
// Where the tasks are found:
//   3.8-3.13  the registries of asyncio.tasks, found through sys.modules once the module is
//             imported: `_all_tasks` (a WeakSet, 3.8-3.11), `_scheduled_tasks` (a WeakSet) and
//             `_eager_tasks` (a set), 3.12-3.13; each task is a C `_asyncio.Task` (or a
//             subclass) whose coroutine sits at Layout::async.task_coro;
//   3.14+     the per-thread and per-interpreter lists of native tasks, described by the
//             `_asyncio` module's own AsyncioDebug table (read at run time and validated), plus
//             `_scheduled_tasks` for tasks of other classes.
// A task that is running is left to its thread's stack, where its frames already are. Whatever
// cannot be read (a task of a class without the C layout, a broken chain) is counted.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cpython/layout.h"
#include "cpython/stack.h"
#include "process/batched.h"

namespace spyglass::process {
class MemoryReader;
}

namespace spyglass::cpython {

class CodeCache;
class ObjectReader;

struct TaskStack {
  uint64_t task_addr = 0;
  std::string name;           // the task's name (Task-3), read only when asked for
  std::vector<Frame> frames;  // innermost first: `<await>`, then the coroutines, awaited first
  bool truncated = false;     // the chain broke off or was too long
  // What the innermost coroutine awaits when that is not a coroutine (a future's iterator, a
  // task, a gather's future), 0 when unknown: where 3.8-3.13 find the tasks a task waits for
  // (see task_links.h).
  uint64_t awaits = 0;
};

struct TaskStats {
  uint64_t reads = 0;      // times the task lists were read
  uint64_t suspended = 0;  // suspended tasks read (their stacks)
  // Tasks whose coroutine is not suspended: running (their thread's stack has them), not
  // started yet, or done.
  uint64_t not_suspended = 0;
  uint64_t unreadable = 0;  // tasks found but not read (unknown class, unreadable object)
  uint64_t cut_chains = 0;  // chains of coroutines that broke off: the task's stack is partial
  uint64_t cut_lists = 0;   // task lists that broke off (read while they changed): tasks lost
  // Tasks that resumed or suspended between the task read and the threads' walk (reconcile).
  uint64_t resumed = 0;
};

// 3.14+: the tasks of one circular list of llist_node {next, prev} (a thread's or an
// interpreter's), each node inside a task at `node_offset`, appended to `tasks`. False when
// the list broke off: a node unreadable, past `max_tasks`, or not linking back to the node
// before it. A thread state from the last walk whose thread has ended since is freed memory,
// and its allocator's links, followed as a list up to the bound, took a tenth of a second of
// reads in one sample (3.15, a thread per request), a sample that then stood for that time
// with what it read at its end: every request handler of the moment read wrong.
bool read_task_list(process::MemoryReader& memory, uint64_t head, uint64_t node_offset,
                    size_t max_tasks, std::vector<uint64_t>& tasks);

class TaskReader {
 public:
  // `pid` to find `_asyncio`'s AsyncioDebug table (3.14+), which may be loaded late.
  // `memory` serves the walk (its prefetch); `live` reads the process as it is now, to check
  // that a task's chain still holds once read.
  TaskReader(pid_t pid, process::MemoryReader& memory, process::MemoryReader& live,
             const Layout& layout, CodeCache& codes, ObjectReader& objects, uint64_t runtime_addr);
  ~TaskReader();
  // The batch a pass reads through (see PrefetchingMemory::begin_walk, which fetches it with
  // the walk's).
  process::BatchedMemory& batch() { return batch_; }
  // Every suspended task, as its logical stack, read just before the threads' walk;
  // `thread_states` are the threads' states (3.14+ keep tasks per thread). False when no task
  // registry is known yet (asyncio not imported, or this version cannot be read): `out` is
  // then empty. reconcile() then squares them with the walk (see tasks.cpp).
  bool read(const std::vector<uint64_t>& thread_states, std::vector<TaskStack>& out,
            bool with_names = false);
  void reconcile(const std::vector<ThreadStack>& threads, std::vector<TaskStack>& out,
                 bool with_names = false);
  const TaskStats& stats() const { return stats_; }
  // One line on what is read: "asyncio not imported yet", "3 registries", ...
  std::string describe() const;
  // The frame that stands for waiting in `await` (the innermost of every task's stack).
  static const CodeInfo& await_marker();
  // 3.14+: where a native task records the tasks that await it (the AsyncioDebug table's
  // task_awaited_by, a task or a set of them, and task_awaited_by_is_set, a byte telling
  // which); both 0 when the table is not found (yet).
  struct AwaitedByOffsets {
    uint64_t awaited_by = 0;
    uint64_t is_set = 0;
  };
  AwaitedByOffsets awaited_by_offsets() const {
    return debug_.found ? AwaitedByOffsets{debug_.task_awaited_by, debug_.task_awaited_by_is_set}
                        : AwaitedByOffsets{};
  }

 private:
  enum class TypeKind { kUnknown, kTask, kCoroutine, kNone, kOther };
  struct Registry {
    uint64_t set = 0;   // a PySetObject
    bool weak = false;  // holds weak references to the tasks (a WeakSet's data)
  };
  // How many modules sys.modules holds (0 when unreadable): it grows with every import. After
  // the first look, a poll (MemoryReader::read_polled): nullopt until the walk's batch holds
  // what it asks for (the walk after).
  std::optional<uint64_t> modules_count();
  void find_registries();
  bool registries_valid();
  // Whether a set's head, up to its table pointer, lies in the first `bytes` of a PySetObject,
  // and its entries are {key, hash} pairs of words, as read_set takes them.
  bool set_head_fits(size_t bytes) const;
  void find_asyncio_debug();
  TypeKind kind_of(uint64_t obj);
  // At least `need` bytes of the object at `addr`, and up to `want` (within its page) in the
  // same read: an object's type, then its fields, are one range of the batch, not one lookup
  // each. The last object's bytes are kept, for the next ask about it (kind_of, then
  // read_task or read_coroutine). nullptr when unreadable; `got` is how many there are.
  const uint8_t* object_bytes(uint64_t addr, size_t want, size_t need, size_t& got);
  size_t object_span_ = 0;  // what object_bytes reads of a task or coroutine (the constructor)
  uint64_t last_object_ = 0;
  const uint8_t* last_bytes_ = nullptr;
  size_t last_got_ = 0;
  std::array<uint8_t, 1024> scratch_{};   // object_bytes' copy outside a batch pass
  std::array<uint8_t, 1024> scratch2_{};  // the frame object's (3.8-3.10), beside the generator's
  void read_set(const Registry& registry, std::vector<uint64_t>& tasks);
  void read_task_list(uint64_t head, std::vector<uint64_t>& tasks);
  // Reads one task's stack; false when it has no call in progress or is running.
  bool read_task(uint64_t task, TaskStack& out, bool with_names);
  // One coroutine's frame, and what it awaits (0: nothing readable), when it is suspended.
  // `frame_addr` gets its frame's address whenever it has one (running too).
  enum class CoroState { kSuspended, kExecuting, kNotSuspended, kUnreadable };
  CoroState read_coroutine(uint64_t coro, Frame& frame, uint64_t& awaited, uint64_t& frame_addr);
  void read_name(uint64_t task, TaskStack& out);
  // What a chain's reading relied on (each coroutine's state and code, each link), read again
  // from the live process once the chain is read: false when any of it changed.
  void check(uint64_t addr, size_t size, uint64_t expected);
  // Reads every check again (batched); true for each owner (index in `out`) whose chain changed.
  std::vector<bool> changed_owners(size_t owners);
  // Drops from out[0, count) the stacks whose chain changed; returns how many are left.
  size_t drop_changed(std::vector<TaskStack>& out, size_t count);
  struct Check {
    uint64_t addr = 0;
    size_t size = 0;
    uint64_t expected = 0;
    uint64_t now = 0;
    size_t owner = 0;  // the stack it belongs to
  };
  std::vector<Check> checks_;
  size_t check_owner_ = 0;
  uint64_t field_code_raw_ = 0;  // the code word of the frame read last, as in memory
  // A code object's entry, looked up once a pass (a thousand tasks share a few functions).
  const CodeInfo* code_info(uint64_t code, uint64_t frame_addr);
  std::unordered_map<uint64_t, const CodeInfo*> pass_codes_;

  pid_t pid_;
  process::MemoryReader& memory_;
  process::MemoryReader& live_;
  // What the chains are read through: every task, coroutine and frame the last read touched,
  // fetched again in one batch at the start of the next (see batched.h). Outside read() it
  // reads the live process (reconcile reads tasks again after the walk).
  process::BatchedMemory batch_;
  const Layout& layout_;
  CodeCache& codes_;
  ObjectReader& objects_;
  uint64_t runtime_addr_;
  TaskStats stats_;
  std::vector<Registry> registries_;
  uint64_t set_type_ = 0;
  uint64_t modules_used_ = ~uint64_t{0};  // sys.modules' size at the last search
  double next_search_ = 0;                // monotonic seconds
  // 3.14+: the AsyncioDebug table.
  struct AsyncioDebug {
    bool found = false;
    uint64_t task_size = 0, task_name = 0, task_coro = 0, task_node = 0;
    uint64_t interp_tasks_head = 0, thread_tasks_head = 0;
    uint64_t task_awaited_by = 0, task_awaited_by_is_set = 0;  // 0: outside the struct
  } debug_;
  size_t maps_searched_ = 0;  // mappings seen by the last search for `_asyncio`
  std::unordered_set<std::string> searched_files_;  // path@inode of each file searched
  std::unordered_map<uint64_t, TypeKind> types_;
  std::array<std::pair<uint64_t, TypeKind>, 16> recent_types_{};  // cleared with types_
  std::vector<uint64_t> chain_;  // read_task's, kept for its capacity
  // read_set's, likewise: the set's table, its keys, a weak set's referents and their batch.
  std::vector<uint64_t> set_table_, set_keys_, set_referents_;
  std::vector<process::ReadRequest> set_requests_;
  std::vector<uint64_t> thread_frames_;  // frame addresses of the threads' walk, sorted
  struct Running {  // a task read running: its address and its coroutine's frame
    uint64_t task = 0;
    uint64_t frame = 0;
  };
  std::vector<Running> running_;
  std::vector<uint64_t> tasks_;
};

}  // namespace spyglass::cpython
