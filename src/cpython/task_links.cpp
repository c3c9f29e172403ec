#include "cpython/task_links.h"

#include <algorithm>

#include "cpython/objects.h"
#include "cpython/remote_pointer.h"
#include "cpython/tasks.h"
#include "process/memory.h"

namespace spyglass::cpython {
// Named, not anonymous: the wheel's unity build puts this file beside tasks.cpp, whose
// anonymous namespace has constants of the same meaning.
namespace task_links_detail {

// _asyncio's future iterator {PyObject_HEAD, FutureObj *future} (Modules/_asynciomodule.c,
// futureiterobject, the same 3.8-3.15; no header has it). Types, sets and lists are read with
// Layout::objects (versions.toml).
constexpr uint64_t kFutureIterFuture = 16;
// Bounds on what a damaged or hostile target could make us read.
constexpr uint64_t kMaxLinkSetEntries = 1 << 14;
constexpr int64_t kMaxListItems = 1 << 14;
constexpr int kMaxGatherDepth = 4;  // gathers of gathers followed this deep
constexpr size_t kMaxTypeCache = 4096;

CodeInfo make_task_marker() {
  CodeInfo info;
  info.id = ~uint32_t{0} - 1;  // never a code cache's id, nor the `<await>` marker's
  info.name = info.qualname = "<task>";
  return info;
}

}  // namespace task_links_detail

using namespace task_links_detail;

const CodeInfo& TaskLinker::task_marker() {
  static const CodeInfo marker = make_task_marker();
  return marker;
}

TaskLinker::TaskLinker(process::MemoryReader& memory, const Layout& layout, CodeCache& codes,
                       const TaskReader& reader)
    : memory_(memory), layout_(layout), objects_(memory_, layout, codes), reader_(reader) {}

std::string TaskLinker::type_of(uint64_t obj) {
  uint64_t type = 0;
  if (!plausible_pointer(obj) || !memory_.read_value(obj + layout_.ob_type, type)) return {};
  return name_of_type(type);
}

std::string TaskLinker::name_of_type(uint64_t type) {
  if (!plausible_pointer(type)) return {};
  if (auto it = type_names_.find(type); it != type_names_.end()) return it->second;
  if (type_names_.size() >= kMaxTypeCache) type_names_.clear();  // heap types come and go
  std::string name = objects_.type_name_of_type(type);
  if (!name.empty()) type_names_.emplace(type, name);
  return name;
}

bool TaskLinker::is_task(uint64_t obj) {
  uint64_t type = 0;
  return plausible_pointer(obj) && memory_.read_value(obj + layout_.ob_type, type) &&
         is_task_type(type);
}

void TaskLinker::read_words(const std::vector<uint64_t>& addrs, std::vector<uint64_t>& out) {
  out.assign(addrs.size(), 0);
  std::vector<process::ReadRequest> requests;
  std::vector<size_t> slots;
  for (size_t i = 0; i < addrs.size(); ++i) {
    if (!plausible_pointer(addrs[i])) continue;
    requests.push_back({addrs[i], &out[i], 8});
    slots.push_back(i);
  }
  const size_t done = memory_.read_batch(requests);
  for (size_t k = done; k < requests.size(); ++k) {  // past a failed read: one by one
    if (!memory_.read(requests[k].addr, &out[slots[k]], 8)) out[slots[k]] = 0;
  }
}

bool TaskLinker::is_task_type(uint64_t type) {
  if (!plausible_pointer(type)) return false;
  if (auto it = task_types_.find(type); it != task_types_.end()) return it->second;
  if (task_types_.size() >= kMaxTypeCache) task_types_.clear();
  bool task = false;
  uint64_t t = type;
  for (int depth = 0; depth < 8 && plausible_pointer(t); ++depth) {
    if (objects_.type_name_of_type(t) == "_asyncio.Task") {
      task = true;
      break;
    }
    if (!memory_.read_value(t + layout_.objects.type_base, t)) break;
  }
  task_types_.emplace(type, task);
  return task;
}

bool TaskLinker::read_set(uint64_t set, std::vector<uint64_t>& out) {
  if (type_of(set) != "set") return false;
  const auto& o = layout_.objects;
  uint64_t head[6] = {};
  if (o.set_mask + 8 > sizeof(head) || o.set_table + 8 > sizeof(head) || o.set_entry_size != 16 ||
      !memory_.read(set, head, sizeof(head))) {
    return false;
  }
  const uint64_t mask = head[o.set_mask / 8], table = head[o.set_table / 8];
  if (mask + 1 > kMaxLinkSetEntries || ((mask + 1) & mask) != 0 || !plausible_pointer(table)) {
    return false;
  }
  std::vector<uint64_t> entries((mask + 1) * 2);
  if (!memory_.read(table, entries.data(), entries.size() * 8)) return false;
  for (uint64_t i = 0; i <= mask; ++i) {
    const uint64_t key = entries[2 * i];
    const auto hash = static_cast<int64_t>(entries[2 * i + 1]);
    if (key == 0 || hash == -1) continue;  // empty, or a removed entry (the dummy key)
    if (plausible_pointer(key)) out.push_back(key);
  }
  return true;
}

bool TaskLinker::read_list(uint64_t list, std::vector<uint64_t>& out) {
  if (type_of(list) != "list") return false;
  int64_t size = 0;
  uint64_t items = 0;
  if (!memory_.read_value(list + layout_.objects.var_size, size) || size < 0 ||
      size > kMaxListItems || !memory_.read_value(list + layout_.objects.list_items, items)) {
    return false;
  }
  if (size == 0) return true;
  if (!plausible_pointer(items)) return false;
  std::vector<uint64_t> values(static_cast<size_t>(size));
  if (!memory_.read(items, values.data(), values.size() * 8)) return false;
  for (uint64_t v : values) {
    if (plausible_pointer(v)) out.push_back(v);
  }
  return true;
}

void TaskLinker::add(std::vector<uint64_t>& awaiters, uint64_t awaiter) {
  if (awaiters.size() >= kMaxAwaiters) return;
  if (std::find(awaiters.begin(), awaiters.end(), awaiter) != awaiters.end()) return;
  awaiters.push_back(awaiter);
  ++stats_.links;
}

// 3.14+: the task's own record of who awaits it (`record`, read with the others in one batch).
void TaskLinker::from_awaited_by(const TaskStack& task, uint64_t record, uint8_t is_set,
                                 std::vector<uint64_t>& out) {
  if (record == 0) return;  // nobody awaits it
  std::vector<uint64_t> members;
  bool readable = is_set <= 1 && plausible_pointer(record);
  if (readable && is_set) {
    readable = read_set(record, members);
  } else if (readable) {
    members.push_back(record);
  }
  if (!readable) {
    ++stats_.unreadable;
    return;
  }
  for (uint64_t awaiter : members) {
    // One of the tasks read, or at least a task (one running, or read in another state).
    if (awaiter != task.task_addr && (index_.contains(awaiter) || is_task(awaiter))) {
      add(out, awaiter);
    } else {
      ++stats_.unreadable;
    }
  }
}

void TaskLinker::gather_children(uint64_t gathering, int depth, std::vector<uint64_t>& children) {
  const uint64_t list = objects_.attribute_object(gathering, "_children");
  std::vector<uint64_t> members;
  if (!list || !read_list(list, members)) {
    ++stats_.unreadable;
    return;
  }
  for (uint64_t child : members) {
    if (is_task(child)) {
      children.push_back(child);
    } else if (depth + 1 < kMaxGatherDepth && type_of(child) == "_GatheringFuture") {
      gather_children(child, depth + 1, children);
    }
    // Anything else (a plain future) is nobody's task: no link, and nothing wrong.
  }
}

// 3.8-3.13: what the awaiting task waits for, seen from its side.
void TaskLinker::from_awaiter(size_t index, const std::vector<TaskStack>& tasks, uint64_t future,
                              uint64_t future_type,
                              std::vector<std::vector<uint64_t>>& awaited_by) {
  const TaskStack& awaiter = tasks[index];
  std::vector<uint64_t> children;
  if (future && is_task_type(future_type)) {
    children.push_back(future);
  } else if (future && name_of_type(future_type) == "_GatheringFuture") {
    gather_children(future, 0, children);
  }
  // A TaskGroup's exit waits on a plain future its children's ends complete: the group knows
  // them (its `_tasks`) and the task it belongs to (`_parent_task`).
  if (awaiter.frames.size() > 1) {
    const Frame& innermost = awaiter.frames[1];
    const CodeInfo* code = innermost.code;
    if (code && code->filename.ends_with("taskgroups.py") &&
        (code->qualname == "TaskGroup.__aexit__" || code->qualname == "TaskGroup._aexit")) {
      const uint64_t group = objects_.local_object(innermost, 0);
      const uint64_t parent = group ? objects_.attribute_object(group, "_parent_task") : 0;
      const uint64_t set = group ? objects_.attribute_object(group, "_tasks") : 0;
      std::vector<uint64_t> members;
      if (parent != awaiter.task_addr || !set || !read_set(set, members)) {
        ++stats_.unreadable;
      } else {
        for (uint64_t child : members) {
          if (is_task(child)) children.push_back(child);
        }
      }
    }
  }
  for (uint64_t child : children) {
    auto it = index_.find(child);
    // A child that is not suspended (running on its thread, done) has no stack to draw.
    if (it != index_.end() && child != awaiter.task_addr) {
      add(awaited_by[it->second], awaiter.task_addr);
    }
  }
}

void TaskLinker::link(const std::vector<TaskStack>& tasks,
                      std::vector<std::vector<uint64_t>>& awaited_by) {
  memory_.begin();
  struct EndPass {
    process::BatchedMemory& batch;
    ~EndPass() { batch.end(); }
  } end_pass{memory_};
  ++stats_.reads;
  awaited_by.assign(tasks.size(), {});
  index_.clear();
  for (size_t i = 0; i < tasks.size(); ++i) index_.emplace(tasks[i].task_addr, i);
  const auto offsets = reader_.awaited_by_offsets();
  if (offsets.awaited_by != 0) {
    // Every task's record and its kind in one system call.
    const size_t n = tasks.size();
    std::vector<uint64_t> records(n, 0);
    std::vector<uint8_t> is_set(n, 0);
    std::vector<process::ReadRequest> requests;
    requests.reserve(2 * n);
    for (size_t i = 0; i < n; ++i) {
      requests.push_back({tasks[i].task_addr + offsets.awaited_by, &records[i], 8});
      requests.push_back({tasks[i].task_addr + offsets.is_set, &is_set[i], 1});
    }
    const size_t done = memory_.read_batch(requests);
    for (size_t i = 0; i < n; ++i) {
      if (2 * i + 1 >= done && (!memory_.read(requests[2 * i].addr, &records[i], 8) ||
                                !memory_.read(requests[2 * i + 1].addr, &is_set[i], 1))) {
        ++stats_.unreadable;
        continue;
      }
      from_awaited_by(tasks[i], records[i], is_set[i], awaited_by[i]);
    }
    return;
  }
  // What each task awaits, its type, and behind a future iterator its future and that one's
  // type: three batches (one system call each) for all the tasks, since most await a plain
  // future (a sleep, I/O) and need nothing more.
  const size_t n = tasks.size();
  std::vector<uint64_t> where(n, 0), types, futures(n, 0), future_types;
  for (size_t i = 0; i < n; ++i) where[i] = tasks[i].awaits ? tasks[i].awaits + layout_.ob_type : 0;
  read_words(where, types);
  for (size_t i = 0; i < n; ++i) {
    const std::string type = name_of_type(types[i]);
    where[i] = type == "_asyncio.FutureIter" || type == "FutureIter"
                   ? tasks[i].awaits + kFutureIterFuture
                   : 0;
  }
  read_words(where, futures);
  for (size_t i = 0; i < n; ++i) {
    if (!where[i] && types[i]) futures[i] = tasks[i].awaits;  // awaited without an iterator
    // A finished iterator has let its future go (0).
    where[i] = plausible_pointer(futures[i]) ? futures[i] + layout_.ob_type : 0;
  }
  read_words(where, future_types);
  for (size_t i = 0; i < n; ++i) from_awaiter(i, tasks, futures[i], future_types[i], awaited_by);
}

std::vector<size_t> TaskLinker::choose_parents(
    const std::vector<uint64_t>& task_addrs, const std::vector<std::vector<uint64_t>>& awaited_by) {
  const size_t n = task_addrs.size();
  std::unordered_map<uint64_t, size_t> index;
  for (size_t i = 0; i < n; ++i) index.emplace(task_addrs[i], i);
  std::vector<size_t> parent(n, SIZE_MAX);
  for (size_t i = 0; i < n && i < awaited_by.size(); ++i) {
    uint64_t best = 0;
    for (uint64_t awaiter : awaited_by[i]) {
      auto it = index.find(awaiter);
      if (it == index.end() || it->second == i) continue;
      if (best == 0 || awaiter < best) {
        best = awaiter;
        parent[i] = it->second;
      }
    }
  }
  // Cycles (a damaged record, or links read while they changed): each walk up from a task not
  // yet settled marks its path; reaching the path again cuts the edge that closed the cycle.
  std::vector<uint8_t> state(n, 0);  // 0 unseen, 1 on the current path, 2 settled
  std::vector<size_t> path;
  for (size_t i = 0; i < n; ++i) {
    path.clear();
    size_t node = i;
    while (node != SIZE_MAX && state[node] == 0) {
      state[node] = 1;
      path.push_back(node);
      node = parent[node];
    }
    if (node != SIZE_MAX && state[node] == 1) parent[path.back()] = SIZE_MAX;
    for (size_t p : path) state[p] = 2;
  }
  return parent;
}

}  // namespace spyglass::cpython
