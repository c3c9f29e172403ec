// Before 3.12: a PEP 523 frame-evaluation function for the interpreter, which CPython calls for
// every Python frame it runs (a call, or a generator/coroutine resumed) on every thread, threads
// started later included. Unchosen code costs one co_extra read before the default evaluator;
// a chosen one is reported to the core before and after it. When another tool (a debugger, a
// JIT) has installed its own eval-frame function, or SPYGLASS_EXACT_BACKEND=profile, the C
// profile hook of backend_profile.cpp is used instead.
#include "extension/compat.h"

#if !SPYGLASS_HAS_MONITORING

#include <cstdlib>
#include <cstring>
#include <string>

#include "extension/backend_legacy.h"
#include "extension/tracer.h"

namespace spyglass::exact::backend {

namespace eval_frame {
namespace {

constexpr int kGeneratorFlags = CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR;

compat::EvalFrameHook g_previous = nullptr;  // the interpreter's function before ours

// 3.11 generators, coroutines and async generators: no frame object, so the step (start or
// resume, yield or end) is read from the interpreter frame and the generator's state.
PyObject* evaluate_generator(PyThreadState* tstate, compat::EvalFrame* frame, int throwflag,
                             PyObject* code) {
  compat::GeneratorStep step = compat::eval_frame_generator_step(frame);
  if (step == compat::GeneratorStep::kCreating) {
    return compat::eval_frame_default(tstate, frame, throwflag);
  }
  FrameRef ref{nullptr, frame, compat::eval_frame_globals(frame)};
  Event begin = step == compat::GeneratorStep::kFirst ? Event::kStart
                : throwflag                           ? Event::kThrow
                                                      : Event::kResume;
  if (on_event(begin, code, ref) != Verdict::kChosen) {
    return compat::eval_frame_default(tstate, frame, throwflag);
  }
  PyObject* result = compat::eval_frame_default(tstate, frame, throwflag);
  // An exception propagating out ends the call, as a return does.
  on_event(
      result != nullptr && compat::eval_frame_suspended(frame) ? Event::kYield : Event::kReturn,
      code, ref);
  return result;
}

PyObject* evaluate(PyThreadState* tstate, compat::EvalFrame* frame, int throwflag) {
  PyObject* code = compat::eval_frame_code(frame);
  if (marked_unchosen(code)) [[likely]] {
    return compat::eval_frame_default(tstate, frame, throwflag);
  }
  PyFrameObject* object = compat::eval_frame_object(frame);
  if (object == nullptr && (compat::code_flags(code) & kGeneratorFlags) != 0) [[unlikely]] {
    return evaluate_generator(tstate, frame, throwflag, code);
  }
  // With a frame object (before 3.11) the core tells a generator's start from its resume, and
  // its yield from its end, from the frame, as it does for the profile hook.
  FrameRef ref{object, nullptr, object == nullptr ? compat::eval_frame_globals(frame) : nullptr};
  if (on_start(code, ref) != Verdict::kChosen) [[likely]] {
    return compat::eval_frame_default(tstate, frame, throwflag);
  }
  PyObject* result = compat::eval_frame_default(tstate, frame, throwflag);
  on_return(code, ref);
  return result;
}

const compat::EvalFrameHook kHook = compat::eval_frame_adapter<evaluate>;

}  // namespace

bool install() {
  compat::EvalFrameHook current = compat::eval_frame_get();
  if (current == kHook) return true;
  if (!compat::eval_frame_is_default(current)) return false;
  g_previous = current;
  compat::eval_frame_set(kHook);
  return true;
}

void uninstall() {
  // Another tool that replaced ours since keeps its own; frames of ours still running finish in
  // `evaluate`, whose reports the stopped core ignores.
  if (compat::eval_frame_get() == kHook) compat::eval_frame_set(g_previous);
}

}  // namespace eval_frame

namespace {

enum class Kind { kNone, kEvalFrame, kProfileHook };

Kind g_installed = Kind::kNone;
Kind g_last = Kind::kNone;  // for status after stop
bool g_eval_frame_taken = false;

// SPYGLASS_EXACT_BACKEND=profile|eval_frame, read at each start (`warn`: an unknown name is
// reported); the eval-frame function by default (docs/exact.md, "Cost").
Kind wanted_kind(bool warn) {
  const char* name = std::getenv("SPYGLASS_EXACT_BACKEND");
  if (name == nullptr || *name == '\0') return Kind::kEvalFrame;
  if (std::strcmp(name, "profile") == 0) return Kind::kProfileHook;
  if (std::strcmp(name, "eval_frame") == 0 || std::strcmp(name, "eval-frame") == 0) {
    return Kind::kEvalFrame;
  }
  if (warn) {
    PySys_WriteStderr(
        "spyglass: SPYGLASS_EXACT_BACKEND=%.100s is not profile or eval_frame: eval_frame used\n",
        name);
  }
  return Kind::kEvalFrame;
}

}  // namespace

bool install() {
  if (g_installed != Kind::kNone) return true;
  Kind kind = wanted_kind(true);
  g_eval_frame_taken = false;
  if (kind == Kind::kEvalFrame) {
    if (eval_frame::install()) {
      g_installed = g_last = Kind::kEvalFrame;
      return true;
    }
    g_eval_frame_taken = true;  // another tool's eval-frame function: the profile hook then
  }
  if (!profile_hook::install()) return false;
  g_installed = g_last = Kind::kProfileHook;
  return true;
}

void uninstall() {
  if (g_installed == Kind::kEvalFrame) eval_frame::uninstall();
  if (g_installed == Kind::kProfileHook) profile_hook::uninstall();
  g_installed = Kind::kNone;
}

void code_chosen(PyObject*) {}
void code_dropped(PyObject*) {}
void chosen_set_changed(bool) {}

std::string describe() {
  switch (g_last) {
    case Kind::kEvalFrame:
      return "eval-frame function (PEP 523)";
    case Kind::kProfileHook:
      return g_eval_frame_taken ? "profile hook (another tool's eval-frame function is installed)"
                                : "profile hook";
    case Kind::kNone:
      break;
  }
  return wanted_kind(false) == Kind::kProfileHook ? "profile hook"
                                                  : "eval-frame function (PEP 523)";
}

}  // namespace spyglass::exact::backend

#endif  // !SPYGLASS_HAS_MONITORING
