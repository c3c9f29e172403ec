// The offsets of CPython 3.8 to 3.12, transcribed from each version's internal headers for
// x86_64 release (non-debug, GIL) builds. Every number here is checked against the real headers
// by tools/check_layouts.py (tests/integration/test_layouts.py runs it for each installed
// version). Headers: internal/pycore_runtime.h (_PyRuntimeState), internal/pycore_interp.h
// (PyInterpreterState), cpython/pystate.h (PyThreadState, _PyCFrame, _PyStackChunk),
// frameobject.h / internal/pycore_frame.h, cpython/code.h, cpython/unicodeobject.h,
// cpython/bytesobject.h, internal/pycore_gil.h, internal/pycore_ceval_state.h.
//
// The fields spyglass reads sit near the start of their structs and did not move between patch
// releases; the struct sizes (runtime, interpreter) are those of the patch release named.

#include "cpython/layout.h"

namespace spyglass::cpython {
namespace {

// PyASCIIObject / PyCompactUnicodeObject up to 3.11 (with the wstr fields) and PyBytesObject.
void set_objects_38_to_311(Layout& l) {
  l.unicode.state = 32;         // PyASCIIObject.state (interned:2 kind:3 compact:1 ascii:1 ready:1)
  l.unicode.length = 16;        // PyASCIIObject.length
  l.unicode.ascii_data = 48;    // sizeof(PyASCIIObject)
  l.unicode.compact_data = 72;  // sizeof(PyCompactUnicodeObject)
  l.bytes.size = 16;            // PyBytesObject.ob_base.ob_size
  l.bytes.data = 32;            // PyBytesObject.ob_sval
  l.ob_type = 8;                // PyObject.ob_type
}

// ---------------------------------------------------------------------------------------------
// 3.8 (3.8.18): runtime and interpreter in internal/pycore_pystate.h, frames in frameobject.h.
Layout layout_38() {
  Layout l;
  l.frame_model = FrameModel::kFrameObject;
  l.line_table = LineTableFormat::kLnotab;
  l.runtime.size = 1464;                     // sizeof(_PyRuntimeState)
  l.runtime.interpreters_head = 32;          // _PyRuntimeState.interpreters.head
  l.runtime.gilstate_tstate_current = 1368;  // _PyRuntimeState.gilstate.tstate_current
  l.runtime.ceval_gil_locked = 1168;         // _PyRuntimeState.ceval.gil.locked
  l.interp.size = 2720;                      // sizeof(PyInterpreterState)
  l.interp.next = 0;                         // PyInterpreterState.next
  l.interp.threads_head = 8;                 // PyInterpreterState.tstate_head
  l.interp.id = 16;                          // PyInterpreterState.id
  l.thread.size = 264;                       // sizeof(PyThreadState)
  l.thread.prev = 0;                         // PyThreadState.prev
  l.thread.next = 8;                         // PyThreadState.next
  l.thread.interp = 16;                      // PyThreadState.interp
  l.thread.frame = 24;                       // PyThreadState.frame
  l.thread.thread_id = 176;                  // PyThreadState.thread_id
  l.frame.size = 368;                        // sizeof(PyFrameObject)
  l.frame.previous = 24;                     // PyFrameObject.f_back
  l.frame.code = 32;                         // PyFrameObject.f_code
  l.frame.lasti = 104;                       // PyFrameObject.f_lasti (int, bytes)
  l.frame.localsplus = 360;                  // PyFrameObject.f_localsplus
  l.code.size = 176;                         // sizeof(PyCodeObject)
  l.code.firstlineno = 40;                   // PyCodeObject.co_firstlineno
  l.code.flags = 36;                         // PyCodeObject.co_flags
  l.code.argcount = 16;                      // PyCodeObject.co_argcount
  l.code.varnames = 72;                      // PyCodeObject.co_varnames
  l.code.filename = 104;                     // PyCodeObject.co_filename
  l.code.name = 112;                         // PyCodeObject.co_name
  l.code.linetable = 120;                    // PyCodeObject.co_lnotab
  set_objects_38_to_311(l);
  return l;
}

// ---------------------------------------------------------------------------------------------
// 3.9 (3.9.18): internal/pycore_runtime.h, internal/pycore_interp.h, cpython/frameobject.h.
Layout layout_39() {
  Layout l;
  l.frame_model = FrameModel::kFrameObject;
  l.line_table = LineTableFormat::kLnotab;
  l.runtime.size = 656;                     // sizeof(_PyRuntimeState)
  l.runtime.interpreters_head = 32;         // _PyRuntimeState.interpreters.head
  l.runtime.gilstate_tstate_current = 568;  // _PyRuntimeState.gilstate.tstate_current
  l.runtime.ceval_gil_locked = 368;         // _PyRuntimeState.ceval.gil.locked
  l.interp.size = 5656;                     // sizeof(PyInterpreterState)
  l.interp.next = 0;                        // PyInterpreterState.next
  l.interp.threads_head = 8;                // PyInterpreterState.tstate_head
  l.interp.id = 24;                         // PyInterpreterState.id
  l.thread.size = 264;                      // sizeof(PyThreadState)
  l.thread.prev = 0;                        // PyThreadState.prev
  l.thread.next = 8;                        // PyThreadState.next
  l.thread.interp = 16;                     // PyThreadState.interp
  l.thread.frame = 24;                      // PyThreadState.frame
  l.thread.thread_id = 176;                 // PyThreadState.thread_id
  l.frame.size = 368;                       // sizeof(PyFrameObject)
  l.frame.previous = 24;                    // PyFrameObject.f_back
  l.frame.code = 32;                        // PyFrameObject.f_code
  l.frame.lasti = 104;                      // PyFrameObject.f_lasti (int, bytes)
  l.frame.localsplus = 360;                 // PyFrameObject.f_localsplus
  l.code.size = 176;                        // sizeof(PyCodeObject)
  l.code.firstlineno = 40;                  // PyCodeObject.co_firstlineno
  l.code.flags = 36;                        // PyCodeObject.co_flags
  l.code.argcount = 16;                     // PyCodeObject.co_argcount
  l.code.varnames = 72;                     // PyCodeObject.co_varnames
  l.code.filename = 104;                    // PyCodeObject.co_filename
  l.code.name = 112;                        // PyCodeObject.co_name
  l.code.linetable = 120;                   // PyCodeObject.co_lnotab
  set_objects_38_to_311(l);
  return l;
}

// ---------------------------------------------------------------------------------------------
// 3.10 (3.10.13): same files as 3.9. f_lasti counts code units (2-byte words) from 3.10 on;
// the walker doubles it for the byte-offset 3.10 line table.
Layout layout_310() {
  Layout l;
  l.frame_model = FrameModel::kFrameObject;
  l.line_table = LineTableFormat::kLinetable310;
  l.runtime.size = 672;                     // sizeof(_PyRuntimeState)
  l.runtime.interpreters_head = 32;         // _PyRuntimeState.interpreters.head
  l.runtime.gilstate_tstate_current = 568;  // _PyRuntimeState.gilstate.tstate_current
  l.runtime.ceval_gil_locked = 368;         // _PyRuntimeState.ceval.gil.locked
  l.interp.size = 113528;                   // sizeof(PyInterpreterState)
  l.interp.next = 0;                        // PyInterpreterState.next
  l.interp.threads_head = 8;                // PyInterpreterState.tstate_head
  l.interp.id = 24;                         // PyInterpreterState.id
  l.thread.size = 280;                      // sizeof(PyThreadState)
  l.thread.prev = 0;                        // PyThreadState.prev
  l.thread.next = 8;                        // PyThreadState.next
  l.thread.interp = 16;                     // PyThreadState.interp
  l.thread.frame = 24;                      // PyThreadState.frame
  l.thread.thread_id = 176;                 // PyThreadState.thread_id
  l.frame.size = 360;                       // sizeof(PyFrameObject)
  l.frame.previous = 24;                    // PyFrameObject.f_back
  l.frame.code = 32;                        // PyFrameObject.f_code
  l.frame.lasti = 96;                       // PyFrameObject.f_lasti (int, code units)
  l.frame.localsplus = 352;                 // PyFrameObject.f_localsplus
  l.code.size = 176;                        // sizeof(PyCodeObject)
  l.code.firstlineno = 40;                  // PyCodeObject.co_firstlineno
  l.code.flags = 36;                        // PyCodeObject.co_flags
  l.code.argcount = 16;                     // PyCodeObject.co_argcount
  l.code.varnames = 72;                     // PyCodeObject.co_varnames
  l.code.filename = 104;                    // PyCodeObject.co_filename
  l.code.name = 112;                        // PyCodeObject.co_name
  l.code.linetable = 120;                   // PyCodeObject.co_linetable
  set_objects_38_to_311(l);
  return l;
}

// ---------------------------------------------------------------------------------------------
// 3.11 (3.11.7): _PyInterpreterFrame in internal/pycore_frame.h, reached through
// tstate->cframe->current_frame. No C-stack shim frames (entry frames carry is_entry instead).
Layout layout_311() {
  Layout l;
  l.frame_model = FrameModel::kInterpreterFrame;
  l.line_table = LineTableFormat::kLocations;
  l.runtime.size = 166688;                  // sizeof(_PyRuntimeState)
  l.runtime.interpreters_head = 40;         // _PyRuntimeState.interpreters.head
  l.runtime.gilstate_tstate_current = 576;  // _PyRuntimeState.gilstate.tstate_current
  l.runtime.ceval_gil_locked = 376;         // _PyRuntimeState.ceval.gil.locked
  l.interp.size = 107752;                   // sizeof(PyInterpreterState)
  l.interp.next = 0;                        // PyInterpreterState.next
  l.interp.threads_head = 16;               // PyInterpreterState.threads.head
  l.interp.id = 48;                         // PyInterpreterState.id
  l.thread.size = 360;                      // sizeof(PyThreadState)
  l.thread.prev = 0;                        // PyThreadState.prev
  l.thread.next = 8;                        // PyThreadState.next
  l.thread.interp = 16;                     // PyThreadState.interp
  l.thread.cframe = 56;                     // PyThreadState.cframe
  l.thread.cframe_current_frame = 8;        // _PyCFrame.current_frame
  l.thread.root_cframe = 336;               // PyThreadState.root_cframe
  l.thread.thread_id = 152;                 // PyThreadState.thread_id
  l.thread.native_thread_id = 160;          // PyThreadState.native_thread_id
  l.thread.datastack_chunk = 296;           // PyThreadState.datastack_chunk
  l.frame.size = 80;                        // sizeof(_PyInterpreterFrame)
  l.frame.code = 32;                        // _PyInterpreterFrame.f_code
  l.frame.previous = 48;                    // _PyInterpreterFrame.previous
  l.frame.lasti = 56;                       // _PyInterpreterFrame.prev_instr
  l.frame.owner = 69;                       // _PyInterpreterFrame.owner (char)
  l.frame.localsplus = 72;                  // _PyInterpreterFrame.localsplus
  l.frame.owner_cstack = -1;                // no FRAME_OWNED_BY_CSTACK in 3.11
  l.frame.owner_generator = 1;              // FRAME_OWNED_BY_GENERATOR
  l.code.size = 192;                        // sizeof(PyCodeObject) without co_code_adaptive
  l.code.firstlineno = 72;                  // PyCodeObject.co_firstlineno
  l.code.filename = 112;                    // PyCodeObject.co_filename
  l.code.name = 120;                        // PyCodeObject.co_name
  l.code.qualname = 128;                    // PyCodeObject.co_qualname
  l.code.linetable = 136;                   // PyCodeObject.co_linetable
  l.code.code_adaptive = 184;               // PyCodeObject.co_code_adaptive
  l.chunk.previous = 0;                     // _PyStackChunk.previous
  l.chunk.size = 8;                         // _PyStackChunk.size
  l.chunk.top = 16;                         // _PyStackChunk.top
  l.chunk.data = 24;                        // _PyStackChunk.data
  set_objects_38_to_311(l);
  return l;
}

// ---------------------------------------------------------------------------------------------
// 3.12 (3.12.1): the GIL moved into the interpreter (interp->ceval.gil points to a
// _gil_runtime_state, internal/pycore_gil.h); PyASCIIObject lost its wstr field.
Layout layout_312() {
  Layout l;
  l.frame_model = FrameModel::kInterpreterFrame;
  l.line_table = LineTableFormat::kLocations;
  l.runtime.size = 459944;            // sizeof(_PyRuntimeState)
  l.runtime.interpreters_head = 40;   // _PyRuntimeState.interpreters.head
  l.interp.size = 383552;             // sizeof(PyInterpreterState)
  l.interp.next = 0;                  // PyInterpreterState.next
  l.interp.id = 8;                    // PyInterpreterState.id
  l.interp.threads_head = 72;         // PyInterpreterState.threads.head
  l.interp.gil_pointer = 384;         // PyInterpreterState.ceval.gil
  l.interp.gil_holder = 8;            // _gil_runtime_state.last_holder
  l.interp.gil_locked = 16;           // _gil_runtime_state.locked
  l.thread.size = 288;                // sizeof(PyThreadState)
  l.thread.prev = 0;                  // PyThreadState.prev
  l.thread.next = 8;                  // PyThreadState.next
  l.thread.interp = 16;               // PyThreadState.interp
  l.thread.cframe = 56;               // PyThreadState.cframe
  l.thread.cframe_current_frame = 0;  // _PyCFrame.current_frame
  l.thread.root_cframe = 272;         // PyThreadState.root_cframe
  l.thread.thread_id = 136;           // PyThreadState.thread_id
  l.thread.native_thread_id = 144;    // PyThreadState.native_thread_id
  l.thread.datastack_chunk = 232;     // PyThreadState.datastack_chunk
  l.frame.size = 80;                  // sizeof(_PyInterpreterFrame)
  l.frame.code = 0;                   // _PyInterpreterFrame.f_code
  l.frame.previous = 8;               // _PyInterpreterFrame.previous
  l.frame.lasti = 56;                 // _PyInterpreterFrame.prev_instr
  l.frame.owner = 70;                 // _PyInterpreterFrame.owner (char)
  l.frame.localsplus = 72;            // _PyInterpreterFrame.localsplus
  l.frame.owner_cstack = 3;           // FRAME_OWNED_BY_CSTACK
  l.frame.owner_generator = 1;        // FRAME_OWNED_BY_GENERATOR
  l.code.size = 200;                  // sizeof(PyCodeObject) without co_code_adaptive
  l.code.firstlineno = 68;            // PyCodeObject.co_firstlineno
  l.code.filename = 112;              // PyCodeObject.co_filename
  l.code.name = 120;                  // PyCodeObject.co_name
  l.code.qualname = 128;              // PyCodeObject.co_qualname
  l.code.linetable = 136;             // PyCodeObject.co_linetable
  l.code.code_adaptive = 192;         // PyCodeObject.co_code_adaptive
  l.chunk.previous = 0;               // _PyStackChunk.previous
  l.chunk.size = 8;                   // _PyStackChunk.size
  l.chunk.top = 16;                   // _PyStackChunk.top
  l.chunk.data = 24;                  // _PyStackChunk.data
  l.unicode.state = 32;         // PyASCIIObject.state (interned:2 kind:3 compact:1 ascii:1 ...)
  l.unicode.length = 16;        // PyASCIIObject.length
  l.unicode.ascii_data = 40;    // sizeof(PyASCIIObject)
  l.unicode.compact_data = 56;  // sizeof(PyCompactUnicodeObject)
  l.bytes.size = 16;            // PyBytesObject.ob_base.ob_size
  l.bytes.data = 32;            // PyBytesObject.ob_sval
  l.ob_type = 8;                // PyObject.ob_type
  return l;
}

}  // namespace

std::optional<Layout> builtin_layout(const PythonVersion& version) {
  if (version.major != 3) return std::nullopt;
  Layout layout;
  switch (version.minor) {
    case 8:
      layout = layout_38();
      break;
    case 9:
      layout = layout_39();
      break;
    case 10:
      layout = layout_310();
      break;
    case 11:
      layout = layout_311();
      break;
    case 12:
      layout = layout_312();
      break;
    default:
      return std::nullopt;
  }
  layout.version = version;
  return layout;
}

}  // namespace spyglass::cpython
