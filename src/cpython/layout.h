// Where each CPython version keeps what spyglass reads: one flat table of offsets, the same
// shape for every version. Every version's knowledge comes from one spec, versions.toml, which
// tools/gen_layouts.py turns into layout_generated.cpp and tools/check_layouts.py checks against
// the real headers: 3.8-3.12 as tables of numbers, 3.13+ as the shape of the target's own
// _Py_DebugOffsets, read and validated (each offset with its width) before use.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace spyglass::process {
class MemoryReader;
}

namespace spyglass::cpython {

struct PythonVersion {
  int major = 0, minor = 0, micro = 0;
  uint64_t hex = 0;         // PY_VERSION_HEX when known (0xMMmmPPLS), else built from the numbers
  std::string str() const;  // "3.12.1"
  static PythonVersion from_hex(uint64_t hex);  // from PY_VERSION_HEX
  bool at_least(int maj, int min) const { return major > maj || (major == maj && minor >= min); }
};

// The supported range, from versions.toml (generated).
struct SupportedVersions {
  int oldest_minor;               // of CPython 3, included
  int newest_minor;               // included
  int first_debug_offsets_minor;  // the first whose _PyRuntime starts with _Py_DebugOffsets
};
extern const SupportedVersions kSupportedVersions;

// Throws Error(kUnsupported) with one line saying why, for a version outside the range; for a
// newer one, the line says what supporting it would take.
void check_supported(const PythonVersion& version);

// True for the versions whose layout comes from the target's _Py_DebugOffsets (3.13+).
bool reads_debug_offsets(const PythonVersion& version);

// How frames are stored.
enum class FrameModel {
  kFrameObject,       // 3.8-3.10: heap PyFrameObject linked by f_back
  kInterpreterFrame,  // 3.11+: _PyInterpreterFrame in per-thread data-stack chunks
};

// How a code object maps instruction offsets to lines.
enum class LineTableFormat {
  kLnotab,        // 3.8, 3.9: co_lnotab, byte offsets
  kLinetable310,  // 3.10: co_linetable (PEP 626), byte offsets
  kLocations,     // 3.11+: co_linetable location table, code-unit offsets
};

// 0 means "absent in this version" for every optional offset below.
struct Layout {
  PythonVersion version;
  FrameModel frame_model = FrameModel::kInterpreterFrame;
  LineTableFormat line_table = LineTableFormat::kLocations;
  bool free_threaded = false;

  struct Runtime {
    uint64_t size = 0;
    uint64_t interpreters_head = 0;
    uint64_t gilstate_tstate_current = 0;  // 3.8-3.11: atomic PyThreadState* of the GIL holder
    uint64_t ceval_gil_locked = 0;         // 3.8-3.11: _PyRuntime.ceval.gil.locked (int)
    // 3.8-3.11: the GIL's last holder (PyThreadState*) and how many times it changed hands
    // (unsigned long; see StackWalker::GilState).
    uint64_t ceval_gil_last_holder = 0;
    uint64_t ceval_gil_switch_number = 0;
    // 3.12: the counter that numbers new code objects is the static _Py_next_func_version
    // (found by symbol), not a field of the interpreter (see Interpreter::code_counter).
    bool code_counter_global = false;
  } runtime;

  struct Interpreter {
    uint64_t size = 0;
    uint64_t id = 0;
    uint64_t next = 0;
    uint64_t threads_head = 0;
    uint64_t gil_pointer = 0;  // 3.12+: ceval.gil, a pointer to _gil_runtime_state
    uint64_t gil_locked = 0;   // 3.12+: offset of `locked` inside _gil_runtime_state
    uint64_t gil_holder = 0;   // 3.12+: offset of `last_holder` inside _gil_runtime_state
    // 3.12+: offset of `switch_number` inside _gil_runtime_state (unsigned long).
    uint64_t gil_switch_number = 0;
    // 3.13+: `locked`'s offset in the headers gil_switch_number was transcribed from; the count
    // is read only where the target's gil_locked is the same.
    uint64_t gil_switch_number_locked = 0;
    // 3.13+: func_state.next_version, the counter that gives each new code object its
    // co_version (uint32; 0 once it has run out). While it stays put, no code object was made.
    uint64_t code_counter = 0;
    // 3.13+: sizeof(PyInterpreterState) in the headers code_counter was transcribed from; the
    // counter is read only where the target's own size is the same.
    uint64_t code_counter_interp_size = 0;
  } interp;

  struct Thread {
    uint64_t size = 0;
    uint64_t prev = 0;
    uint64_t next = 0;
    uint64_t interp = 0;
    uint64_t frame = 0;   // 3.8-3.10 `frame`; 3.13+ `current_frame`; 3.11-3.12: 0 (use cframe)
    uint64_t cframe = 0;  // 3.11-3.12: `cframe` pointer
    uint64_t cframe_current_frame = 0;  // 3.11-3.12: offset of current_frame in _PyCFrame
    // 3.11-3.12: the thread state's own _PyCFrame, which `cframe` points at while no Python
    // code runs (its current_frame is then NULL; anywhere else a NULL frame is a torn read).
    uint64_t root_cframe = 0;
    uint64_t thread_id = 0;         // pthread_t
    uint64_t native_thread_id = 0;  // 3.11+: the kernel TID
    uint64_t datastack_chunk = 0;   // 3.11+
    uint64_t datastack_top = 0;     // 3.11+: the data stack's first free word
  } thread;

  struct Frame {
    uint64_t size = 0;      // sizeof(PyFrameObject) or sizeof(_PyInterpreterFrame)
    uint64_t previous = 0;  // f_back (3.8-3.10) or previous
    uint64_t code = 0;      // f_code, or f_executable (3.13+)
    uint64_t lasti = 0;     // 3.8-3.10: f_lasti (int); 3.11-3.12 prev_instr; 3.13+ instr_ptr
    uint64_t owner = 0;     // 3.11+: `owner` (char)
    uint64_t localsplus = 0;
    bool code_is_tagged = false;  // 3.14+: f_executable is a _PyStackRef; clear the low bits
    bool instr_is_next = false;   // 3.13+: instr_ptr points at the next instruction, not the last
    int owner_cstack = -1;        // owner value of C-stack shim frames to skip (-1: none)
    int owner_interpreter = -1;   // 3.14+: FRAME_OWNED_BY_INTERPRETER, also skipped
    // 3.11+: FRAME_OWNED_BY_GENERATOR. A running generator's frame always has a caller; one
    // read with no caller was caught as it yielded (a torn read: the walker retries).
    int owner_generator = -1;
    // 3.8-3.10: f_executing (3.8, 3.9) or f_state (3.10), a char, and its value while the frame
    // runs or waits on a call (0: no such field). A freed frame keeps its f_back and f_code
    // (a code object's zombie frame, or the free list, linked through f_back): a walk that
    // reaches one read the chain while it changed.
    uint64_t executing = 0;
    int executing_state = 0;
  } frame;

  struct Code {
    uint64_t size = 0;
    uint64_t filename = 0;
    uint64_t name = 0;
    uint64_t qualname = 0;  // 3.11+
    uint64_t firstlineno = 0;
    uint64_t flags = 0;      // 3.8-3.10: co_flags, to tell generator frames (see owner_generator)
    uint64_t linetable = 0;  // co_lnotab (3.8, 3.9) or co_linetable
    uint64_t code_adaptive = 0;  // 3.11+: offset of the instructions inside the code object
    uint64_t framesize = 0;      // 3.12+: co_framesize, the words a frame of it takes
    uint64_t version = 0;        // 3.12+: co_version (uint32), from the code counter
    // 3.11: a frame takes co_nlocalsplus + co_stacksize + frame_specials words.
    uint64_t stacksize = 0;
    uint64_t nlocalsplus = 0;
    uint64_t frame_specials = 0;
    // 3.8-3.10 have no co_qualname: a method's class is found from its first argument, which
    // needs co_argcount and co_varnames.
    uint64_t argcount = 0;
    uint64_t varnames = 0;
  } code;

  struct Unicode {
    uint64_t state = 0;  // the bitfield word: kind bits 2-4, compact 5, ascii 6
    uint64_t length = 0;
    uint64_t ascii_data = 0;    // sizeof(PyASCIIObject): data of compact ASCII strings
    uint64_t compact_data = 0;  // sizeof(PyCompactUnicodeObject): data of other compact ones
  } unicode;

  struct Bytes {
    uint64_t size = 0;  // ob_size
    uint64_t data = 0;  // ob_sval
  } bytes;

  struct Chunk {  // _PyStackChunk (3.11+)
    uint64_t previous = 0;
    uint64_t size = 0;
    uint64_t top = 0;
    uint64_t data = 0;
  } chunk;

  // What async-aware sampling reads (cpython/tasks.cpp): asyncio's task registries, a task's
  // coroutine, and the chain of coroutines each suspended one awaits. 0: absent in the version
  // (3.14+: the task fields come from the `_asyncio` module's own AsyncioDebug table instead).
  struct Async {
    uint64_t interp_modules = 0;  // sys.modules: PyInterpreterState.modules (imports.modules)
    uint64_t module_dict = 0;     // PyModuleObject.md_dict
    // Generators and coroutines (PyGenObject, PyCoroObject share the head).
    uint64_t gen_frame = 0;        // 3.8-3.10: gi_frame, a PyFrameObject* (NULL once finished)
    uint64_t gen_running = 0;      // 3.8-3.9: gi_running (char)
    uint64_t gen_iframe = 0;       // 3.11+: gi_iframe, the embedded _PyInterpreterFrame
    uint64_t gen_frame_state = 0;  // 3.11+: gi_frame_state (int8)
    // The values of a suspended generator's state, first to last: 3.10 the frame's f_state
    // (Layout::frame.executing), 3.11+ gi_frame_state. 3.8-3.9 have no state (gi_running and
    // f_lasti tell).
    int gen_suspended_first = 0;
    int gen_suspended_last = 0;
    int gen_executing = 0;  // ... and of a running one (3.8-3.9: gi_running is 1)
    // The top of a suspended frame's value stack: what it awaits (`yield from` / `await`).
    uint64_t frame_stack_pointer = 0;  // 3.8-3.9 f_stacktop; 3.14+ stackpointer (a pointer)
    uint64_t frame_value_stack = 0;    // 3.10: f_valuestack (a pointer) ...
    uint64_t frame_stack_depth = 0;    // ... and f_stackdepth (int)
    uint64_t frame_stack_top = 0;      // 3.11-3.13: stacktop (int, slots after localsplus)
    bool stack_is_tagged = false;      // 3.14+: stack slots are _PyStackRef (clear low bits)
    // How far below the top the awaited object sits: 1 (the top), 2 from 3.15, where the
    // suspended frame keeps the value it yielded above it.
    int awaited_slot = 1;
    // _asyncio's C task (TaskObj, Modules/_asynciomodule.c), 3.8-3.13; 3.14+ read at run time.
    uint64_t task_size = 0;
    uint64_t task_coro = 0;
    uint64_t task_name = 0;
  } async;

  // Plain objects, for `dump --locals` and thread names (cpython/objects.cpp): the type slots
  // and dict fields it follows, and where a few scalar types keep their value.
  struct Objects {
    uint64_t type_basicsize = 0;         // PyTypeObject.tp_basicsize
    uint64_t type_flags = 0;             // PyTypeObject.tp_flags
    uint64_t type_dictoffset = 0;        // PyTypeObject.tp_dictoffset
    uint64_t heap_type_cached_keys = 0;  // PyHeapTypeObject.ht_cached_keys
    uint64_t var_size = 0;               // PyVarObject.ob_size
    uint64_t float_value = 0;            // PyFloatObject.ob_fval
    uint64_t long_digits = 0;            // PyLongObject's digits (3.12+: in long_value)
    uint64_t cell_ref = 0;               // PyCellObject.ob_ref
    uint64_t type_base = 0;              // PyTypeObject.tp_base
    uint64_t set_used = 0;               // PySetObject.used
    uint64_t set_mask = 0;               // PySetObject.mask
    uint64_t set_table = 0;              // PySetObject.table
    uint64_t set_entry_size = 0;         // sizeof(setentry)
    uint64_t weakref_object = 0;         // PyWeakReference.wr_object
    uint64_t list_items = 0;             // PyListObject.ob_item
    uint64_t dict_used = 0;              // PyDictObject.ma_used
    uint64_t dict_keys = 0;              // PyDictObject.ma_keys
    uint64_t dict_values = 0;            // PyDictObject.ma_values
    uint64_t code_localsplusnames = 0;   // 3.11+: PyCodeObject.co_localsplusnames
    uint64_t code_localspluskinds = 0;   // 3.11+: PyCodeObject.co_localspluskinds
  } objects;

  // 3.14+ (PEP 768): a remote debugger's script request, in every thread state. 0 before.
  struct Debugger {
    uint64_t eval_breaker = 0;      // PyThreadState.eval_breaker (uintptr_t)
    uint64_t support = 0;           // PyThreadState.remote_debugger_support
    uint64_t pending_call = 0;      // its debugger_pending_call (int32), inside `support`
    uint64_t script_path = 0;       // its debugger_script_path (char[]), inside `support`
    uint64_t script_path_size = 0;  // _Py_MAX_SCRIPT_PATH_SIZE
    uint64_t remote_debug = 0;      // PyInterpreterState.config.remote_debug (int)
    uint64_t please_stop_bit = 0;   // _PY_EVAL_PLEASE_STOP_BIT of eval_breaker
  } debugger;

  // Before 3.14: the interpreter's pending-call queue (Py_AddPendingCall), which the eval loop
  // runs at an eval-breaker check; `attach --exact` queues its request there
  // (src/cli/pending_call.cpp). `queue` is 0 from 3.14 (PEP 768 instead).
  struct PendingCalls {
    bool in_runtime = false;           // 3.8: queue and eval breaker in _PyRuntimeState
    uint64_t queue = 0;                // (runtime or interpreter).ceval.pending
    uint64_t eval_breaker = 0;         // (runtime or interpreter).ceval.eval_breaker, 3.8-3.12
    uint64_t thread_eval_breaker = 0;  // 3.13: PyThreadState.eval_breaker (uintptr_t)
    uint64_t calls_to_do_bit = 0;      // 3.13: _PY_CALLS_TO_DO_BIT of it
    bool mutex = false;                // 3.13: a PyMutex; before, a PyThread_type_lock (sem_t*)
    uint64_t lock = 0;                 // the queue's lock, inside the queue
    uint64_t calls_to_do = 0;          // 3.8-3.12: its request flag (int)
    uint64_t npending = 0;             // 3.13: calls queued (int32)
    uint64_t max = 0;                  // 3.13: the most it takes (int32)
    uint64_t calls = 0;                // the ring of {func, arg[, flags]}
    uint64_t call_size = 0;            // one entry of it
    uint64_t capacity = 0;             // entries in the ring
    uint64_t first = 0;                // the next to run (int)
    uint64_t last = 0;                 // where the next queued goes (int; 3.13's `next`)
    bool main_thread_only = false;     // 3.8-3.11: only the main thread runs the queue
  } pending;

  uint64_t ob_type = 8;
  uint64_t type_name = 24;    // PyTypeObject.tp_name (char*), every version
  uint64_t tuple_items = 24;  // PyTupleObject.ob_item, every version
};

// The layout of a supported version: the transcribed table (3.8-3.12) or the target's
// _Py_DebugOffsets at `runtime_addr` (3.13+). Throws like check_supported and
// layout_from_debug_offsets.
Layout layout_for(process::MemoryReader& memory, const PythonVersion& version,
                  uint64_t runtime_addr);

// The layout for a version with transcribed tables (3.8-3.12). nullopt for other versions.
std::optional<Layout> builtin_layout(const PythonVersion& version);

// Reads and validates the target's _Py_DebugOffsets at `runtime_addr` (3.13+). Throws
// Error(kUnsupported) naming the version when the table's shape is unknown, and
// Error(kCorrupt) when any offset fails validation.
Layout layout_from_debug_offsets(process::MemoryReader& memory, uint64_t runtime_addr);

// Every field of a layout the spec names, as "group.name" (or "ob_type") and its value, in the
// spec's order (generated): for tools/layout_dump and the tests.
struct LayoutField {
  const char* name;
  int64_t value;
};
std::vector<LayoutField> layout_fields(const Layout& layout);

// True when `bytes` start with the _Py_DebugOffsets cookie "xdebugpy".
bool has_debug_cookie(const void* bytes, size_t size);

}  // namespace spyglass::cpython
