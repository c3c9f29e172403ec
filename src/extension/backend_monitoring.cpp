// 3.12+: sys.monitoring (PEP 669) with a tool id of our own and C (METH_FASTCALL) callbacks.
// Chosen code objects get local PY_START/PY_RESUME/PY_RETURN/PY_YIELD events; nothing else
// carries instrumentation once seen. New code objects are seen through a global PY_START whose
// callback judges the code once and returns DISABLE for that location when it is not chosen.
// PY_UNWIND and PY_THROW are global-only (and cannot be disabled): they are on only while
// something is chosen, and answer "not chosen" from the code object's mark.
#include "extension/compat.h"

#if SPYGLASS_HAS_MONITORING

#include <string>

#include "extension/tracer.h"

namespace spyglass::exact::backend {
namespace {

struct MonitoringState {
  int tool = -1;
  int last_tool = -1;  // for status after stop
  PyObject* monitoring = nullptr;  // the sys.monitoring module
  PyObject* disable = nullptr;     // sys.monitoring.DISABLE
  long ev_start = 0, ev_resume = 0, ev_return = 0, ev_yield = 0, ev_unwind = 0, ev_throw = 0;
  long global_events = 0;
};

MonitoringState m;

PyObject* answer(Verdict verdict, bool may_disable) {
  if (verdict == Verdict::kNotChosen && may_disable) return Py_NewRef(m.disable);
  Py_RETURN_NONE;
}

// The callbacks, in vectorcall form: sys.monitoring calls them through PyObject_Vectorcall on
// objects of our own type (below) whose vectorcall slot is the callback itself.
PyObject* on_py_start(PyObject*, PyObject* const* args, size_t nargsf, PyObject*) {
  if (PyVectorcall_NARGS(nargsf) < 1) Py_RETURN_NONE;
  return answer(on_start(args[0], FrameRef{}), true);
}
PyObject* on_py_resume(PyObject*, PyObject* const* args, size_t nargsf, PyObject*) {
  if (PyVectorcall_NARGS(nargsf) < 1) Py_RETURN_NONE;
  return answer(on_event(Event::kResume, args[0], FrameRef{}), true);
}
PyObject* on_py_return(PyObject*, PyObject* const* args, size_t nargsf, PyObject*) {
  if (PyVectorcall_NARGS(nargsf) < 1) Py_RETURN_NONE;
  return answer(on_return(args[0], FrameRef{}), true);
}
PyObject* on_py_yield(PyObject*, PyObject* const* args, size_t nargsf, PyObject*) {
  if (PyVectorcall_NARGS(nargsf) < 1) Py_RETURN_NONE;
  return answer(on_event(Event::kYield, args[0], FrameRef{}), true);
}
PyObject* on_py_unwind(PyObject*, PyObject* const* args, size_t nargsf, PyObject*) {
  if (PyVectorcall_NARGS(nargsf) < 1) Py_RETURN_NONE;
  return answer(on_event(Event::kUnwind, args[0], FrameRef{}), false);
}
PyObject* on_py_throw(PyObject*, PyObject* const* args, size_t nargsf, PyObject*) {
  if (PyVectorcall_NARGS(nargsf) < 1) Py_RETURN_NONE;
  return answer(on_event(Event::kThrow, args[0], FrameRef{}), false);
}

// A callable holding one callback. A builtin function (PyCFunction) would put its own layer in
// between: argument-shape checks and a recursion check that reads the thread state through
// libpython's thread-local (a call to __tls_get_addr), about 30 instructions and 2.5 ns per event
// here. This type's vectorcall slot is the callback, called directly.
struct Callback {
  PyObject ob_base;
  vectorcallfunc vectorcall;
  const char* name;
};

struct CallbackDef {
  const char* name;
  vectorcallfunc function;
};

const CallbackDef g_callbacks[] = {
    {"spyglass_py_start", on_py_start},   {"spyglass_py_resume", on_py_resume},
    {"spyglass_py_return", on_py_return}, {"spyglass_py_yield", on_py_yield},
    {"spyglass_py_unwind", on_py_unwind}, {"spyglass_py_throw", on_py_throw},
};

void callback_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_Free(self);
  Py_DECREF(type);  // instances of a heap type hold a reference to it
}

PyObject* callback_repr(PyObject* self) {
  return PyUnicode_FromFormat("<%s callback>", reinterpret_cast<Callback*>(self)->name);
}

PyMemberDef g_callback_members[] = {
    {"__vectorcalloffset__", Py_T_PYSSIZET, offsetof(Callback, vectorcall), Py_READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

PyType_Slot g_callback_slots[] = {
    {Py_tp_call, reinterpret_cast<void*>(PyVectorcall_Call)},
    {Py_tp_dealloc, reinterpret_cast<void*>(callback_dealloc)},
    {Py_tp_repr, reinterpret_cast<void*>(callback_repr)},
    {Py_tp_members, g_callback_members},
    {0, nullptr},
};

PyType_Spec g_callback_spec = {"spyglass._spyglass.MonitoringCallback", sizeof(Callback), 0,
                               Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL |
                                   Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
                               g_callback_slots};

PyObject* g_callback_type = nullptr;

// A new reference to a callable for `def`, or null with an error set.
PyObject* new_callback(const CallbackDef& def) {
  if (g_callback_type == nullptr) {
    g_callback_type = PyType_FromSpec(&g_callback_spec);
    if (g_callback_type == nullptr) return nullptr;
  }
  Callback* callback = PyObject_New(Callback, reinterpret_cast<PyTypeObject*>(g_callback_type));
  if (callback == nullptr) return nullptr;
  callback->vectorcall = def.function;
  callback->name = def.name;
  return reinterpret_cast<PyObject*>(callback);
}

// Calls sys.monitoring.<name>(*args); returns the new reference or null with an error set.
PyObject* call(const char* name, PyObject* args) {
  if (args == nullptr) return nullptr;
  PyObject* function = PyObject_GetAttrString(m.monitoring, name);
  PyObject* result = function != nullptr ? PyObject_CallObject(function, args) : nullptr;
  Py_XDECREF(function);
  Py_DECREF(args);
  return result;
}

bool call_quietly(const char* name, PyObject* args) {
  PyObject* result = call(name, args);
  if (result == nullptr) {
    PyErr_Clear();
    return false;
  }
  Py_DECREF(result);
  return true;
}

bool load_module() {
  if (m.monitoring != nullptr) return true;
  PyObject* sys = PyImport_ImportModule("sys");
  if (sys == nullptr) return false;
  m.monitoring = PyObject_GetAttrString(sys, "monitoring");
  Py_DECREF(sys);
  if (m.monitoring == nullptr) return false;
  m.disable = PyObject_GetAttrString(m.monitoring, "DISABLE");
  PyObject* events = PyObject_GetAttrString(m.monitoring, "events");
  if (m.disable == nullptr || events == nullptr) return false;
  struct {
    const char* name;
    long* slot;
  } wanted[] = {{"PY_START", &m.ev_start},   {"PY_RESUME", &m.ev_resume},
                {"PY_RETURN", &m.ev_return}, {"PY_YIELD", &m.ev_yield},
                {"PY_UNWIND", &m.ev_unwind}, {"PY_THROW", &m.ev_throw}};
  for (auto& event : wanted) {
    PyObject* value = PyObject_GetAttrString(events, event.name);
    if (value == nullptr) {
      Py_DECREF(events);
      return false;
    }
    *event.slot = PyLong_AsLong(value);
    Py_DECREF(value);
  }
  Py_DECREF(events);
  return true;
}

long local_events() { return m.ev_start | m.ev_resume | m.ev_return | m.ev_yield; }

void set_global_events(long events) {
  if (m.tool < 0 || events == m.global_events) return;
  if (call_quietly("set_events", Py_BuildValue("(il)", m.tool, events))) m.global_events = events;
}

}  // namespace

bool install() {
  if (!load_module()) return false;
  // 2 is cProfile's (PROFILER_ID); debuggers and coverage take 0 and 1 first.
  for (int tool : {3, 4, 5, 1, 0}) {
    PyObject* result = call("use_tool_id", Py_BuildValue("(is)", tool, "spyglass"));
    if (result != nullptr) {
      Py_DECREF(result);
      m.tool = m.last_tool = tool;
      break;
    }
    PyErr_Clear();
  }
  if (m.tool < 0) {
    PyErr_SetString(PyExc_RuntimeError, "spyglass: no free sys.monitoring tool id (3, 4, 5, 1, 0)");
    return false;
  }
  long events[] = {m.ev_start, m.ev_resume, m.ev_return, m.ev_yield, m.ev_unwind, m.ev_throw};
  for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); ++i) {
    PyObject* callback = new_callback(g_callbacks[i]);
    PyObject* result =
        callback != nullptr ? call("register_callback", Py_BuildValue("(ilO)", m.tool, events[i],
                                                                      callback))
                            : nullptr;
    Py_XDECREF(callback);
    if (result == nullptr) {
      uninstall();
      return false;
    }
    Py_DECREF(result);
  }
  m.global_events = 0;
  return true;
}

void uninstall() {
  if (m.tool < 0) return;
  set_global_events(0);
  for (long event : {m.ev_start, m.ev_resume, m.ev_return, m.ev_yield, m.ev_unwind, m.ev_throw}) {
    call_quietly("register_callback", Py_BuildValue("(ilO)", m.tool, event, Py_None));
  }
  call_quietly("free_tool_id", Py_BuildValue("(i)", m.tool));
  m.tool = -1;
}

void code_chosen(PyObject* code) {
  if (m.tool < 0) return;
  call_quietly("set_local_events", Py_BuildValue("(iOl)", m.tool, code, local_events()));
}

void code_dropped(PyObject* code) {
  if (m.tool < 0) return;
  call_quietly("set_local_events", Py_BuildValue("(iOl)", m.tool, code, 0L));
}

void chosen_set_changed(bool anything_chosen) {
  set_global_events(anything_chosen ? (m.ev_start | m.ev_unwind | m.ev_throw) : 0);
  // Locations disabled as "not chosen" must be judged again against the new set.
  if (anything_chosen) call_quietly("restart_events", PyTuple_New(0));
}

std::string describe() {
  if (m.last_tool < 0) return "sys.monitoring";
  return "sys.monitoring tool " + std::to_string(m.last_tool);
}

}  // namespace spyglass::exact::backend

#endif  // SPYGLASS_HAS_MONITORING
