/* A stand-in for another tool's PEP 523 eval-frame function (a debugger, a JIT), for
 * test_eval_frame.py: a pass-through that counts the frames it sees. Built by the test with the
 * interpreter's headers; 3.8-3.11 only. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#if PY_VERSION_HEX < 0x03090000
#define Py_BUILD_CORE 1
#include <internal/pycore_pystate.h>
#undef Py_BUILD_CORE
#endif

static unsigned long long frames_seen = 0;

#if PY_VERSION_HEX >= 0x030B0000
static PyObject* passthrough(PyThreadState* t, struct _PyInterpreterFrame* f, int exc) {
  ++frames_seen;
  return _PyEval_EvalFrameDefault(t, f, exc);
}
#elif PY_VERSION_HEX >= 0x03090000
static PyObject* passthrough(PyThreadState* t, PyFrameObject* f, int exc) {
  ++frames_seen;
  return _PyEval_EvalFrameDefault(t, f, exc);
}
#else
static PyObject* passthrough(PyFrameObject* f, int exc) {
  ++frames_seen;
  return _PyEval_EvalFrameDefault(f, exc);
}
#endif

static _PyFrameEvalFunction get(void) {
#if PY_VERSION_HEX >= 0x03090000
  return _PyInterpreterState_GetEvalFrameFunc(PyInterpreterState_Get());
#else
  return PyThreadState_Get()->interp->eval_frame;
#endif
}

static void set(_PyFrameEvalFunction f) {
#if PY_VERSION_HEX >= 0x03090000
  _PyInterpreterState_SetEvalFrameFunc(PyInterpreterState_Get(), f);
#else
  PyThreadState_Get()->interp->eval_frame = f;
#endif
}

static PyObject* install(PyObject* self, PyObject* args) {
  set(passthrough);
  Py_RETURN_NONE;
}

static PyObject* uninstall(PyObject* self, PyObject* args) {
  set(_PyEval_EvalFrameDefault);
  Py_RETURN_NONE;
}

/* "default", "foreign" (ours) or "other" (someone else's: spyglass's). */
static PyObject* current(PyObject* self, PyObject* args) {
  _PyFrameEvalFunction f = get();
  if (f == NULL || f == _PyEval_EvalFrameDefault) return PyUnicode_FromString("default");
  return PyUnicode_FromString(f == passthrough ? "foreign" : "other");
}

static PyObject* seen(PyObject* self, PyObject* args) {
  return PyLong_FromUnsignedLongLong(frames_seen);
}

static PyMethodDef methods[] = {
    {"install", install, METH_NOARGS, NULL},
    {"uninstall", uninstall, METH_NOARGS, NULL},
    {"current", current, METH_NOARGS, NULL},
    {"seen", seen, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "foreign_eval_frame", NULL, -1, methods};

PyMODINIT_FUNC PyInit_foreign_eval_frame(void) {
  return PyModule_Create(&module);
}
