#include "extension/tracer.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <new>
#include <optional>
#include <unordered_map>
#include <vector>

#include "extension/histogram.h"
#include "pattern/pattern.h"

namespace spyglass::exact {
namespace {

constexpr int kShadowStackDepth = 1024;
constexpr uint32_t kInstanceSlots = 4096;  // generator/coroutine instances in flight
constexpr uint32_t kInstanceProbes = 16;
void* const kTombstone = reinterpret_cast<void*>(1);

enum class CodeKind : uint8_t { kFunction, kGenerator, kCoroutine };

// What a code object was judged to be, for one generation of the chosen set. The code object's
// co_extra slot holds either the address of its record (records never move nor die: low bit 0),
// or (generation << 1) | 1 when it is not chosen: either answer is one load from the code object,
// with no table look-up, and a code object that dies takes its mark with it (no stale
// pointer-keyed entry can match a new object at that address).
struct CodeRecord {
  uint64_t generation = 0;
  CodeKind kind = CodeKind::kFunction;
  std::vector<uint32_t> entries;  // every entry that chose it, however many patterns overlap
};

// Per thread and entry. What a plain call's end touches shares one cache line.
struct alignas(64) EntryStats {
  uint32_t active = 0;  // frames of this entry on the thread's shadow stack
  uint64_t calls = 0;
  Ticks inclusive = 0;
  Ticks self = 0;
  Ticks latency_sum = 0;
  Ticks latency_min = ~0ull;
  Ticks latency_max = 0;
  uint64_t coroutine_calls = 0;
  Ticks coroutine_wall = 0;
  LatencyHistogram latency;

  void clear_figures() {
    uint32_t keep = active;
    *this = EntryStats();
    active = keep;
  }
};

struct ShadowFrame {
  PyObject* code;
  const CodeRecord* record;
  Ticks start;
  Ticks child;  // time in chosen calls made from this one
  void* instance_key;
  int32_t instance;  // slot in the instance table, -1 for a plain call
};

struct ThreadState {
  uint64_t ident = 0;
  int native_id = 0;
  std::vector<EntryStats> stats;  // by entry index
  std::unique_ptr<ShadowFrame[]> stack;
  int depth = 0;
  int overflow = 0;  // chosen calls deeper than the shadow stack (not timed)
  bool busy = false;
};

struct Instance {  // a generator or coroutine between its first start and its end
  void* key = nullptr;
  Ticks first_start = 0;
  Ticks running = 0;
};

// What a code object is, as patterns see it and results name it.
struct CodeIdentity {
  std::string module;    // __name__ of the globals it runs in ("__main__" for a script)
  std::string qualname;  // co_qualname, or recovered before 3.11
  std::string filename;  // co_filename
  int first_line = 0;
  std::vector<std::string> modules;  // the names its module answers to in patterns

  pattern::FunctionIdentity pattern_view() const { return {qualname, filename, &modules}; }
  report::MatchResult match() const {
    report::MatchResult m;
    m.function = qualname;
    m.file = filename;
    m.line = first_line;
    m.module = module;
    m.label = pattern::describe(
        qualname, pattern::short_file(filename, pattern::package_depth_of_module(module, filename)),
        first_line);
    return m;
  }
};

struct Entry {
  std::string name;
  std::optional<pattern::Pattern> pattern;
  PyObject* marked_code = nullptr;  // strong reference, for @spyglass.trace entries
  bool alive = true;
  std::vector<report::MatchResult> matches;

  // Lists a function this entry matched, once.
  void add_match(const CodeIdentity& identity) {
    report::MatchResult m = identity.match();
    for (const auto& known : matches) {
      if (known.label == m.label) return;
    }
    matches.push_back(std::move(m));
  }
};

struct KnownCode {  // a code object chosen at some point: identity kept to re-judge it cheaply
  PyObject* code = nullptr;  // strong reference while chosen
  CodeIdentity identity;
  bool chosen = false;
};

struct State {
  Py_ssize_t extra_index = -1;
  bool running = false;
  bool failed = false;
  bool active = false;  // running and not failed: the one flag the hot path reads
  uint64_t generation = 1;
  std::vector<Entry> entries;
  std::deque<CodeRecord> records;  // a deque: records keep their address (marks point to them)
  std::unordered_map<PyObject*, KnownCode> known;
  std::vector<std::unique_ptr<ThreadState>> threads;
  std::unique_ptr<Instance[]> instances;
  uint64_t session_ns = 0;        // profiled wall time of finished sessions
  uint64_t session_start_ns = 0;  // of the running session
};

State g;

// g_unchosen_mark follows g.extra_index and g.generation.
void publish_unchosen_mark() {
  g_unchosen_mark.extra_index = g.extra_index;
  g_unchosen_mark.value = (static_cast<uintptr_t>(g.generation) << 1) | 1u;
}

thread_local ThreadState* tls_thread __attribute__((tls_model("initial-exec"))) = nullptr;

// ---- helpers on Python objects (slow path only) ----

std::string utf8_of(PyObject* object) {
  if (object == nullptr || !PyUnicode_Check(object)) return {};
  Py_ssize_t size = 0;
  const char* text = PyUnicode_AsUTF8AndSize(object, &size);
  if (text == nullptr) {
    PyErr_Clear();
    return {};
  }
  return std::string(text, static_cast<size_t>(size));
}

std::string string_attribute(PyObject* object, const char* name) {
  PyObject* value = PyObject_GetAttrString(object, name);
  if (value == nullptr) {
    PyErr_Clear();
    return {};
  }
  std::string text = utf8_of(value);
  Py_DECREF(value);
  return text;
}

// The function object behind `candidate` (unwrapping staticmethod/classmethod/property) if its
// code is `code`; its __qualname__ then.
std::optional<std::string> qualname_if_code(PyObject* candidate, PyObject* code) {
  if (candidate == nullptr) return std::nullopt;
  if (PyFunction_Check(candidate)) {
    if (PyFunction_GetCode(candidate) != code) return std::nullopt;
    return string_attribute(candidate, "__qualname__");
  }
  for (const char* inner : {"__func__", "fget", "fset", "fdel"}) {
    PyObject* unwrapped = PyObject_GetAttrString(candidate, inner);
    if (unwrapped == nullptr) {
      PyErr_Clear();
      continue;
    }
    std::optional<std::string> found;
    if (PyFunction_Check(unwrapped) && PyFunction_GetCode(unwrapped) == code) {
      found = string_attribute(unwrapped, "__qualname__");
    }
    Py_DECREF(unwrapped);
    if (found) return found;
  }
  return std::nullopt;
}

// Before 3.11 code objects carry no qualified name: find the function through the module's
// globals, or through the class of the first argument for methods. Falls back to co_name.
std::string recover_qualname(PyObject* code, PyObject* globals, const FrameRef& frame,
                             const std::string& name) {
  if (globals != nullptr && PyDict_Check(globals)) {
    PyObject* candidate = PyDict_GetItemString(globals, name.c_str());  // borrowed
    if (auto found = qualname_if_code(candidate, code)) return *found;
  }
  PyObject* first = frame.object != nullptr && compat::code_argcount(code) > 0
                        ? compat::frame_first_argument(frame.object)
                        : nullptr;
  if (first != nullptr) {
    PyTypeObject* type = PyType_Check(first) ? reinterpret_cast<PyTypeObject*>(first)
                                             : Py_TYPE(first);
    PyObject* mro = type->tp_mro;
    if (mro != nullptr && PyTuple_Check(mro)) {
      for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); ++i) {
        PyObject* klass = PyTuple_GET_ITEM(mro, i);
        PyObject* dict = reinterpret_cast<PyTypeObject*>(klass)->tp_dict;
        if (dict == nullptr) continue;
        PyObject* candidate = PyDict_GetItemString(dict, name.c_str());
        if (auto found = qualname_if_code(candidate, code)) return *found;
      }
    }
  }
  return name;
}

CodeIdentity identify(PyObject* code, const FrameRef& frame) {
  CodeIdentity identity;
  identity.filename = string_attribute(code, "co_filename");
  identity.first_line = compat::code_first_line(code);
  PyObject* globals = frame.object != nullptr    ? compat::frame_globals(frame.object)
                      : frame.globals != nullptr ? frame.globals
                                                 : compat::current_globals();
  if (globals != nullptr && PyDict_Check(globals)) {
    identity.module = utf8_of(PyDict_GetItemString(globals, "__name__"));
  }
  if (compat::code_has_qualname()) {
    identity.qualname = string_attribute(code, "co_qualname");
  } else {
    identity.qualname = recover_qualname(code, globals, frame, string_attribute(code, "co_name"));
  }
  identity.modules = pattern::module_names_for_module(identity.module, identity.filename);
  return identity;
}

CodeKind kind_of(PyObject* code) {
  int flags = compat::code_flags(code);
  if (flags & (CO_COROUTINE | CO_ITERABLE_COROUTINE)) return CodeKind::kCoroutine;
  if (flags & (CO_GENERATOR | CO_ASYNC_GENERATOR)) return CodeKind::kGenerator;
  return CodeKind::kFunction;
}

bool entry_matches(const Entry& entry, PyObject* code, const CodeIdentity& identity) {
  if (!entry.alive) return false;
  if (entry.marked_code != nullptr) return entry.marked_code == code;
  return entry.pattern && entry.pattern->matches(identity.pattern_view());
}

void mark_not_chosen(PyObject* code) {
  uintptr_t value = (static_cast<uintptr_t>(g.generation) << 1) | 1u;
  if (compat::code_set_extra(code, g.extra_index, reinterpret_cast<void*>(value)) != 0) {
    PyErr_Clear();
  }
}

// Judges a code object for the current generation; returns its record, null when not chosen.
const CodeRecord* classify(PyObject* code, const FrameRef& frame) {
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  auto known = g.known.find(code);
  CodeIdentity identity = known != g.known.end() ? known->second.identity : identify(code, frame);
  CodeRecord record;
  record.generation = g.generation;
  record.kind = kind_of(code);
  for (uint32_t i = 0; i < g.entries.size(); ++i) {
    if (entry_matches(g.entries[i], code, identity)) record.entries.push_back(i);
  }
  const CodeRecord* result = nullptr;
  if (record.entries.empty()) {
    mark_not_chosen(code);
  } else {
    result = &g.records.emplace_back(std::move(record));
    static_assert(alignof(CodeRecord) >= 2, "the low bit of a record's address marks 'not chosen'");
    if (compat::code_set_extra(code, g.extra_index, const_cast<CodeRecord*>(result)) != 0) {
      PyErr_Clear();
    }
    KnownCode& entry = g.known[code];
    if (!entry.chosen) {
      entry.code = code;
      Py_INCREF(code);
      entry.identity = identity;
      entry.chosen = true;
      for (uint32_t e : result->entries) g.entries[e].add_match(identity);
      backend::code_chosen(code);
    }
  }
  PyErr_Restore(type, value, traceback);
  return result;
}

ThreadState* create_thread_state() {
  auto state = std::unique_ptr<ThreadState>(new (std::nothrow) ThreadState());
  if (!state) return nullptr;
  state->stack.reset(new (std::nothrow) ShadowFrame[kShadowStackDepth]());
  if (!state->stack) return nullptr;
  state->ident = PyThread_get_thread_ident();
  state->native_id = static_cast<int>(syscall(SYS_gettid));
  state->stats.resize(g.entries.size());
  g.threads.push_back(std::move(state));
  tls_thread = g.threads.back().get();
  return tls_thread;
}

// ---- generator/coroutine instances ----

uint32_t instance_home(void* key) {
  uint64_t hash = (reinterpret_cast<uintptr_t>(key) >> 4) * 0x9E3779B97F4A7C15ull;
  return static_cast<uint32_t>(hash >> 52) & (kInstanceSlots - 1);
}

int32_t instance_find(void* key) {
  uint32_t home = instance_home(key);
  for (uint32_t probe = 0; probe < kInstanceProbes; ++probe) {
    uint32_t slot = (home + probe) & (kInstanceSlots - 1);
    void* slot_key = g.instances[slot].key;
    if (slot_key == key) return static_cast<int32_t>(slot);
    if (slot_key == nullptr) return -1;
  }
  return -1;
}

int32_t instance_begin(void* key, Ticks now) {
  int32_t slot = instance_find(key);
  if (slot < 0) {
    // A free slot, else the oldest in the probe window (an instance closed without any event,
    // as a suspended generator closed on 3.13 is).
    uint32_t home = instance_home(key);
    uint32_t oldest = home;
    for (uint32_t probe = 0; probe < kInstanceProbes; ++probe) {
      uint32_t candidate = (home + probe) & (kInstanceSlots - 1);
      void* slot_key = g.instances[candidate].key;
      if (slot_key == nullptr || slot_key == kTombstone) {
        oldest = candidate;
        break;
      }
      if (g.instances[candidate].first_start < g.instances[oldest].first_start) oldest = candidate;
    }
    slot = static_cast<int32_t>(oldest);
  }
  g.instances[slot] = {key, now, 0};
  return slot;
}

// ---- the shadow stack ----

void push(ThreadState& thread, Event event, PyObject* code, const CodeRecord& record,
          const FrameRef& frame, Ticks now) {
  if (thread.depth >= kShadowStackDepth) {
    ++thread.overflow;
    return;
  }
  ShadowFrame& shadow = thread.stack[thread.depth++];
  shadow = {code, &record, now, 0, nullptr, -1};
  if (record.kind != CodeKind::kFunction) {
    void* key = frame.object != nullptr         ? static_cast<void*>(frame.object)
                : frame.instance_key != nullptr ? frame.instance_key
                                                : compat::current_instance_key();
    shadow.instance_key = key;
    if (key != nullptr) {
      // The profile hook reports every entry as a call: an instance already known is resuming.
      bool fresh = event == Event::kStart && (frame.object == nullptr || instance_find(key) < 0);
      shadow.instance = fresh ? instance_begin(key, now) : instance_find(key);
    }
  }
  for (uint32_t e : record.entries) ++thread.stats[e].active;
}

// The figures of a frame just taken off the stack (thread.depth already lowered): self time,
// inclusive time for the outermost frame of each entry, and with `counted` a call and its latency.
[[gnu::always_inline]] inline void account(ThreadState& thread, const CodeRecord& record,
                                           const ShadowFrame& shadow, Ticks elapsed, Ticks latency,
                                           bool counted, bool coroutine, Ticks wall) {
  Ticks self = elapsed > shadow.child ? elapsed - shadow.child : 0;
  EntryStats* all_stats = thread.stats.data();
  for (uint32_t e : record.entries) {
    EntryStats& stats = all_stats[e];
    stats.self += self;
    if (stats.active > 0) --stats.active;
    if (stats.active != 0) [[unlikely]] {
      continue;  // recursion: only the outermost call is inclusive time
    }
    stats.inclusive += elapsed;
    if (!counted) continue;
    ++stats.calls;
    stats.latency_sum += latency;
    stats.latency_min = std::min(stats.latency_min, latency);
    stats.latency_max = std::max(stats.latency_max, latency);
    stats.latency.record(latency);
    if (coroutine) {
      ++stats.coroutine_calls;
      stats.coroutine_wall += wall;
    }
  }
  if (thread.depth > 0) thread.stack[thread.depth - 1].child += elapsed;
}

// Removes the top frame; `ends` says whether the call (not just a generator step) is over.
// With `count` false the time is kept but no call is counted (stop, reset of stale frames).
void pop_top(ThreadState& thread, Ticks now, bool ends, bool count) {
  ShadowFrame shadow = thread.stack[--thread.depth];
  const CodeRecord& record = *shadow.record;
  Ticks elapsed = now > shadow.start ? now - shadow.start : 0;
  Ticks latency = elapsed;
  Ticks wall = 0;
  bool coroutine = false;
  if (record.kind != CodeKind::kFunction) {
    Instance* instance = shadow.instance >= 0 && g.instances[shadow.instance].key == shadow.instance_key
                             ? &g.instances[shadow.instance]
                             : nullptr;
    if (instance != nullptr) {
      instance->running += elapsed;
      latency = instance->running;
      if (record.kind == CodeKind::kCoroutine) {
        coroutine = true;
        wall = now > instance->first_start ? now - instance->first_start : 0;
        latency = wall;
      }
      if (ends) instance->key = kTombstone;
    } else {
      count = false;  // began before it was chosen: no whole call to count
    }
  }
  account(thread, record, shadow, elapsed, latency, ends && count, coroutine, wall);
}

// Drops the top frame without any figure: a call whose end was never reported.
void discard_top(ThreadState& thread) {
  ShadowFrame shadow = thread.stack[--thread.depth];
  const CodeRecord& record = *shadow.record;
  for (uint32_t e : record.entries) {
    EntryStats& stats = thread.stats[e];
    if (stats.active > 0) --stats.active;
  }
}

void pop(ThreadState& thread, PyObject* code, Ticks now, bool ends) {
  if (thread.overflow > 0) {
    --thread.overflow;
    return;
  }
  int index = thread.depth - 1;
  while (index >= 0 && thread.stack[index].code != code) --index;
  if (index < 0) return;  // began before it was chosen
  while (thread.depth - 1 > index) discard_top(thread);
  pop_top(thread, now, ends, true);
}

void close_open_frames(Ticks now) {
  for (auto& thread : g.threads) {
    while (thread->depth > 0) pop_top(*thread, now, false, false);
    thread->overflow = 0;
    for (auto& stats : thread->stats) stats.active = 0;
  }
  for (uint32_t i = 0; i < kInstanceSlots; ++i) g.instances[i] = Instance();
}

// After the chosen set changed: re-judge every code chosen so far from its kept identity, and
// drop shadow frames of code no longer chosen (their end will not be reported).
void rejudge_known_codes() {
  ++g.generation;
  publish_unchosen_mark();
  for (auto it = g.known.begin(); it != g.known.end();) {
    KnownCode& known = it->second;
    bool still = false;
    for (const Entry& entry : g.entries) still = still || entry_matches(entry, known.code, known.identity);
    if (!still) {
      for (auto& thread : g.threads) {
        int kept = 0;
        for (int i = 0; i < thread->depth; ++i) {
          if (thread->stack[i].code != known.code) {
            thread->stack[kept++] = thread->stack[i];
          } else {
            const CodeRecord& record = *thread->stack[i].record;
            for (uint32_t e : record.entries) {
              EntryStats& stats = thread->stats[e];
              if (stats.active > 0) --stats.active;
            }
          }
        }
        thread->depth = kept;
      }
      if (g.running) backend::code_dropped(known.code);
      mark_not_chosen(known.code);
      Py_DECREF(known.code);
      it = g.known.erase(it);
      continue;
    }
    // Still chosen: matches for new entries are listed now, records rebuilt lazily.
    for (Entry& entry : g.entries) {
      if (entry_matches(entry, known.code, known.identity)) entry.add_match(known.identity);
    }
    ++it;
  }
}

bool anything_chosen() {
  return std::any_of(g.entries.begin(), g.entries.end(), [](const Entry& e) { return e.alive; });
}

void chosen_set_changed() {
  for (auto& thread : g.threads) thread->stats.resize(g.entries.size());
  rejudge_known_codes();
  if (g.running) backend::chosen_set_changed(anything_chosen());
}

report::Figures to_figures(const EntryStats& stats, double seconds_per_tick) {
  report::Figures figures;
  figures.seconds = static_cast<double>(stats.inclusive) * seconds_per_tick;
  figures.self_seconds = static_cast<double>(stats.self) * seconds_per_tick;
  figures.calls = stats.calls;
  report::Latency latency;
  if (stats.calls > 0) {
    latency.mean = static_cast<double>(stats.latency_sum) * seconds_per_tick /
                   static_cast<double>(stats.calls);
    latency.min = static_cast<double>(stats.latency_min) * seconds_per_tick;
    latency.max = static_cast<double>(stats.latency_max) * seconds_per_tick;
    auto clamp = [&](double ticks) {
      return std::clamp(ticks, static_cast<double>(stats.latency_min),
                        static_cast<double>(stats.latency_max)) *
             seconds_per_tick;
    };
    latency.p50 = clamp(stats.latency.quantile(0.50, stats.calls));
    latency.p90 = clamp(stats.latency.quantile(0.90, stats.calls));
    latency.p99 = clamp(stats.latency.quantile(0.99, stats.calls));
    stats.latency.for_each_bucket(
        [&](double ticks, uint64_t count) { latency.histogram.emplace_back(clamp(ticks), count); });
  }
  figures.latency = latency;
  if (stats.coroutine_calls > 0) {
    figures.coroutine_wall_seconds = static_cast<double>(stats.coroutine_wall) * seconds_per_tick;
  }
  return figures;
}

void merge_into(EntryStats& total, const EntryStats& part) {
  total.calls += part.calls;
  total.coroutine_calls += part.coroutine_calls;
  total.inclusive += part.inclusive;
  total.self += part.self;
  total.latency_sum += part.latency_sum;
  total.latency_min = std::min(total.latency_min, part.latency_min);
  total.latency_max = std::max(total.latency_max, part.latency_max);
  total.coroutine_wall += part.coroutine_wall;
  total.latency.merge(part.latency);
}

}  // namespace

UnchosenMark g_unchosen_mark;

Verdict on_event(Event event, PyObject* code, const FrameRef& frame) {
  if (!g.active) return Verdict::kIgnored;
  uintptr_t mark = reinterpret_cast<uintptr_t>(compat::code_extra_fast(code, g.extra_index));
  if ((mark & 1u) && (mark >> 1) == g.generation) return Verdict::kNotChosen;
  ThreadState* thread = tls_thread;
  if (thread != nullptr && thread->busy) return Verdict::kIgnored;
  const CodeRecord* record = nullptr;
  if (mark != 0 && !(mark & 1u)) {
    record = reinterpret_cast<const CodeRecord*>(mark);
    if (record->generation != g.generation) record = nullptr;
  }
  if (thread == nullptr) {
    thread = create_thread_state();
    if (thread == nullptr) {
      tracer_fail("out of memory for a thread's state");
      return Verdict::kIgnored;
    }
  }
  // A call that is judged now starts before the judging: its cost (once per code object) is
  // part of the call's wall time, as any observer outside the call sees it.
  Ticks judged_at = 0;
  if (record == nullptr) {
    judged_at = Clock::now();
    thread->busy = true;
    try {
      record = classify(code, frame);
    } catch (const std::exception&) {
      thread->busy = false;
      tracer_fail("out of memory while judging a function");
      return Verdict::kIgnored;
    }
    thread->busy = false;
    if (!g.active) return Verdict::kIgnored;
    if (record == nullptr) return Verdict::kNotChosen;
  }
  Ticks now = Clock::now();
  switch (event) {
    case Event::kStart:
    case Event::kResume:
    case Event::kThrow:
      push(*thread, event, code, *record, frame, judged_at != 0 ? judged_at : now);
      break;
    case Event::kReturn: {
      bool suspending = frame.object != nullptr && record->kind != CodeKind::kFunction &&
                        compat::frame_is_suspending(frame.object);
      pop(*thread, code, now, !suspending);
      break;
    }
    case Event::kUnwind:
      pop(*thread, code, now, true);
      break;
    case Event::kYield:
      pop(*thread, code, now, false);
      break;
  }
  return Verdict::kChosen;
}

Verdict on_start(PyObject* code, const FrameRef& frame) {
  uintptr_t mark = reinterpret_cast<uintptr_t>(compat::code_extra_fast(code, g.extra_index));
  ThreadState* thread = tls_thread;
  // The common case: a plain function already judged chosen for this generation, entered on a
  // thread that has its state and room on its stack. Everything else takes on_event.
  if ((mark & 1u) == 0 && mark != 0 && thread != nullptr && g.active && !thread->busy &&
      thread->depth < kShadowStackDepth) [[likely]] {
    const auto* record = reinterpret_cast<const CodeRecord*>(mark);
    if (record->generation == g.generation && record->kind == CodeKind::kFunction) [[likely]] {
      EntryStats* stats = thread->stats.data();
      for (uint32_t e : record->entries) ++stats[e].active;
      ShadowFrame& shadow = thread->stack[thread->depth++];
      shadow.code = code;
      shadow.record = record;
      shadow.child = 0;
      shadow.instance_key = nullptr;
      shadow.instance = -1;
      shadow.start = Clock::now();
      return Verdict::kChosen;
    }
  } else if ((mark & 1u) && (mark >> 1) == g.generation && g.active) {
    return Verdict::kNotChosen;  // the profile hook's unchosen calls
  }
  return on_event(Event::kStart, code, frame);
}

Verdict on_return(PyObject* code, const FrameRef& frame) {
  ThreadState* thread = tls_thread;
  // The common case: the end of the plain call on top of this thread's stack.
  if (thread != nullptr && thread->depth > 0 && g.active && !thread->busy && thread->overflow == 0)
      [[likely]] {
    const ShadowFrame& top = thread->stack[thread->depth - 1];
    if (top.code == code && top.record->kind == CodeKind::kFunction) [[likely]] {
      Ticks now = Clock::now();
      --thread->depth;
      Ticks elapsed = now > top.start ? now - top.start : 0;
      account(*thread, *top.record, top, elapsed, elapsed, true, false, 0);
      return Verdict::kChosen;
    }
  }
  return on_event(Event::kReturn, code, frame);
}

bool tracer_initialize() {
  Clock::initialize();
  g.extra_index = compat::request_code_extra_index();
  if (g.extra_index < 0) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "no free code-object extra slot");
    return false;
  }
  g.instances.reset(new Instance[kInstanceSlots]);
  publish_unchosen_mark();
  return true;
}

bool tracer_start() {
  if (g.running) return true;
  if (g.failed) {
    PyErr_SetString(PyExc_RuntimeError, "spyglass exact mode was disabled after an internal failure");
    return false;
  }
  ++g.generation;  // everything judged before is judged again (patterns may have changed)
  publish_unchosen_mark();
  g.running = true;
  g.active = true;
  if (!backend::install()) {
    g.running = g.active = false;
    return false;
  }
  // Code objects chosen during an earlier session need their events again.
  for (auto& [code, known] : g.known) backend::code_chosen(code);
  backend::chosen_set_changed(anything_chosen());
  g.session_start_ns = Clock::monotonic_ns();
  return true;
}

void tracer_stop() {
  if (!g.running) return;
  close_open_frames(Clock::now());
  g.running = g.active = false;
  for (auto& [code, known] : g.known) backend::code_dropped(code);
  backend::uninstall();
  g.session_ns += Clock::monotonic_ns() - g.session_start_ns;
}

bool tracer_running() { return g.running; }

bool tracer_add(const std::string& name, PyObject* code) {
  for (const Entry& entry : g.entries) {
    if (entry.alive && entry.name == name) return false;
  }
  Entry entry;
  entry.name = name;
  if (code != nullptr) {
    Py_INCREF(code);
    entry.marked_code = code;
  } else {
    entry.pattern.emplace(name);
  }
  g.entries.push_back(std::move(entry));
  chosen_set_changed();
  return true;
}

bool tracer_remove(const std::string& name) {
  bool removed = false;
  for (Entry& entry : g.entries) {
    if (!entry.alive || entry.name != name) continue;
    entry.alive = false;
    Py_CLEAR(entry.marked_code);
    removed = true;
  }
  if (removed) chosen_set_changed();
  return removed;
}

void tracer_clear() {
  for (Entry& entry : g.entries) {
    entry.alive = false;
    Py_CLEAR(entry.marked_code);
  }
  chosen_set_changed();
}

void tracer_reset() {
  Ticks now = Clock::now();
  for (auto& thread : g.threads) {
    for (auto& stats : thread->stats) stats.clear_figures();
    for (int i = 0; i < thread->depth; ++i) {  // calls in flight count from now on
      thread->stack[i].start = now;
      thread->stack[i].child = 0;
    }
  }
  for (Entry& entry : g.entries) {
    if (entry.alive) entry.matches.clear();
  }
  for (auto& [code, known] : g.known) {
    for (Entry& entry : g.entries) {
      if (entry_matches(entry, code, known.identity)) entry.add_match(known.identity);
    }
  }
  g.session_ns = 0;
  g.session_start_ns = Clock::monotonic_ns();
}

std::vector<std::string> tracer_entry_names() {
  std::vector<std::string> names;
  for (const Entry& entry : g.entries) {
    if (entry.alive) names.push_back(entry.name);
  }
  return names;
}

namespace {

// A function marked with @spyglass.trace and also named by a pattern that matches it alone
// would be two rows of the same figures (and count twice in the shares): the row the user
// typed is kept.
bool repeats_a_pattern(const Entry& entry) {
  if (entry.marked_code == nullptr || entry.matches.empty()) return false;
  auto labels = [](const Entry& e) {
    std::vector<std::string> out;
    for (const auto& m : e.matches) out.push_back(m.label);
    return out;
  };
  return std::any_of(g.entries.begin(), g.entries.end(), [&](const Entry& other) {
    return other.alive && other.pattern && labels(other) == labels(entry);
  });
}

}  // namespace

report::Results tracer_snapshot(const std::map<uint64_t, std::string>& thread_names) {
  double seconds_per_tick = Clock::seconds_per_tick();
  report::Results results;
  results.mode = "exact";
  results.pid = static_cast<int>(getpid());
  results.python_version = Py_GetVersion();
  results.python_version = results.python_version.substr(0, results.python_version.find(' '));
  uint64_t profiled_ns = g.session_ns;
  if (g.running) profiled_ns += Clock::monotonic_ns() - g.session_start_ns;
  results.duration_seconds = static_cast<double>(profiled_ns) * 1e-9;
  for (uint32_t index = 0; index < g.entries.size(); ++index) {
    const Entry& entry = g.entries[index];
    if (!entry.alive || repeats_a_pattern(entry)) continue;
    report::FunctionResult function;
    function.name = entry.name;
    function.matches = entry.matches;
    EntryStats total;
    for (const auto& thread : g.threads) {
      if (index >= thread->stats.size()) continue;
      const EntryStats& stats = thread->stats[index];
      if (stats.calls == 0 && stats.inclusive == 0 && stats.self == 0) continue;
      merge_into(total, stats);
      report::ThreadFigures per_thread;
      per_thread.thread_id = thread->ident;
      per_thread.native_id = thread->native_id;
      auto name = thread_names.find(thread->ident);
      per_thread.name = name != thread_names.end() ? name->second : std::string();
      per_thread.figures = to_figures(stats, seconds_per_tick);
      function.threads.push_back(std::move(per_thread));
    }
    function.has_data = total.calls > 0 || total.inclusive > 0;
    function.figures = to_figures(total, seconds_per_tick);
    function.share =
        results.duration_seconds > 0 ? function.figures.seconds / results.duration_seconds : 0;
    results.functions.push_back(std::move(function));
  }
  if (g.failed) results.notes.push_back("exact mode was disabled after an internal failure");
  uint64_t overflow = 0;
  for (const auto& thread : g.threads) overflow += static_cast<uint64_t>(thread->overflow);
  if (overflow > 0) {
    results.notes.push_back("chosen calls nested deeper than " +
                            std::to_string(kShadowStackDepth) + " were not timed");
  }
  return results;
}

std::map<std::string, std::string> tracer_info() {
  return {{"backend", backend::describe()},
          {"clock", Clock::source_name()},
          {"running", g.running ? "true" : "false"},
          {"failed", g.failed ? "true" : "false"},
          {"threads", std::to_string(g.threads.size())}};
}

namespace {
int uninstall_after_failure(void*) {
  tracer_stop();
  return 0;
}
}  // namespace

void tracer_fail(const char* why) {
  if (g.failed) return;
  g.failed = true;
  g.active = false;
  PySys_WriteStderr("spyglass: exact mode disabled: %s\n", why);
  // Uninstall at the next safe point, outside any callback.
  Py_AddPendingCall(uninstall_after_failure, nullptr);
}

}  // namespace spyglass::exact
