#include "cpython/tasks.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "common/clock.h"
#include "common/error.h"
#include "cpython/code_cache.h"
#include "cpython/objects.h"
#include "cpython/remote_pointer.h"
#include "process/elf.h"
#include "process/maps.h"
#include "process/memory.h"

namespace spyglass::cpython {
namespace {

// The AsyncioDebug table of 3.14+ (Modules/_asynciomodule.c, Py_AsyncioModuleDebugOffsets):
// the task object {size, task_name, task_awaited_by, task_is_task, task_awaited_by_is_set,
// task_coro, task_node}, the interpreter state {size, asyncio_tasks_head} and the thread state
// {size, asyncio_running_loop, asyncio_running_task, asyncio_tasks_head}: 13 words.
constexpr size_t kAsyncioDebugWords = 13;
// Bounds on what a damaged or hostile target could make us read.
constexpr uint64_t kMaxSetEntries = 1 << 16;
constexpr size_t kMaxTasks = 100'000;
constexpr size_t kMaxChain = 256;
constexpr uint64_t kMaxStructSize = 1 << 22;
constexpr double kSearchInterval = 0.02;  // seconds between searches for the registries

template <typename T>
T read_field(const uint8_t* bytes, uint64_t offset) {
  T value;
  std::memcpy(&value, bytes + offset, sizeof(T));
  return value;
}

CodeInfo make_await_marker() {
  CodeInfo info;
  info.id = ~uint32_t{0};  // never a code cache's id (they count up from 0)
  info.name = info.qualname = "<await>";
  return info;
}

}  // namespace

const CodeInfo& TaskReader::await_marker() {
  static const CodeInfo marker = make_await_marker();
  return marker;
}

TaskReader::TaskReader(pid_t pid, process::MemoryReader& memory, process::MemoryReader& live,
                       const Layout& layout, CodeCache& codes, ObjectReader& objects,
                       uint64_t runtime_addr)
    : pid_(pid),
      memory_(memory),
      live_(live),
      batch_(live),
      layout_(layout),
      codes_(codes),
      objects_(objects),
      runtime_addr_(runtime_addr) {
  // A task's fields and, from 3.11, a coroutine's state, frame header and the first few dozen
  // slots of its frame (the awaited object among them) in one read.
  object_span_ = layout.frame_model == FrameModel::kFrameObject ? 256 : 512;
}

TaskReader::~TaskReader() = default;

std::string TaskReader::describe() const {
  if (!layout_.async.gen_frame && !layout_.async.gen_iframe) {
    return "not readable in this version";
  }
  std::string where;
  if (debug_.found) where = "the interpreter's task lists";
  if (!registries_.empty()) {
    if (!where.empty()) where += " and ";
    where += fmt::format("{} task {}", registries_.size(),
                         registries_.size() == 1 ? "registry" : "registries");
  }
  return where.empty() ? "asyncio not imported yet" : "read from " + where;
}

const uint8_t* TaskReader::object_bytes(uint64_t addr, size_t want, size_t need, size_t& got) {
  if (addr == last_object_ && last_bytes_ && last_got_ >= need) {
    got = last_got_;
    return last_bytes_;
  }
  last_object_ = 0;
  last_bytes_ = nullptr;
  if (!plausible_pointer(addr) || need > scratch_.size()) return nullptr;
  // Within the object's page (a read past it might reach an unmapped page), at least `need`.
  const uint64_t page_end = (addr | 4095) + 1;
  size_t size = std::max(need, std::min({want, scratch_.size(), size_t(page_end - addr)}));
  const uint8_t* bytes = batch_.view_or_read(addr, size, scratch_.data());
  if (!bytes && size > need) bytes = batch_.view_or_read(addr, size = need, scratch_.data());
  if (!bytes) return nullptr;
  last_object_ = addr;
  last_bytes_ = bytes;
  last_got_ = got = size;
  return bytes;
}

TaskReader::TypeKind TaskReader::kind_of(uint64_t obj) {
  size_t got = 0;
  const uint8_t* bytes = object_bytes(obj, object_span_, layout_.ob_type + 8, got);
  const uint64_t type = bytes ? read_field<uint64_t>(bytes, layout_.ob_type) : 0;
  if (!plausible_pointer(type)) return TypeKind::kUnknown;
  // The last types asked for first: a thousand tasks ask about three or four types.
  auto& recent = recent_types_[(type >> 4) % recent_types_.size()];
  if (recent.first == type) return recent.second;
  if (auto it = types_.find(type); it != types_.end()) {
    recent = *it;
    return it->second;
  }
  if (types_.size() > 4096) {  // heap types come and go
    types_.clear();
    recent_types_.fill({});
  }
  TypeKind kind = TypeKind::kOther;
  uint64_t t = type;
  for (int depth = 0; depth < 8 && plausible_pointer(t); ++depth) {
    std::string name = objects_.type_name_of_type(t);
    if (name.empty()) {
      if (depth == 0) return TypeKind::kUnknown;
      break;
    }
    if (depth == 0 && (name == "coroutine" || name == "generator")) {
      kind = TypeKind::kCoroutine;
      break;
    }
    if (depth == 0 && name == "NoneType") {
      kind = TypeKind::kNone;
      break;
    }
    if (name == "_asyncio.Task") {
      kind = TypeKind::kTask;
      break;
    }
    if (!memory_.read_value(t + layout_.objects.type_base, t)) break;
  }
  types_.emplace(type, kind);
  recent = {type, kind};
  return kind;
}

// --- Where the tasks are -------------------------------------------------------------------

// A program that never imports asyncio had this looked at every sample, and sys.modules'
// size was a range of every batch of its own: 3 % of a sample's time at 100 kHz.
std::optional<uint64_t> TaskReader::modules_count() {
  if (!layout_.async.interp_modules) return 0;
  // The first look reads at once (a dump walks once). Each later one is a chain of polls: each
  // link is where the last poll found it, so all three are held in the batch after they were
  // asked for, unless one moved (then the next poll holds the new one).
  const bool first = modules_used_ == ~uint64_t{0};
  bool pending = false;
  auto get = [&](uint64_t addr, uint64_t& out) {
    if (first) return memory_.read_value(addr, out);
    if (memory_.read_polled(addr, &out, sizeof(out))) return true;
    pending = true;
    return false;
  };
  uint64_t interp = 0, modules = 0, used = 0;
  if (!get(runtime_addr_ + layout_.runtime.interpreters_head, interp) ||
      !plausible_pointer(interp) || !get(interp + layout_.async.interp_modules, modules) ||
      !plausible_pointer(modules) || !get(modules + layout_.objects.dict_used, used)) {
    if (pending) return std::nullopt;
    return 0;
  }
  return used;
}

void TaskReader::find_registries() {
  const auto& A = layout_.async;
  registries_.clear();
  if (!A.interp_modules || !A.module_dict) return;
  uint64_t interp = 0;
  if (!memory_.read_value(runtime_addr_ + layout_.runtime.interpreters_head, interp)) return;
  for (int n = 0; n < 256 && plausible_pointer(interp); ++n) {
    uint64_t modules = 0, next = 0;
    memory_.read_value(interp + layout_.interp.next, next);
    if (memory_.read_value(interp + A.interp_modules, modules) && plausible_pointer(modules)) {
      uint64_t module = objects_.dict_item(modules, "asyncio.tasks");
      uint64_t dict = 0;
      if (module && memory_.read_value(module + A.module_dict, dict) && plausible_pointer(dict)) {
        for (const char* name : {"_all_tasks", "_scheduled_tasks", "_eager_tasks"}) {
          uint64_t registry = objects_.dict_item(dict, name);
          if (!registry) continue;
          std::string type = objects_.type_name(registry);
          bool weak = type == "WeakSet";
          if (weak) registry = objects_.attribute_object(registry, "data");
          if (!registry || objects_.type_name(registry) != "set") continue;
          if (!memory_.read_value(registry + layout_.ob_type, set_type_)) continue;
          registries_.push_back(Registry{registry, weak});
        }
      }
    }
    if (next == interp) break;
    interp = next;
  }
}

bool TaskReader::set_head_fits(size_t bytes) const {
  const auto& o = layout_.objects;
  return o.set_mask + 8 <= bytes && o.set_table + 8 <= bytes && o.set_entry_size == 16;
}

bool TaskReader::registries_valid() {
  for (const Registry& r : registries_) {
    uint64_t head[6] = {};
    if (!set_head_fits(sizeof(head)) || !batch_.read(r.set, head, sizeof(head)) ||
        head[1] != set_type_) {
      return false;
    }
    uint64_t mask = head[layout_.objects.set_mask / 8], table = head[layout_.objects.set_table / 8];
    if (mask + 1 > kMaxSetEntries || ((mask + 1) & mask) != 0 || !plausible_pointer(table)) {
      return false;
    }
  }
  return true;
}

void TaskReader::find_asyncio_debug() {
  std::vector<process::Mapping> maps;
  try {
    maps = process::read_maps(pid_);
  } catch (const Error&) {
    return;
  }
  if (maps.size() == maps_searched_) return;  // nothing was loaded since the last search
  maps_searched_ = maps.size();
  // The table lives in the `_asyncio` extension module, or wherever it was built in (the
  // interpreter's own binary or libpython): files mapped from offset 0, the first of each.
  for (const auto& m : maps) {
    if (m.offset != 0 || m.path.empty() || m.path[0] != '/') continue;
    std::string base = m.path.substr(m.path.rfind('/') + 1);
    if (!base.starts_with("_asyncio") && base.find("python") == std::string::npos) continue;
    // A file without the table is not opened again (libpython is large).
    if (!searched_files_.insert(m.path + "@" + std::to_string(m.inode)).second) continue;
    std::optional<process::ElfSection> section;
    uint64_t bias = 0;
    try {
      process::ElfFile elf(process::path_in_process_root(pid_, m.path));
      section = elf.section(".AsyncioDebug");
      bias = m.start - elf.first_load_vaddr();
    } catch (const Error&) {
      continue;
    }
    if (!section || section->size < kAsyncioDebugWords * 8) continue;
    uint64_t w[kAsyncioDebugWords] = {};
    if (!memory_.read(bias + section->addr, w, sizeof(w))) continue;
    // Untrusted: every offset must lie inside the struct whose size the table gives.
    auto inside = [](uint64_t offset, uint64_t width, uint64_t size) {
      return size > 0 && size <= kMaxStructSize && offset + width <= size;
    };
    if (!inside(w[1], 8, w[0]) || !inside(w[5], 8, w[0]) || !inside(w[6], 16, w[0]) ||
        !inside(w[8], 16, w[7]) || !inside(w[12], 16, w[9])) {
      continue;
    }
    debug_ = AsyncioDebug{true, w[0], w[1], w[5], w[6], w[8], w[12]};
    // Who awaits a task (task_links.cpp): left at 0, unread, unless inside the task too.
    if (inside(w[2], 8, w[0]) && inside(w[4], 1, w[0])) {
      debug_.task_awaited_by = w[2];
      debug_.task_awaited_by_is_set = w[4];
    }
    return;
  }
}

void TaskReader::read_set(const Registry& registry, std::vector<uint64_t>& tasks) {
  uint64_t head[6] = {};
  if (!set_head_fits(sizeof(head)) || !batch_.read(registry.set, head, sizeof(head))) return;
  const uint64_t entries = head[layout_.objects.set_mask / 8] + 1;
  if (entries > kMaxSetEntries) return;
  // The scratch lists keep their memory from sample to sample.
  std::vector<uint64_t>& table = set_table_;
  table.assign(entries * 2, 0);
  if (!batch_.read(head[layout_.objects.set_table / 8], table.data(),
                   entries * layout_.objects.set_entry_size)) {
    ++stats_.cut_lists;
    return;
  }
  std::vector<uint64_t>& keys = set_keys_;
  keys.clear();
  for (uint64_t i = 0; i < entries; ++i) {
    uint64_t key = table[2 * i];
    int64_t hash = static_cast<int64_t>(table[2 * i + 1]);
    if (key == 0 || hash == -1) continue;  // empty, or a removed entry (the dummy key)
    if (plausible_pointer(key)) keys.push_back(key);
  }
  if (!registry.weak) {
    tasks.insert(tasks.end(), keys.begin(), keys.end());
    return;
  }
  // The referents of the weak references, in one batch.
  std::vector<uint64_t>& referents = set_referents_;
  referents.assign(keys.size(), 0);
  std::vector<process::ReadRequest>& requests = set_requests_;
  requests.clear();
  for (size_t i = 0; i < keys.size(); ++i) {
    requests.push_back({keys[i] + layout_.objects.weakref_object, &referents[i], 8});
  }
  size_t done = batch_.read_batch(requests);
  for (size_t i = 0; i < done; ++i) {
    if (plausible_pointer(referents[i])) tasks.push_back(referents[i]);
  }
}

bool read_task_list(process::MemoryReader& memory, uint64_t head, uint64_t node_offset,
                    size_t max_tasks, std::vector<uint64_t>& tasks) {
  struct Node {
    uint64_t next = 0, prev = 0;
  };
  Node node;
  if (!memory.read_value(head, node)) return true;  // no list there: nothing cut
  uint64_t previous = head;
  for (size_t n = 0; node.next != head; ++n) {
    const uint64_t at = node.next;
    if (!plausible_pointer(at) || n >= max_tasks || !memory.read_value(at, node) ||
        node.prev != previous) {
      return false;
    }
    tasks.push_back(at - node_offset);
    previous = at;
  }
  return true;
}

void TaskReader::read_task_list(uint64_t head, std::vector<uint64_t>& tasks) {
  if (!cpython::read_task_list(batch_, head, debug_.task_node, kMaxTasks, tasks)) {
    ++stats_.cut_lists;
  }
}

// --- One task --------------------------------------------------------------------------------

TaskReader::CoroState TaskReader::read_coroutine(uint64_t coro, Frame& frame, uint64_t& awaited,
                                                 uint64_t& frame_addr) {
  const auto& A = layout_.async;
  const auto& F = layout_.frame;
  awaited = 0;
  frame_addr = 0;
  uint64_t code = 0;
  int64_t offset = -1;
  uint64_t top_slot = 0;  // where the top of the value stack is, 0 when empty
  // The object read last (the frame's, or the generator holding it): the top slot is read from
  // it when it lies inside.
  uint64_t held_from = 0;
  const uint8_t* held = nullptr;
  size_t held_size = 0;
  if (layout_.frame_model == FrameModel::kFrameObject) {
    size_t got = 0;
    const size_t gen_need = static_cast<size_t>(std::max(A.gen_frame + 8, A.gen_running + 1));
    const uint8_t* gen = object_bytes(coro, object_span_, gen_need, got);
    if (!gen) return CoroState::kUnreadable;
    frame_addr = read_field<uint64_t>(gen, A.gen_frame);
    if (frame_addr == 0) return CoroState::kNotSuspended;  // finished
    if (A.gen_running) {
      const int8_t running = read_field<int8_t>(gen, A.gen_running);
      if (running) return CoroState::kExecuting;
      check(coro + A.gen_running, 1, 0);
    }
    size_t header = static_cast<size_t>(
        std::max({F.code + 8, F.lasti + 4, F.executing + 1, A.frame_stack_pointer + 8,
                  A.frame_value_stack + 8, A.frame_stack_depth + 4}));
    // The frame object whole where it fits (its value stack is at its end): the top slot too.
    const uint64_t page_end = (frame_addr | 4095) + 1;
    size_t size = std::max(header, std::min(scratch2_.size(), size_t(page_end - frame_addr)));
    if (header > scratch2_.size() || !plausible_pointer(frame_addr)) return CoroState::kUnreadable;
    const uint8_t* bytes = batch_.view_or_read(frame_addr, size, scratch2_.data());
    if (!bytes && size > header)
      bytes = batch_.view_or_read(frame_addr, size = header, scratch2_.data());
    if (!bytes) return CoroState::kUnreadable;
    held_from = frame_addr;
    held = bytes;
    held_size = size;
    int32_t lasti = read_field<int32_t>(bytes, F.lasti);
    if (A.gen_suspended_first || A.gen_suspended_last) {  // 3.10: f_state
      int state = read_field<int8_t>(bytes, F.executing);
      if (state == A.gen_executing) return CoroState::kExecuting;
      if (state < A.gen_suspended_first || state > A.gen_suspended_last) {
        return CoroState::kNotSuspended;
      }
      check(frame_addr + F.executing, 1, static_cast<uint8_t>(state));
    } else if (lasti < 0) {
      return CoroState::kNotSuspended;  // 3.8-3.9: not started
    }
    code = field_code_raw_ = read_field<uint64_t>(bytes, F.code);
    offset = lasti < 0                                              ? -1
             : layout_.line_table == LineTableFormat::kLinetable310 ? int64_t{lasti} * 2
                                                                    : lasti;
    if (A.frame_stack_pointer) {  // 3.8-3.9: f_stacktop, set while suspended
      uint64_t top = read_field<uint64_t>(bytes, A.frame_stack_pointer);
      if (!plausible_pointer(top)) return CoroState::kNotSuspended;
      top_slot = top - 8 * static_cast<uint64_t>(A.awaited_slot);
    } else if (A.frame_value_stack) {  // 3.10: f_valuestack[f_stackdepth - 1]
      uint64_t base = read_field<uint64_t>(bytes, A.frame_value_stack);
      int32_t depth = read_field<int32_t>(bytes, A.frame_stack_depth);
      if (plausible_pointer(base) && depth >= A.awaited_slot && depth < (1 << 16)) {
        top_slot = base + 8 * static_cast<uint64_t>(depth - A.awaited_slot);
      }
    }
  } else {
    // The generator's state and its frame's header (the frame is inside the generator) in
    // one read: a range of the batch, not a lookup per field.
    frame_addr = coro + A.gen_iframe;
    const size_t header = static_cast<size_t>(
        std::max({F.code + 8, F.lasti + 8, A.frame_stack_pointer + 8, A.frame_stack_top + 4}));
    const size_t region =
        static_cast<size_t>(std::max(A.gen_frame_state + 1, A.gen_iframe + header));
    size_t got = 0;
    const uint8_t* whole = object_bytes(coro, object_span_, region, got);
    if (!whole) return CoroState::kUnreadable;
    held_from = coro;
    held = whole;
    held_size = got;
    int8_t state = read_field<int8_t>(whole, A.gen_frame_state);
    if (state == A.gen_executing) return CoroState::kExecuting;
    if (state < A.gen_suspended_first || state > A.gen_suspended_last) {
      return CoroState::kNotSuspended;
    }
    check(coro + A.gen_frame_state, 1, static_cast<uint8_t>(state));
    const uint8_t* bytes = whole + A.gen_iframe;
    code = field_code_raw_ = read_field<uint64_t>(bytes, F.code);
    if (F.code_is_tagged) code &= ~uint64_t{7};
    uint64_t first_instr = code + layout_.code.code_adaptive;
    uint64_t instr = read_field<uint64_t>(bytes, F.lasti);
    offset = instr >= first_instr ? static_cast<int64_t>((instr - first_instr) / 2) : -1;
    if (offset > (1 << 24)) offset = -1;
    if (A.frame_stack_pointer) {  // 3.14+: stackpointer, the next free slot
      uint64_t sp = read_field<uint64_t>(bytes, A.frame_stack_pointer);
      const uint64_t below = 8 * static_cast<uint64_t>(A.awaited_slot);
      if (plausible_pointer(sp) && sp >= frame_addr + F.localsplus + below) top_slot = sp - below;
    } else if (A.frame_stack_top) {  // 3.11-3.13: stacktop, slots after localsplus
      int32_t top = read_field<int32_t>(bytes, A.frame_stack_top);
      if (top >= A.awaited_slot && top < (1 << 16)) {
        top_slot = frame_addr + F.localsplus + 8 * static_cast<uint64_t>(top - A.awaited_slot);
      }
    }
  }
  const CodeInfo* info = code_info(code, frame_addr);
  if (!info) return CoroState::kUnreadable;
  frame = Frame{code, info, codes_.line(code, offset), frame_addr};
  // What the frame awaits is the top of its value stack (the receiver of `yield from` /
  // SEND stays there while suspended). It is followed only when it is itself a coroutine or
  // generator (kind_of), so a frame suspended in a plain `yield` ends the chain.
  check(frame_addr + F.code, 8, field_code_raw_);
  const bool top_held = top_slot >= held_from && top_slot + 8 <= held_from + held_size;
  if (top_held) awaited = read_field<uint64_t>(held, top_slot - held_from);
  if (top_slot && (top_held || batch_.read_value(top_slot, awaited))) {
    check(top_slot, 8, awaited);
    if (A.stack_is_tagged) awaited &= ~uint64_t{7};
  } else {
    awaited = 0;
  }
  return CoroState::kSuspended;
}

const CodeInfo* TaskReader::code_info(uint64_t code, uint64_t frame_addr) {
  if (auto it = pass_codes_.find(code); it != pass_codes_.end()) return it->second;
  const CodeInfo* info = layout_.frame_model == FrameModel::kFrameObject
                             ? codes_.get_for_frame(code, frame_addr)
                             : codes_.get(code);
  if (!info && layout_.frame_model == FrameModel::kFrameObject) info = codes_.get(code);
  if (info) pass_codes_.emplace(code, info);  // a failure is tried again with the next frame
  return info;
}

void TaskReader::check(uint64_t addr, size_t size, uint64_t expected) {
  checks_.push_back(Check{addr, size, expected, 0, check_owner_});
}

std::vector<bool> TaskReader::changed_owners(size_t owners) {
  std::vector<bool> changed(owners, false);
  constexpr size_t kBatch = 1024;  // IOV_MAX
  std::vector<process::ReadRequest> requests;
  for (size_t first = 0; first < checks_.size(); first += kBatch) {
    const size_t end = std::min(checks_.size(), first + kBatch);
    requests.clear();
    for (size_t i = first; i < end; ++i) {
      checks_[i].now = 0;
      requests.push_back({checks_[i].addr, &checks_[i].now, checks_[i].size});
    }
    size_t done = live_.read_batch(requests);
    for (size_t i = first; i < end; ++i) {
      Check& c = checks_[i];
      if (i - first >= done && !live_.read(c.addr, &c.now, c.size)) c.now = ~c.expected;
      if (c.now != (c.size == 1 ? (c.expected & 0xff) : c.expected) && c.owner < owners) {
        changed[c.owner] = true;
      }
    }
  }
  checks_.clear();
  return changed;
}

size_t TaskReader::drop_changed(std::vector<TaskStack>& out, size_t count) {
  std::vector<bool> changed = changed_owners(count);
  size_t kept = 0;
  for (size_t i = 0; i < count; ++i) {
    if (changed[i]) {
      // Part of the chain was read from memory that changed meanwhile (reads that missed the
      // walk's prefetch happen later): a coroutine that finished, its memory reused by
      // another task's, would give one function another's time. Left out, and counted.
      ++stats_.cut_chains;
      --stats_.suspended;
      continue;
    }
    if (kept != i) std::swap(out[kept], out[i]);
    ++kept;
  }
  return kept;
}

bool TaskReader::read_task(uint64_t task, TaskStack& out, bool with_names) {
  const uint64_t coro_at = debug_.found ? debug_.task_coro : layout_.async.task_coro;
  uint64_t coro = 0;
  size_t got = 0;
  const uint8_t* bytes = object_bytes(task, object_span_, coro_at + 8, got);
  if (bytes) coro = read_field<uint64_t>(bytes, coro_at);
  if (!bytes) {
    ++stats_.unreadable;
    return false;
  }
  if (coro == 0) {  // done: its coroutine was let go
    ++stats_.not_suspended;
    return false;
  }
  out.task_addr = task;
  out.frames.clear();
  out.truncated = false;
  out.awaits = 0;
  std::vector<uint64_t>& chain = chain_;  // coroutines, outermost first, against cycles
  chain.clear();
  uint64_t current = coro;
  while (true) {
    Frame frame;
    uint64_t awaited = 0, frame_addr = 0;
    CoroState state = read_coroutine(current, frame, awaited, frame_addr);
    if (chain.empty() && state != CoroState::kSuspended) {
      if (state == CoroState::kUnreadable) {
        ++stats_.unreadable;
      } else if (state == CoroState::kExecuting) {
        running_.push_back({task, frame_addr});  // see reconcile()
      } else {
        ++stats_.not_suspended;  // not started yet, or done
      }
      return false;
    }
    if (state != CoroState::kSuspended) {
      // An inner coroutine that is not suspended: it finished or started running as we read.
      out.truncated = state == CoroState::kUnreadable;
      break;
    }
    chain.push_back(current);
    out.frames.push_back(frame);
    if (!awaited || kind_of(awaited) != TypeKind::kCoroutine) {
      out.awaits = awaited;  // a future, a task: see task_links.h
      break;
    }
    if (chain.size() >= kMaxChain ||
        std::find(chain.begin(), chain.end(), awaited) != chain.end()) {
      out.truncated = true;
      break;
    }
    current = awaited;
  }
  if (out.truncated) ++stats_.cut_chains;
  std::reverse(out.frames.begin(), out.frames.end());
  out.frames.insert(out.frames.begin(), Frame{0, &await_marker(), 0, 0});
  if (with_names) read_name(task, out);
  ++stats_.suspended;
  return true;
}

void TaskReader::read_name(uint64_t task, TaskStack& out) {
  out.name.clear();
  const uint64_t name_at = debug_.found ? debug_.task_name : layout_.async.task_name;
  uint64_t name = 0;
  if (name_at && memory_.read_value(task + name_at, name) && plausible_pointer(name)) {
    if (!codes_.read_string(name, out.name, 200)) {
      std::string number = objects_.repr(name, 24);  // 3.12+ keep a counter until asked
      if (!number.empty() && std::all_of(number.begin(), number.end(), ::isdigit)) {
        out.name = "Task-" + number;
      }
    }
  }
  if (out.name.empty()) out.name = fmt::format("task at {:#x}", task);
}

bool TaskReader::read(const std::vector<uint64_t>& thread_states, std::vector<TaskStack>& out,
                      bool with_names) {
  running_.clear();
  size_t count = 0;
  const auto& A = layout_.async;
  if (!A.gen_frame && !A.gen_iframe) {
    out.clear();
    return false;
  }
  // asyncio is imported late, or never: sys.modules' size is looked at every kSearchInterval,
  // and what holds the tasks is searched for again when it has grown (an import happened).
  const bool wants_debug = !A.task_coro && !debug_.found;
  if (registries_.empty() || wants_debug) {
    const double now = monotonic_seconds();
    if (now >= next_search_) {
      if (const std::optional<uint64_t> modules = modules_count()) {
        next_search_ = now + kSearchInterval;
        if (*modules != modules_used_) {
          modules_used_ = *modules;
          if (registries_.empty()) find_registries();
          if (wants_debug) find_asyncio_debug();
        }
      }
    }
  }
  if ((registries_.empty() && !debug_.found) ||
      (!debug_.found && !A.task_coro)) {  // 3.14+ without its table: nothing can be read
    out.clear();
    return false;
  }
  // The registries are checked through the batch that reads them (through the walk's prefetch,
  // their sets' heads were a page of each sample's batch twice).
  last_object_ = 0;  // bytes of the last pass
  batch_.begin();
  if (!registries_valid()) {
    registries_.clear();
    modules_used_ = ~uint64_t{0};
    next_search_ = 0;
    if (!debug_.found) {
      batch_.end();
      out.clear();
      return false;
    }
  }
  ++stats_.reads;
  pass_codes_.clear();
  tasks_.clear();
  for (const Registry& r : registries_) read_set(r, tasks_);
  if (debug_.found) {
    for (uint64_t tstate : thread_states) {
      read_task_list(tstate + debug_.thread_tasks_head, tasks_);
    }
    uint64_t interp = 0;
    if (memory_.read_value(runtime_addr_ + layout_.runtime.interpreters_head, interp) &&
        plausible_pointer(interp)) {
      read_task_list(interp + debug_.interp_tasks_head, tasks_);
    }
  }
  // In address order, once each: neighbours in memory are read one after another (the batch's
  // blocks in turn), and no node is allocated per task as a set would.
  std::sort(tasks_.begin(), tasks_.end());
  tasks_.erase(std::unique(tasks_.begin(), tasks_.end()), tasks_.end());
  for (uint64_t task : tasks_) {
    TypeKind kind = kind_of(task);
    if (kind == TypeKind::kNone) continue;  // a weak reference whose task is gone
    if (kind != TypeKind::kTask) {
      ++stats_.unreadable;  // a task of another class (not the C layout), or unreadable
      continue;
    }
    if (count >= out.size()) out.emplace_back();
    const size_t mark = checks_.size();
    const uint64_t misses = batch_.misses();
    check_owner_ = count;
    if (read_task(task, out[count], with_names)) {
      // A chain read wholly from the batch was read at one instant; one that missed it was
      // partly read later, from a process that may have changed meanwhile: its footing is
      // checked (below).
      if (batch_.misses() == misses) checks_.resize(mark);
      ++count;
    } else {
      checks_.resize(mark);
    }
  }
  batch_.end();
  last_object_ = 0;  // what reconcile() reads is read from the process, after the walk
  // The footing of every chain that missed the batch read again from the live process, in
  // one batch.
  count = drop_changed(out, count);
  out.resize(count);
  return true;
}

// The tasks were read just before the threads' walk (see Target::walk_with_tasks); the walk is
// the sample's instant. A task read suspended whose coroutine a thread ran at the walk had
// resumed in between: its thread's stack has it, so it is dropped here. A task read running
// that no thread ran at the walk had suspended in between: it is read again now, right after
// the walk, where it waits (a task that has just suspended waits a while). Either way each
// task is counted once, where it was at the walk, not twice or not at all.
void TaskReader::reconcile(const std::vector<ThreadStack>& threads, std::vector<TaskStack>& out,
                           bool with_names) {
  if (out.empty() && running_.empty()) return;  // no task: a program without asyncio
  // A sorted vector, kept between samples: a hash set allocated a node per frame each sample,
  // a seventh of the sampler's time on a 64-deep stack at 100 kHz.
  thread_frames_.clear();
  for (const ThreadStack& t : threads) {
    for (const Frame& f : t.frames) thread_frames_.push_back(f.frame_addr);
  }
  std::sort(thread_frames_.begin(), thread_frames_.end());
  auto in_threads = [&](uint64_t frame) {
    return std::binary_search(thread_frames_.begin(), thread_frames_.end(), frame);
  };
  size_t kept = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (in_threads(out[i].frames.back().frame_addr)) {
      ++stats_.resumed;
      ++stats_.not_suspended;
      --stats_.suspended;
      continue;
    }
    if (kept != i) std::swap(out[kept], out[i]);
    ++kept;
  }
  out.resize(kept);
  std::vector<Running> running;
  running.swap(running_);
  for (const Running& r : running) {
    if (in_threads(r.frame)) {
      ++stats_.not_suspended;  // running: its thread's stack has it
      continue;
    }
    std::vector<TaskStack> one(1);
    checks_.clear();
    check_owner_ = 0;
    // Read from the live process (batch_ is outside its pass here): the prefetch, read before
    // the tasks, would show it running again, and it was lost without a trace.
    const size_t running_before = running_.size();
    if (read_task(r.task, one[0], with_names) && drop_changed(one, 1) == 1) {
      ++stats_.resumed;
      out.push_back(std::move(one[0]));
    } else if (running_.size() > running_before) {
      // Running again, on no thread the walk saw: its stack at the walk is unknown. Counted
      // with the chains that could not be read whole, never silently dropped.
      ++stats_.cut_chains;
    }
    checks_.clear();
  }
  running_.clear();
}

}  // namespace spyglass::cpython
