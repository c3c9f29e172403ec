// The exact-mode core: which code objects are chosen, per-thread shadow stacks of the chosen calls
// in flight, and the per-thread figures. Backends (sys.monitoring on 3.12+, a PEP 523 eval-frame
// function or a C profile hook before) feed it events; everything here runs with the GIL held.
#pragma once

#include "extension/compat.h"

#include <cstdint>
#include <map>
#include <string>

#include "extension/clock.h"
#include "report/results.h"

namespace spyglass::exact {

enum class Event { kStart, kResume, kReturn, kYield, kUnwind, kThrow };

enum class Verdict {
  kNotChosen,  // the code is not timed (a sys.monitoring backend may DISABLE the location)
  kChosen,
  kIgnored,  // not decided now (stopped, re-entered, failed): leave instrumentation alone
};

// What a backend knows of the frame an event is about.
struct FrameRef {
  // The frame object (the profile hook; the eval-frame backend before 3.11): a generator's
  // start, resume and yield are then told apart from it, as the profile hook needs.
  PyFrameObject* object = nullptr;
  // Without one (the eval-frame backend on 3.11): a key for the generator instance (its
  // interpreter frame) and the frame's globals; the backend says kStart/kResume/kYield itself.
  void* instance_key = nullptr;
  PyObject* globals = nullptr;  // borrowed
};

// The hot path. `frame` is empty under sys.monitoring.
Verdict on_event(Event event, PyObject* code, const FrameRef& frame);
// The same for kStart and kReturn, with the common case (a plain function already judged) kept
// short; anything else is handed to on_event.
Verdict on_start(PyObject* code, const FrameRef& frame);
Verdict on_return(PyObject* code, const FrameRef& frame);

// The eval-frame backend's first test on every call, inlined there: true when `code` was judged
// not chosen for the current chosen set (its co_extra holds that generation's mark). Code never
// judged, judged for an older set, or chosen, answers false and goes to on_start/on_event.
struct UnchosenMark {
  Py_ssize_t extra_index = -1;
  uintptr_t value = 0;  // (generation << 1) | 1
};
extern UnchosenMark g_unchosen_mark;

inline bool marked_unchosen(PyObject* code) {
  return reinterpret_cast<uintptr_t>(compat::code_extra_fast(code, g_unchosen_mark.extra_index)) ==
         g_unchosen_mark.value;
}

// Control, called from the module's functions (GIL held, never from inside a callback).
bool tracer_initialize();  // once, at import; false with a Python error set
bool tracer_start();       // installs the backend; false with a Python error set
void tracer_stop();        // uninstalls; calls in flight end now (time kept, not counted as calls)
bool tracer_running();
// Adds a pattern entry (or a code-object entry when `code` is not null). Returns false when an
// entry with that name already exists; throws pattern::PatternError for a malformed pattern.
bool tracer_add(const std::string& name, PyObject* code);
bool tracer_remove(const std::string& name);
void tracer_clear();  // removes every entry
void tracer_reset();  // zeroes the figures, keeps the entries
std::vector<std::string> tracer_entry_names();
// The figures so far, in the shared result model. `thread_names` maps thread idents to names.
report::Results tracer_snapshot(const std::map<uint64_t, std::string>& thread_names);
// Backend and clock details for `status`.
std::map<std::string, std::string> tracer_info();

// Disables the tracer after an internal failure: one warning, nothing raised into user code.
void tracer_fail(const char* why);

// The backend interface: backend_monitoring.cpp on 3.12+; before, backend_eval_frame.cpp (a
// PEP 523 eval-frame function, or the profile hook of backend_profile.cpp).
namespace backend {
bool install();  // false with a Python error set
void uninstall();
void code_chosen(PyObject* code);   // start delivering this code's events
void code_dropped(PyObject* code);  // stop delivering them
void chosen_set_changed(bool anything_chosen);  // re-evaluate code already judged
std::string describe();
}  // namespace backend

}  // namespace spyglass::exact
