// Layouts of CPython 3.13+ from the _Py_DebugOffsets table that starts _PyRuntime. The table's
// shape changes between minor versions, so each known minor has its own mirror struct; the
// table comes from the target's memory, so it is validated in full before any of it is used.
// What the table does not carry (stack chunks, compact unicode data, frame owner values, stack
// reference tags) is transcribed per version below and checked by tools/check_layouts.py.

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "cpython/layout.h"
#include "common/error.h"
#include "process/memory.h"

namespace spyglass::cpython {
namespace {

// The first three fields, the same in every version that has the table.
struct DebugHeader {
  char cookie[8];
  uint64_t version;  // PY_VERSION_HEX
  uint64_t free_threaded;
};
static_assert(sizeof(DebugHeader) == 24);

// 3.13: include/python3.13/internal/pycore_runtime.h, struct _Py_DebugOffsets.
struct DebugOffsets313 {
  DebugHeader header;
  struct {
    uint64_t size, finalizing, interpreters_head;
  } runtime_state;
  struct {
    uint64_t size, id, next, threads_head, gc, imports_modules, sysdict, builtins, ceval_gil,
        gil_runtime_state, gil_runtime_state_enabled, gil_runtime_state_locked,
        gil_runtime_state_holder;
  } interpreter_state;
  struct {
    uint64_t size, prev, next, interp, current_frame, thread_id, native_thread_id, datastack_chunk,
        status;
  } thread_state;
  struct {
    uint64_t size, previous, executable, instr_ptr, localsplus, owner;
  } interpreter_frame;
  struct {
    uint64_t size, filename, name, qualname, linetable, firstlineno, argcount, localsplusnames,
        localspluskinds, co_code_adaptive;
  } code_object;
  struct {
    uint64_t size, ob_type;
  } pyobject;
  struct {
    uint64_t size, tp_name, tp_repr, tp_flags;
  } type_object;
  struct {
    uint64_t size, ob_item, ob_size;
  } tuple_object;
  struct {
    uint64_t size, ob_item, ob_size;
  } list_object;
  struct {
    uint64_t size, ma_keys, ma_values;
  } dict_object;
  struct {
    uint64_t size, ob_fval;
  } float_object;
  struct {
    uint64_t size, lv_tag, ob_digit;
  } long_object;
  struct {
    uint64_t size, ob_size, ob_sval;
  } bytes_object;
  struct {
    uint64_t size, state, length, asciiobject_size;
  } unicode_object;
  struct {
    uint64_t size, collecting;
  } gc;
};
static_assert(sizeof(DebugOffsets313) == 584);  // sizeof(_Py_DebugOffsets) in 3.13

// 3.14: include/python3.14/internal/pycore_debug_offsets.h, struct _Py_DebugOffsets.
struct DebugOffsets314 {
  DebugHeader header;
  struct {
    uint64_t size, finalizing, interpreters_head;
  } runtime_state;
  struct {
    uint64_t size, id, next, threads_head, threads_main, gc, imports_modules, sysdict, builtins,
        ceval_gil, gil_runtime_state, gil_runtime_state_enabled, gil_runtime_state_locked,
        gil_runtime_state_holder, code_object_generation, tlbc_generation;
  } interpreter_state;
  struct {
    uint64_t size, prev, next, interp, current_frame, thread_id, native_thread_id, datastack_chunk,
        status;
  } thread_state;
  struct {
    uint64_t size, previous, executable, instr_ptr, localsplus, owner, stackpointer, tlbc_index;
  } interpreter_frame;
  struct {
    uint64_t size, filename, name, qualname, linetable, firstlineno, argcount, localsplusnames,
        localspluskinds, co_code_adaptive, co_tlbc;
  } code_object;
  struct {
    uint64_t size, ob_type;
  } pyobject;
  struct {
    uint64_t size, tp_name, tp_repr, tp_flags;
  } type_object;
  struct {
    uint64_t size, ob_item, ob_size;
  } tuple_object;
  struct {
    uint64_t size, ob_item, ob_size;
  } list_object;
  struct {
    uint64_t size, used, table, mask;
  } set_object;
  struct {
    uint64_t size, ma_keys, ma_values;
  } dict_object;
  struct {
    uint64_t size, ob_fval;
  } float_object;
  struct {
    uint64_t size, lv_tag, ob_digit;
  } long_object;
  struct {
    uint64_t size, ob_size, ob_sval;
  } bytes_object;
  struct {
    uint64_t size, state, length, asciiobject_size;
  } unicode_object;
  struct {
    uint64_t size, collecting;
  } gc;
  struct {
    uint64_t size, gi_name, gi_iframe, gi_frame_state;
  } gen_object;
  struct {
    uint64_t next, prev;
  } llist_node;
  struct {
    uint64_t eval_breaker, remote_debugger_support, remote_debugging_enabled, debugger_pending_call,
        debugger_script_path, debugger_script_path_size;
  } debugger_support;
};
static_assert(sizeof(DebugOffsets314) == 760);  // sizeof(_Py_DebugOffsets) in 3.14

// Bounds for the declared struct sizes: the interpreter and runtime states hold large arrays
// (195 KiB and 277 KiB in 3.13); every other struct spyglass reads is well under 64 KiB.
constexpr uint64_t kMaxStateSize = 16ULL << 20;
constexpr uint64_t kMaxObjectSize = 64ULL << 10;

// Collects validation failures of one table so the error names the first bad field.
class Validator {
 public:
  explicit Validator(const PythonVersion& version) : version_(version) {}

  void size(std::string_view name, uint64_t value, uint64_t limit) {
    if (value == 0 || value > limit) fail(fmt::format("{} size {}", name, value));
  }
  // Offsets of fields that exist: inside the struct (and not on its first byte unless allowed).
  void inside(std::string_view name, uint64_t struct_size,
              std::initializer_list<uint64_t> offsets) {
    for (uint64_t offset : offsets) {
      if (offset >= struct_size) {
        fail(fmt::format("{} offset {} outside its size {}", name, offset, struct_size));
      }
    }
  }
  void fail(const std::string& what) {
    throw Error(ErrorKind::kCorrupt,
                fmt::format("the debug offsets of CPython {} do not check out ({}); the "
                            "process memory may be corrupt",
                            version_.str(), what));
  }

 private:
  const PythonVersion& version_;
};

// Fields with the same name and meaning in 3.13 and 3.14.
template <typename Table>
void map_common(const Table& t, const PythonVersion& version, Layout& l) {
  Validator check(version);
  const auto& rs = t.runtime_state;
  const auto& is = t.interpreter_state;
  const auto& ts = t.thread_state;
  const auto& fr = t.interpreter_frame;
  const auto& co = t.code_object;
  const auto& uo = t.unicode_object;
  const auto& bo = t.bytes_object;

  check.size("runtime state", rs.size, kMaxStateSize);
  check.size("interpreter state", is.size, kMaxStateSize);
  check.size("thread state", ts.size, kMaxObjectSize);
  check.size("interpreter frame", fr.size, kMaxObjectSize);
  check.size("code object", co.size, kMaxObjectSize);
  check.size("unicode object", uo.size, kMaxObjectSize);
  check.size("bytes object", bo.size, kMaxObjectSize);
  check.size("PyObject", t.pyobject.size, kMaxObjectSize);
  check.inside("runtime state", rs.size, {rs.interpreters_head});
  check.inside("interpreter state", is.size,
               {is.id, is.next, is.threads_head, is.ceval_gil, is.gil_runtime_state,
                is.gil_runtime_state_locked, is.gil_runtime_state_holder});
  check.inside("thread state", ts.size,
               {ts.prev, ts.next, ts.interp, ts.current_frame, ts.thread_id, ts.native_thread_id,
                ts.datastack_chunk});
  check.inside("interpreter frame", fr.size,
               {fr.previous, fr.executable, fr.instr_ptr, fr.localsplus, fr.owner});
  check.inside(
      "code object", co.size,
      {co.filename, co.name, co.qualname, co.linetable, co.firstlineno, co.co_code_adaptive});
  check.inside("unicode object", uo.size, {uo.state, uo.length});
  check.inside("bytes object", bo.size, {bo.ob_size, bo.ob_sval});
  check.inside("PyObject", t.pyobject.size, {t.pyobject.ob_type});
  // The interpreter's own GIL (_gil) holds `locked` and `last_holder`; ceval.gil points to it
  // (or to the main interpreter's, which has the same layout).
  const uint64_t gil = is.gil_runtime_state;
  if (is.gil_runtime_state_locked < gil || is.gil_runtime_state_holder < gil ||
      is.gil_runtime_state_locked - gil >= kMaxObjectSize ||
      is.gil_runtime_state_holder - gil >= kMaxObjectSize) {
    check.fail("GIL offsets outside the interpreter's _gil");
  }
  if (uo.asciiobject_size == 0 || uo.asciiobject_size > uo.size) {
    check.fail(fmt::format("unicode asciiobject_size {}", uo.asciiobject_size));
  }

  l.runtime.size = rs.size;
  l.runtime.interpreters_head = rs.interpreters_head;
  l.interp.size = is.size;
  l.interp.id = is.id;
  l.interp.next = is.next;
  l.interp.threads_head = is.threads_head;
  l.interp.gil_pointer = is.ceval_gil;
  l.interp.gil_locked = is.gil_runtime_state_locked - gil;
  l.interp.gil_holder = is.gil_runtime_state_holder - gil;
  l.thread.size = ts.size;
  l.thread.prev = ts.prev;
  l.thread.next = ts.next;
  l.thread.interp = ts.interp;
  l.thread.frame = ts.current_frame;
  l.thread.thread_id = ts.thread_id;
  l.thread.native_thread_id = ts.native_thread_id;
  l.thread.datastack_chunk = ts.datastack_chunk;
  l.frame.size = fr.size;
  l.frame.previous = fr.previous;
  l.frame.code = fr.executable;
  l.frame.lasti = fr.instr_ptr;
  l.frame.owner = fr.owner;
  l.frame.localsplus = fr.localsplus;
  l.frame.instr_is_next = true;
  l.code.size = co.size;
  l.code.filename = co.filename;
  l.code.name = co.name;
  l.code.qualname = co.qualname;
  l.code.firstlineno = co.firstlineno;
  l.code.linetable = co.linetable;
  l.code.code_adaptive = co.co_code_adaptive;
  l.unicode.state = uo.state;
  l.unicode.length = uo.length;
  l.unicode.ascii_data = uo.asciiobject_size;
  l.bytes.size = bo.ob_size;
  l.bytes.data = bo.ob_sval;
  l.ob_type = t.pyobject.ob_type;
}

// _PyStackChunk (cpython/pystate.h), unchanged since 3.11 and absent from the debug offsets.
void set_stack_chunk(Layout& l) {
  l.chunk.previous = 0;  // _PyStackChunk.previous
  l.chunk.size = 8;      // _PyStackChunk.size
  l.chunk.top = 16;      // _PyStackChunk.top
  l.chunk.data = 24;     // _PyStackChunk.data
}

template <typename Table>
Table read_table(process::MemoryReader& memory, uint64_t runtime_addr,
                 const PythonVersion& version) {
  Table table;
  if (!memory.read(runtime_addr, &table, sizeof(table))) {
    throw Error(ErrorKind::kCorrupt,
                fmt::format("cannot read the debug offsets of CPython {} at {:#x}", version.str(),
                            runtime_addr));
  }
  return table;
}

}  // namespace

Layout layout_from_debug_offsets(process::MemoryReader& memory, uint64_t runtime_addr) {
  DebugHeader header;
  if (!memory.read(runtime_addr, &header, sizeof(header))) {
    throw Error(ErrorKind::kCorrupt,
                fmt::format("cannot read _PyRuntime at {:#x} (its debug offsets)", runtime_addr));
  }
  if (!has_debug_cookie(header.cookie, sizeof(header.cookie))) {
    throw Error(ErrorKind::kCorrupt,
                fmt::format("_PyRuntime at {:#x} does not start with the debug cookie "
                            "\"xdebugpy\"",
                            runtime_addr));
  }
  const PythonVersion version = PythonVersion::from_hex(header.version);
  if (version.major != 3 || version.minor < 13) {
    throw Error(ErrorKind::kCorrupt,
                fmt::format("the debug offsets at {:#x} name version {:#x}, not CPython 3.13+",
                            runtime_addr, header.version));
  }
  if (version.minor > 14) {
    throw Error(
        ErrorKind::kUnsupported,
        fmt::format("CPython {} is not supported (spyglass supports 3.8 to 3.14)", version.str()));
  }
  if (header.free_threaded != 0) {
    throw Error(ErrorKind::kUnsupported,
                fmt::format("free-threaded CPython {}.{}t is not supported yet", version.major,
                            version.minor));
  }

  Layout l;
  l.version = version;
  l.frame_model = FrameModel::kInterpreterFrame;
  l.line_table = LineTableFormat::kLocations;
  l.free_threaded = false;
  set_stack_chunk(l);
  if (version.minor == 13) {
    const auto table = read_table<DebugOffsets313>(memory, runtime_addr, version);
    map_common(table, version, l);
    // Transcribed from 3.13's headers (not in the table):
    l.unicode.compact_data = 56;     // sizeof(PyCompactUnicodeObject)
    l.frame.owner_cstack = 3;        // FRAME_OWNED_BY_CSTACK (internal/pycore_frame.h)
    l.frame.owner_generator = 1;     // FRAME_OWNED_BY_GENERATOR
    l.frame.code_is_tagged = false;  // f_executable is a plain PyObject*
  } else {
    const auto table = read_table<DebugOffsets314>(memory, runtime_addr, version);
    map_common(table, version, l);
    // Transcribed from 3.14's headers (not in the table):
    l.unicode.compact_data = 56;    // sizeof(PyCompactUnicodeObject)
    l.frame.owner_interpreter = 3;  // FRAME_OWNED_BY_INTERPRETER (pycore_interpframe_structs.h)
    l.frame.owner_cstack = 4;       // FRAME_OWNED_BY_CSTACK
    l.frame.owner_generator = 1;    // FRAME_OWNED_BY_GENERATOR
    l.frame.code_is_tagged = true;  // f_executable is a _PyStackRef: clear Py_TAG_BITS (3)
  }
  return l;
}

}  // namespace spyglass::cpython
