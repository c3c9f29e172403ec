// The `spyglass._spyglass` module: the thin control surface over the tracer. The friendly API
// (start/stop/profile/trace/Results) is Python, in python/spyglass/__init__.py.
#include "extension/compat.h"

#include <map>
#include <string>

#include "extension/toml_json.h"
#include "extension/tracer.h"
#include "report/results.h"

namespace spyglass::exact {
namespace {

constexpr const char* kResultsCapsule = "spyglass.results";

PyObject* py_start(PyObject*, PyObject*) {
  if (!tracer_start()) return nullptr;
  Py_RETURN_NONE;
}

PyObject* py_stop(PyObject*, PyObject*) {
  tracer_stop();
  Py_RETURN_NONE;
}

PyObject* py_running(PyObject*, PyObject*) { return PyBool_FromLong(tracer_running()); }

PyObject* py_add(PyObject*, PyObject* args) {
  const char* name = nullptr;
  PyObject* code = nullptr;
  if (!PyArg_ParseTuple(args, "s|O:add", &name, &code)) return nullptr;
  if (code == Py_None) code = nullptr;
  if (code != nullptr && !PyCode_Check(code)) {
    PyErr_SetString(PyExc_TypeError, "add(): the second argument must be a code object");
    return nullptr;
  }
  try {
    return PyBool_FromLong(tracer_add(name, code));
  } catch (const std::exception& e) {  // a malformed pattern: nothing was added
    PyErr_SetString(PyExc_ValueError, e.what());
    return nullptr;
  }
}

PyObject* py_remove(PyObject*, PyObject* args) {
  const char* name = nullptr;
  if (!PyArg_ParseTuple(args, "s:remove", &name)) return nullptr;
  return PyBool_FromLong(tracer_remove(name));
}

PyObject* py_clear(PyObject*, PyObject*) {
  tracer_clear();
  Py_RETURN_NONE;
}

PyObject* py_reset(PyObject*, PyObject*) {
  tracer_reset();
  Py_RETURN_NONE;
}

PyObject* py_entries(PyObject*, PyObject*) {
  auto names = tracer_entry_names();
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(names.size()));
  if (list == nullptr) return nullptr;
  for (size_t i = 0; i < names.size(); ++i) {
    PyObject* name = PyUnicode_FromStringAndSize(names[i].data(),
                                                 static_cast<Py_ssize_t>(names[i].size()));
    if (name == nullptr) {
      Py_DECREF(list);
      return nullptr;
    }
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), name);
  }
  return list;
}

void free_results(PyObject* capsule) {
  delete static_cast<report::Results*>(PyCapsule_GetPointer(capsule, kResultsCapsule));
}

// snapshot(thread_names: dict[int, str] | None) -> capsule holding report::Results
PyObject* py_snapshot(PyObject*, PyObject* args) {
  PyObject* names = nullptr;
  if (!PyArg_ParseTuple(args, "|O:snapshot", &names)) return nullptr;
  std::map<uint64_t, std::string> thread_names;
  if (names != nullptr && PyDict_Check(names)) {
    PyObject *key, *value;
    Py_ssize_t position = 0;
    while (PyDict_Next(names, &position, &key, &value)) {
      if (!PyLong_Check(key) || !PyUnicode_Check(value)) continue;
      uint64_t ident = PyLong_AsUnsignedLongLong(key);
      const char* text = PyUnicode_AsUTF8(value);
      if (PyErr_Occurred() || text == nullptr) {
        PyErr_Clear();
        continue;
      }
      thread_names[ident] = text;
    }
  }
  auto* results = new report::Results(tracer_snapshot(thread_names));
  PyObject* capsule = PyCapsule_New(results, kResultsCapsule, free_results);
  if (capsule == nullptr) delete results;
  return capsule;
}

report::Results* results_of(PyObject* capsule) {
  return static_cast<report::Results*>(PyCapsule_GetPointer(capsule, kResultsCapsule));
}

PyObject* py_render_table(PyObject*, PyObject* args) {
  PyObject* capsule = nullptr;
  int unicode = 1, per_thread = 0, color = 0;
  Py_ssize_t width = 0, matches = static_cast<Py_ssize_t>(report::TableStyle::kDefaultMaxMatches);
  if (!PyArg_ParseTuple(args, "O|pppnn:render_table", &capsule, &unicode, &per_thread, &color,
                        &width, &matches)) {
    return nullptr;
  }
  report::Results* results = results_of(capsule);
  if (results == nullptr) return nullptr;
  report::TableStyle style;
  style.unicode = unicode != 0;
  style.per_thread = per_thread != 0;
  style.color = color != 0;
  style.max_width = width > 0 ? static_cast<size_t>(width) : 0;
  style.max_matches = matches > 0 ? static_cast<size_t>(matches) : 1;
  try {
    std::string table = report::render_table(*results, style);
    return PyUnicode_FromStringAndSize(table.data(), static_cast<Py_ssize_t>(table.size()));
  } catch (const std::exception& error) {
    PyErr_SetString(PyExc_RuntimeError, error.what());
    return nullptr;
  }
}

PyObject* py_to_json(PyObject*, PyObject* args) {
  PyObject* capsule = nullptr;
  if (!PyArg_ParseTuple(args, "O:to_json", &capsule)) return nullptr;
  report::Results* results = results_of(capsule);
  if (results == nullptr) return nullptr;
  try {
    std::string text = report::to_json(*results).dump();
    return PyUnicode_FromStringAndSize(text.data(), static_cast<Py_ssize_t>(text.size()));
  } catch (const std::exception& error) {
    PyErr_SetString(PyExc_RuntimeError, error.what());
    return nullptr;
  }
}

PyObject* py_info(PyObject*, PyObject*) {
  PyObject* dict = PyDict_New();
  if (dict == nullptr) return nullptr;
  for (const auto& [key, value] : tracer_info()) {
    PyObject* text = PyUnicode_FromString(value.c_str());
    if (text == nullptr || PyDict_SetItemString(dict, key.c_str(), text) != 0) {
      Py_XDECREF(text);
      Py_DECREF(dict);
      return nullptr;
    }
    Py_DECREF(text);
  }
  return dict;
}

// load_toml(path) -> dict: the config for interpreters without tomllib (before 3.11).
PyObject* py_load_toml(PyObject*, PyObject* args) {
  const char* path = nullptr;
  if (!PyArg_ParseTuple(args, "s:load_toml", &path)) return nullptr;
  std::string text;
  try {
    text = toml_file_to_json(path);
  } catch (const std::exception& error) {
    PyErr_SetString(PyExc_ValueError, error.what());
    return nullptr;
  }
  PyObject* json = PyImport_ImportModule("json");
  if (json == nullptr) return nullptr;
  PyObject* parsed = PyObject_CallMethod(json, "loads", "s", text.c_str());
  Py_DECREF(json);
  return parsed;
}

// For the tests: what an internal failure does (one message, uninstalled at the next safe point,
// nothing raised into the program).
PyObject* py_simulate_failure(PyObject*, PyObject*) {
  tracer_fail("simulated failure (test)");
  Py_RETURN_NONE;
}

PyMethodDef g_methods[] = {
    {"start", py_start, METH_NOARGS, "Install the tracer."},
    {"stop", py_stop, METH_NOARGS, "Uninstall the tracer; calls in flight end now."},
    {"running", py_running, METH_NOARGS, "True while the tracer is installed."},
    {"add", py_add, METH_VARARGS, "add(name, code=None): choose a pattern or one code object."},
    {"remove", py_remove, METH_VARARGS, "remove(name): stop timing an entry."},
    {"clear", py_clear, METH_NOARGS, "Remove every entry."},
    {"reset", py_reset, METH_NOARGS, "Zero the figures, keep the entries."},
    {"entries", py_entries, METH_NOARGS, "Names of the chosen entries, in order."},
    {"snapshot", py_snapshot, METH_VARARGS, "snapshot(thread_names=None): the figures so far."},
    {"render_table", py_render_table, METH_VARARGS,
     "render_table(snapshot, unicode=True, per_thread=False, color=False, width=0, matches=10)"},
    {"to_json", py_to_json, METH_VARARGS, "to_json(snapshot) -> str"},
    {"info", py_info, METH_NOARGS, "Backend and clock in use."},
    {"load_toml", py_load_toml, METH_VARARGS, "load_toml(path) -> dict"},
    {"_simulate_failure", py_simulate_failure, METH_NOARGS, "Tests only."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef g_module = {
    PyModuleDef_HEAD_INIT, "_spyglass", "spyglass exact mode (C++ core)", -1, g_methods,
    nullptr, nullptr, nullptr, nullptr,
};

}  // namespace
}  // namespace spyglass::exact

// Spelled out: before 3.9, PyMODINIT_FUNC does not set default visibility, and the module is
// built with hidden visibility.
extern "C" __attribute__((visibility("default"))) PyObject* PyInit__spyglass() {
  PyObject* module = PyModule_Create(&spyglass::exact::g_module);
  if (module == nullptr) return nullptr;
  if (!spyglass::exact::tracer_initialize()) {
    Py_DECREF(module);
    return nullptr;
  }
  PyModule_AddIntConstant(module, "HAS_MONITORING", SPYGLASS_HAS_MONITORING);
  return module;
}
