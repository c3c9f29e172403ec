// Every difference between CPython versions that exact mode depends on, in one place: the rest of
// the extension never tests PY_VERSION_HEX. Each helper is a trivial accessor over a field or an
// API whose name or shape changed between 3.8 and 3.15 (3.15 needs no branch of its own: every
// call and field used here is unchanged from 3.14 in its headers, and tests/exact passes on it).
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

#include <cstdint>

// PEP 523 (the eval-frame backend, before 3.12) needs two private structures: 3.8's
// PyInterpreterState (its eval_frame field; 3.9+ have setter and getter functions) and 3.11's
// _PyInterpreterFrame. Their headers want Py_BUILD_CORE; 3.8's pull in pycore_atomic.h, whose
// C11 <stdatomic.h> branch is not C++: the GCC-builtin branch is taken instead.
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
#define Py_BUILD_CORE 1
#include <internal/pycore_frame.h>
#include <opcode.h>  // RETURN_GENERATOR
#undef Py_BUILD_CORE
#elif PY_VERSION_HEX < 0x03090000
#define Py_BUILD_CORE 1
#undef HAVE_STD_ATOMIC
#include <internal/pycore_pystate.h>
#undef Py_BUILD_CORE
#endif

// 3.12+ has sys.monitoring (PEP 669): per-code-object local events. Before it, a C profile hook.
#if PY_VERSION_HEX >= 0x030C0000
#define SPYGLASS_HAS_MONITORING 1
#else
#define SPYGLASS_HAS_MONITORING 0
#endif

namespace spyglass::exact::compat {

inline Py_ssize_t request_code_extra_index() {
#if PY_VERSION_HEX >= 0x030C0000
  return PyUnstable_Eval_RequestCodeExtraIndex(nullptr);
#else
  return _PyEval_RequestCodeExtraIndex(nullptr);
#endif
}

inline int code_set_extra(PyObject* code, Py_ssize_t index, void* extra) {
#if PY_VERSION_HEX >= 0x030C0000
  return PyUnstable_Code_SetExtra(code, index, extra);
#else
  return _PyCode_SetExtra(code, index, extra);
#endif
}

// The hot path's read of a co_extra slot, without the call into libpython (a PLT call plus
// checks we do not need: `code` is always a code object and `index` one we were given).
// co_extra points to CPython's private holder {Py_ssize_t ce_size; void* ce_extras[]} (the same
// layout from 3.7 to 3.15, Objects/codeobject.c), or is null while no slot was ever set.
struct CodeExtraHolder {
  Py_ssize_t size;
  void* extras[1];
};

inline void* code_extra_fast(PyObject* code, Py_ssize_t index) {
  auto* holder = static_cast<CodeExtraHolder*>(reinterpret_cast<PyCodeObject*>(code)->co_extra);
  if (holder == nullptr || index >= holder->size) return nullptr;
  return holder->extras[index];
}

inline int code_flags(PyObject* code) { return reinterpret_cast<PyCodeObject*>(code)->co_flags; }
inline int code_argcount(PyObject* code) {
  return reinterpret_cast<PyCodeObject*>(code)->co_argcount;
}
inline int code_first_line(PyObject* code) {
  return reinterpret_cast<PyCodeObject*>(code)->co_firstlineno;
}

// co_qualname exists from 3.11; before, the caller has to recover the qualified name.
inline bool code_has_qualname() { return PY_VERSION_HEX >= 0x030B0000; }

// The code object a profile-hook frame runs (borrowed reference semantics: the frame keeps the
// code alive for the duration of the hook).
inline PyObject* frame_code(PyFrameObject* frame) {
#if PY_VERSION_HEX >= 0x030B0000
  PyCodeObject* code = PyFrame_GetCode(frame);
  Py_DECREF(code);
  return reinterpret_cast<PyObject*>(code);
#else
  return reinterpret_cast<PyObject*>(frame->f_code);
#endif
}

// Globals of a profile-hook frame; borrowed, may be null.
inline PyObject* frame_globals(PyFrameObject* frame) {
#if PY_VERSION_HEX >= 0x030B0000
  PyObject* globals = PyFrame_GetGlobals(frame);
  Py_XDECREF(globals);  // the frame holds it
  return globals;
#else
  return frame->f_globals;
#endif
}

// The first argument of a frame that has just been called (to find the class of a method before
// co_qualname existed). Borrowed, may be null. Only used before 3.11.
inline PyObject* frame_first_argument(PyFrameObject* frame) {
#if PY_VERSION_HEX >= 0x030B0000
  (void)frame;
  return nullptr;
#else
  return frame->f_localsplus[0];
#endif
}

// In a profile hook's PyTrace_RETURN event: true when the frame is suspending at a yield/await
// rather than finishing.
inline bool frame_is_suspending(PyFrameObject* frame) {
#if PY_VERSION_HEX >= 0x030C0000
  (void)frame;
  return false;  // not used: sys.monitoring reports PY_YIELD separately
#elif PY_VERSION_HEX >= 0x030B0000
  PyObject* gen = PyFrame_GetGenerator(frame);
  if (gen == nullptr) return false;
  // gi_frame_state is set to FRAME_SUSPENDED (-1, internal/pycore_frame.h) before the profile
  // hook sees the yield; a finishing generator is still FRAME_EXECUTING (0) at that point.
  bool suspended = reinterpret_cast<PyGenObject*>(gen)->gi_frame_state == -1;
  Py_DECREF(gen);
  return suspended;
#elif PY_VERSION_HEX >= 0x030A0000
  return frame->f_state == FRAME_SUSPENDED;
#else
  return frame->f_stacktop != nullptr;  // set only by YIELD_VALUE / YIELD_FROM
#endif
}

// A pointer that identifies the running generator/coroutine instance inside a sys.monitoring
// callback: its interpreter frame, which lives inside the generator object for its whole life.
inline void* current_instance_key() {
#if PY_VERSION_HEX >= 0x030D0000
  return PyThreadState_GetUnchecked()->current_frame;
#elif PY_VERSION_HEX >= 0x030C0000
  return PyThreadState_Get()->cframe->current_frame;
#else
  return nullptr;
#endif
}

// Globals of the frame whose sys.monitoring event is being handled; borrowed, may be null.
inline PyObject* current_globals() { return PyEval_GetGlobals(); }

// Installs (or removes, func == nullptr) a C profile hook on another thread's state.
inline int set_profile_on(PyThreadState* tstate, Py_tracefunc func, PyObject* arg) {
#if SPYGLASS_HAS_MONITORING
  (void)tstate, (void)func, (void)arg;
  return -1;  // not used: sys.monitoring covers every thread
#elif PY_VERSION_HEX >= 0x03090000
  return _PyEval_SetProfile(tstate, func, arg);
#else
  // 3.8 has no per-thread call: do what PyEval_SetProfile does, for the given thread.
  PyObject* previous = tstate->c_profileobj;
  Py_XINCREF(arg);
  tstate->c_profilefunc = nullptr;
  tstate->c_profileobj = nullptr;
  tstate->use_tracing = tstate->c_tracefunc != nullptr;
  Py_XDECREF(previous);
  tstate->c_profilefunc = func;
  tstate->c_profileobj = arg;
  tstate->use_tracing = (func != nullptr) || (tstate->c_tracefunc != nullptr);
  return 0;
#endif
}

inline Py_tracefunc profile_func_of(PyThreadState* tstate) {
#if SPYGLASS_HAS_MONITORING
  (void)tstate;
  return nullptr;
#else
  return tstate->c_profilefunc;
#endif
}

// ---- PEP 523: a frame-evaluation function of our own (3.8-3.11) ----
#if !SPYGLASS_HAS_MONITORING

// What CPython hands an eval-frame function: a frame object before 3.11, the interpreter's own
// frame from 3.11.
#if PY_VERSION_HEX >= 0x030B0000
using EvalFrame = _PyInterpreterFrame;
#else
using EvalFrame = PyFrameObject;
#endif
// The version's eval-frame function type, and ours in one shape (tstate is null on 3.8, which
// does not pass it and whose default evaluator does not take it).
using EvalFrameHook = _PyFrameEvalFunction;
using EvalFrameBody = PyObject* (*)(PyThreadState* tstate, EvalFrame* frame, int throwflag);

// An EvalFrameHook that calls `Body`.
template <EvalFrameBody Body>
#if PY_VERSION_HEX >= 0x03090000
PyObject* eval_frame_adapter(PyThreadState* tstate, EvalFrame* frame, int throwflag) {
  return Body(tstate, frame, throwflag);
}
#else
PyObject* eval_frame_adapter(PyFrameObject* frame, int throwflag) {
  return Body(nullptr, frame, throwflag);
}
#endif

inline PyObject* eval_frame_default(PyThreadState* tstate, EvalFrame* frame, int throwflag) {
#if PY_VERSION_HEX >= 0x03090000
  return _PyEval_EvalFrameDefault(tstate, frame, throwflag);
#else
  (void)tstate;
  return _PyEval_EvalFrameDefault(frame, throwflag);
#endif
}

// The interpreter's eval-frame function (3.11 stores null for the default; it is read back as
// the default).
inline EvalFrameHook eval_frame_get() {
#if PY_VERSION_HEX >= 0x03090000
  return _PyInterpreterState_GetEvalFrameFunc(PyInterpreterState_Get());
#else
  return PyThreadState_Get()->interp->eval_frame;
#endif
}

inline void eval_frame_set(EvalFrameHook hook) {
#if PY_VERSION_HEX >= 0x03090000
  _PyInterpreterState_SetEvalFrameFunc(PyInterpreterState_Get(), hook);
#else
  PyThreadState_Get()->interp->eval_frame = hook;
#endif
}

inline bool eval_frame_is_default(EvalFrameHook hook) {
  return hook == nullptr || hook == reinterpret_cast<EvalFrameHook>(&_PyEval_EvalFrameDefault);
}

// The code object an eval-frame frame runs (borrowed: the frame holds it).
inline PyObject* eval_frame_code(EvalFrame* frame) {
  return reinterpret_cast<PyObject*>(frame->f_code);
}

// The frame object to hand the core, as the profile hook would (before 3.11); null on 3.11,
// where none exists unless something asked for one (making it would cost every chosen call).
inline PyFrameObject* eval_frame_object(EvalFrame* frame) {
#if PY_VERSION_HEX >= 0x030B0000
  (void)frame;
  return nullptr;
#else
  return frame;
#endif
}

inline PyObject* eval_frame_globals(EvalFrame* frame) {
  return frame->f_globals;
}

// 3.11 only (before, the frame object tells the core everything): where a generator, coroutine
// or async generator's frame is when the eval-frame function is called, and after it returns.
enum class GeneratorStep {
  kCreating,  // the call that makes the generator object (RETURN_GENERATOR): no event
  kFirst,     // its first run
  kLater,     // a resume (send, next, throw)
};

inline GeneratorStep eval_frame_generator_step(EvalFrame* frame) {
#if PY_VERSION_HEX >= 0x030B0000
  if (frame->owner != FRAME_OWNED_BY_GENERATOR) return GeneratorStep::kCreating;
  // A generator that never ran is still after its RETURN_GENERATOR (copied into the generator
  // by the creating call); a resumed one is after a YIELD_VALUE.
  return _Py_OPCODE(*frame->prev_instr) == RETURN_GENERATOR ? GeneratorStep::kFirst
                                                            : GeneratorStep::kLater;
#else
  (void)frame;
  return GeneratorStep::kFirst;
#endif
}

// After the default evaluator returned: true when the generator's frame is suspended at a
// yield/await (YIELD_VALUE sets FRAME_SUSPENDED; a return or an exception leaves it executing
// until gen_send_ex2 clears it).
inline bool eval_frame_suspended(EvalFrame* frame) {
#if PY_VERSION_HEX >= 0x030B0000
  if (frame->owner != FRAME_OWNED_BY_GENERATOR) return false;
  auto* gen = reinterpret_cast<PyGenObject*>(reinterpret_cast<char*>(frame) -
                                             offsetof(PyGenObject, gi_iframe));
  return gen->gi_frame_state == FRAME_SUSPENDED;
#else
  return frame_is_suspending(frame);
#endif
}

#endif  // !SPYGLASS_HAS_MONITORING

}  // namespace spyglass::exact::compat
