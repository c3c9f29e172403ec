// Before 3.12, the fallback of the eval-frame backend (backend_eval_frame.cpp picks one): a C
// profile hook on every thread. Existing threads get it directly; threads started later through
// `threading` get a tiny shim (threading.setprofile) that replaces itself with the C hook on the
// thread's first event. Unchosen code costs one co_extra read per call, but CPython's own cost
// of a profile hook (frame objects on 3.11, call_trace on every call) is paid by all code.
#include "extension/compat.h"

#if !SPYGLASS_HAS_MONITORING

#include <string>

#include "extension/backend_legacy.h"
#include "extension/tracer.h"

namespace spyglass::exact::backend::profile_hook {
namespace {

bool g_installed = false;
PyObject* g_shim = nullptr;  // the builtin handed to threading.setprofile

int profile_hook(PyObject*, PyFrameObject* frame, int what, PyObject*) {
  if (what == PyTrace_CALL) {
    on_start(compat::frame_code(frame), FrameRef{frame});
  } else if (what == PyTrace_RETURN) {
    on_return(compat::frame_code(frame), FrameRef{frame});  // yields are told apart later
  }
  return 0;
}

// threading.setprofile(shim): called as a Python profile function (frame, event, arg) on the new
// thread's first event; installs the C hook instead and handles that first event.
PyObject* profile_shim(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  PyEval_SetProfile(g_installed ? profile_hook : nullptr, nullptr);
  if (g_installed && nargs >= 2 && PyFrame_Check(args[0]) && PyUnicode_Check(args[1]) &&
      PyUnicode_CompareWithASCIIString(args[1], "call") == 0) {
    PyFrameObject* frame = reinterpret_cast<PyFrameObject*>(args[0]);
    on_event(Event::kStart, compat::frame_code(frame), FrameRef{frame});
  }
  Py_RETURN_NONE;
}

PyMethodDef g_shim_def = {"spyglass_thread_shim", reinterpret_cast<PyCFunction>(profile_shim),
                          METH_FASTCALL, nullptr};

bool set_threading_profile(PyObject* function) {
  PyObject* threading = PyImport_ImportModule("threading");
  if (threading == nullptr) return false;
  PyObject* result = PyObject_CallMethod(threading, "setprofile", "(O)", function);
  Py_DECREF(threading);
  if (result == nullptr) return false;
  Py_DECREF(result);
  return true;
}

void for_each_thread(Py_tracefunc hook) {
  PyInterpreterState* interpreter = PyThreadState_Get()->interp;
  for (PyThreadState* tstate = PyInterpreterState_ThreadHead(interpreter); tstate != nullptr;
       tstate = PyThreadState_Next(tstate)) {
    if (hook == nullptr && compat::profile_func_of(tstate) != profile_hook) continue;
    if (compat::set_profile_on(tstate, hook, nullptr) != 0) PyErr_Clear();
  }
}

}  // namespace

bool install() {
  if (g_shim == nullptr) {
    g_shim = PyCFunction_NewEx(&g_shim_def, nullptr, nullptr);
    if (g_shim == nullptr) return false;
  }
  if (!set_threading_profile(g_shim)) return false;
  g_installed = true;
  for_each_thread(profile_hook);
  return true;
}

void uninstall() {
  if (!g_installed) return;
  g_installed = false;
  for_each_thread(nullptr);
  if (!set_threading_profile(Py_None)) PyErr_Clear();
}

}  // namespace spyglass::exact::backend::profile_hook

#endif  // !SPYGLASS_HAS_MONITORING
