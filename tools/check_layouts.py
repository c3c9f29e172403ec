#!/usr/bin/env python3
"""Checks spyglass's CPython layouts against the real headers of each CPython version.

For a version X.Y this compiles a tiny C program with `offsetof`/`sizeof` against that version's
own headers (-DPy_BUILD_CORE, its include dirs), runs it, and compares every number with what
spyglass says:

  * 3.8-3.12: the builtin table, printed by `spyglass_layout_dump --version X.Y`;
  * 3.13+:    the layout spyglass builds from the _Py_DebugOffsets of a real interpreter: the
              interpreter (given with --python) copies its own _PyRuntime bytes to a file and
              `spyglass_layout_dump --debug-offsets FILE ADDR` reads them like target memory.

Usage:
  tools/check_layouts.py --dumper BUILD/tools/spyglass_layout_dump --include DIR --version 3.12 \
      [--python python3.13]
  tools/check_layouts.py --print --include DIR --version 3.12   # just the header numbers
Exit status 0 when everything matches, 1 on a mismatch, 2 when it cannot check.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

# Layout key -> C expression, per minor version. Keys are the JSON names printed by
# spyglass_layout_dump. None: the field does not exist in that version (spyglass must say 0).
COMMON_OBJECTS = {
    "unicode.state": "offsetof(PyASCIIObject, state)",
    "unicode.length": "offsetof(PyASCIIObject, length)",
    "unicode.ascii_data": "sizeof(PyASCIIObject)",
    "unicode.compact_data": "sizeof(PyCompactUnicodeObject)",
    "bytes.size": "offsetof(PyBytesObject, ob_base.ob_size)",
    "bytes.data": "offsetof(PyBytesObject, ob_sval)",
    "ob_type": "offsetof(PyObject, ob_type)",
}

FRAME_OBJECT_ERA = {  # 3.8-3.10
    "runtime.size": "sizeof(_PyRuntimeState)",
    "runtime.interpreters_head": "offsetof(_PyRuntimeState, interpreters.head)",
    "runtime.gilstate_tstate_current": "offsetof(_PyRuntimeState, gilstate.tstate_current)",
    "runtime.ceval_gil_locked": "offsetof(_PyRuntimeState, ceval.gil.locked)",
    "interp.size": "sizeof(PyInterpreterState)",
    "interp.id": "offsetof(PyInterpreterState, id)",
    "interp.next": "offsetof(PyInterpreterState, next)",
    "interp.threads_head": "offsetof(PyInterpreterState, tstate_head)",
    "thread.size": "sizeof(PyThreadState)",
    "thread.prev": "offsetof(PyThreadState, prev)",
    "thread.next": "offsetof(PyThreadState, next)",
    "thread.interp": "offsetof(PyThreadState, interp)",
    "thread.frame": "offsetof(PyThreadState, frame)",
    "thread.thread_id": "offsetof(PyThreadState, thread_id)",
    "frame.size": "sizeof(PyFrameObject)",
    "frame.previous": "offsetof(PyFrameObject, f_back)",
    "frame.code": "offsetof(PyFrameObject, f_code)",
    "frame.lasti": "offsetof(PyFrameObject, f_lasti)",
    "frame.localsplus": "offsetof(PyFrameObject, f_localsplus)",
    "code.size": "sizeof(PyCodeObject)",
    "code.filename": "offsetof(PyCodeObject, co_filename)",
    "code.name": "offsetof(PyCodeObject, co_name)",
    "code.firstlineno": "offsetof(PyCodeObject, co_firstlineno)",
    "code.linetable": "offsetof(PyCodeObject, co_lnotab)",
    "code.flags": "offsetof(PyCodeObject, co_flags)",
    "frame.owner_generator": "-1",
    **COMMON_OBJECTS,
}

INTERPRETER_FRAME_ERA = {  # 3.11+
    "runtime.size": "sizeof(_PyRuntimeState)",
    "runtime.interpreters_head": "offsetof(_PyRuntimeState, interpreters.head)",
    "interp.size": "sizeof(PyInterpreterState)",
    "interp.id": "offsetof(PyInterpreterState, id)",
    "interp.next": "offsetof(PyInterpreterState, next)",
    "interp.threads_head": "offsetof(PyInterpreterState, threads.head)",
    "thread.size": "sizeof(PyThreadState)",
    "thread.prev": "offsetof(PyThreadState, prev)",
    "thread.next": "offsetof(PyThreadState, next)",
    "thread.interp": "offsetof(PyThreadState, interp)",
    "thread.thread_id": "offsetof(PyThreadState, thread_id)",
    "thread.native_thread_id": "offsetof(PyThreadState, native_thread_id)",
    "thread.datastack_chunk": "offsetof(PyThreadState, datastack_chunk)",
    "frame.size": "sizeof(_PyInterpreterFrame)",
    "frame.previous": "offsetof(_PyInterpreterFrame, previous)",
    "frame.owner": "offsetof(_PyInterpreterFrame, owner)",
    "frame.owner_generator": "FRAME_OWNED_BY_GENERATOR",
    "frame.localsplus": "offsetof(_PyInterpreterFrame, localsplus)",
    "code.size": "sizeof(PyCodeObject)",
    "code.filename": "offsetof(PyCodeObject, co_filename)",
    "code.name": "offsetof(PyCodeObject, co_name)",
    "code.qualname": "offsetof(PyCodeObject, co_qualname)",
    "code.firstlineno": "offsetof(PyCodeObject, co_firstlineno)",
    "code.linetable": "offsetof(PyCodeObject, co_linetable)",
    "code.code_adaptive": "offsetof(PyCodeObject, co_code_adaptive)",
    "chunk.previous": "offsetof(_PyStackChunk, previous)",
    "chunk.size": "offsetof(_PyStackChunk, size)",
    "chunk.top": "offsetof(_PyStackChunk, top)",
    "chunk.data": "offsetof(_PyStackChunk, data)",
    **COMMON_OBJECTS,
}

SPECS = {
    "3.8": {**FRAME_OBJECT_ERA, "frame.owner_cstack": "-1"},
    "3.9": {**FRAME_OBJECT_ERA, "frame.owner_cstack": "-1"},
    "3.10": {**FRAME_OBJECT_ERA, "frame.owner_cstack": "-1",
             "code.linetable": "offsetof(PyCodeObject, co_linetable)"},
    "3.11": {
        **INTERPRETER_FRAME_ERA,
        "runtime.gilstate_tstate_current": "offsetof(_PyRuntimeState, gilstate.tstate_current)",
        "runtime.ceval_gil_locked": "offsetof(_PyRuntimeState, ceval.gil.locked)",
        "thread.cframe": "offsetof(PyThreadState, cframe)",
        "thread.cframe_current_frame": "offsetof(_PyCFrame, current_frame)",
        "frame.code": "offsetof(_PyInterpreterFrame, f_code)",
        "frame.lasti": "offsetof(_PyInterpreterFrame, prev_instr)",
        "frame.owner_cstack": "-1",  # 3.11 marks entry frames with is_entry, not an owner
    },
    "3.12": {
        **INTERPRETER_FRAME_ERA,
        "interp.gil_pointer": "offsetof(PyInterpreterState, ceval.gil)",
        "interp.gil_locked": "offsetof(struct _gil_runtime_state, locked)",
        "interp.gil_holder": "offsetof(struct _gil_runtime_state, last_holder)",
        "thread.cframe": "offsetof(PyThreadState, cframe)",
        "thread.cframe_current_frame": "offsetof(_PyCFrame, current_frame)",
        "frame.code": "offsetof(_PyInterpreterFrame, f_code)",
        "frame.lasti": "offsetof(_PyInterpreterFrame, prev_instr)",
        "frame.owner_cstack": "FRAME_OWNED_BY_CSTACK",
    },
    "3.13": {
        **INTERPRETER_FRAME_ERA,
        "interp.gil_pointer": "offsetof(PyInterpreterState, ceval.gil)",
        "interp.gil_locked": "offsetof(struct _gil_runtime_state, locked)",
        "interp.gil_holder": "offsetof(struct _gil_runtime_state, last_holder)",
        "thread.frame": "offsetof(PyThreadState, current_frame)",
        "frame.code": "offsetof(_PyInterpreterFrame, f_executable)",
        "frame.lasti": "offsetof(_PyInterpreterFrame, instr_ptr)",
        "frame.owner_cstack": "FRAME_OWNED_BY_CSTACK",
        "debug_offsets_size": "sizeof(_Py_DebugOffsets)",
    },
    "3.14": {
        **INTERPRETER_FRAME_ERA,
        "interp.gil_pointer": "offsetof(PyInterpreterState, ceval.gil)",
        "interp.gil_locked": "offsetof(struct _gil_runtime_state, locked)",
        "interp.gil_holder": "offsetof(struct _gil_runtime_state, last_holder)",
        "thread.frame": "offsetof(PyThreadState, current_frame)",
        "frame.code": "offsetof(_PyInterpreterFrame, f_executable)",
        "frame.lasti": "offsetof(_PyInterpreterFrame, instr_ptr)",
        "frame.owner_cstack": "FRAME_OWNED_BY_CSTACK",
        "frame.owner_interpreter": "FRAME_OWNED_BY_INTERPRETER",
        "debug_offsets_size": "sizeof(_Py_DebugOffsets)",
    },
    "3.15": {
        **INTERPRETER_FRAME_ERA,
        "interp.gil_pointer": "offsetof(PyInterpreterState, ceval.gil)",
        "interp.gil_locked": "offsetof(struct _gil_runtime_state, locked)",
        "interp.gil_holder": "offsetof(struct _gil_runtime_state, last_holder)",
        "thread.frame": "offsetof(PyThreadState, current_frame)",
        "frame.code": "offsetof(_PyInterpreterFrame, f_executable)",
        "frame.lasti": "offsetof(_PyInterpreterFrame, instr_ptr)",
        "frame.owner_interpreter": "FRAME_OWNED_BY_INTERPRETER",
        "debug_offsets_size": "sizeof(_Py_DebugOffsets)",
    },
}

HEADERS = {
    "3.8": ["internal/pycore_pystate.h", "frameobject.h"],
    "3.9": ["internal/pycore_runtime.h", "internal/pycore_interp.h", "frameobject.h"],
    "3.10": ["internal/pycore_runtime.h", "internal/pycore_interp.h", "frameobject.h"],
    "3.11": ["internal/pycore_runtime.h", "internal/pycore_interp.h", "internal/pycore_frame.h"],
    "3.12": ["internal/pycore_runtime.h", "internal/pycore_interp.h", "internal/pycore_frame.h",
             "internal/pycore_gil.h"],
    "3.13": ["internal/pycore_runtime.h", "internal/pycore_interp.h", "internal/pycore_frame.h",
             "internal/pycore_gil.h"],
    "3.14": ["internal/pycore_runtime.h", "internal/pycore_interp.h",
             "internal/pycore_interpframe.h", "internal/pycore_gil.h",
             "internal/pycore_debug_offsets.h"],
    "3.15": ["internal/pycore_runtime.h", "internal/pycore_interp.h",
             "internal/pycore_interpframe.h", "internal/pycore_gil.h",
             "internal/pycore_debug_offsets.h"],
}

# Python program run by --python: copies its own _PyRuntime (the debug offsets come first) to
# a file and prints the address it was copied from.
COPY_RUNTIME = r"""
import ctypes, sys
runtime = ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime")
address = ctypes.addressof(runtime)
with open(sys.argv[1], "wb") as out:
    out.write(ctypes.string_at(address, int(sys.argv[2])))
print(address)
"""


def core_defines(python):
    """The -D flags the interpreter's own core was compiled with (PY_CORE_CFLAGS): some change
    struct sizes (Debian's 3.14+ builds with _Py_TIER2 and _Py_JIT)."""
    if python is None:
        return []
    asked = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_config_var('PY_CORE_CFLAGS') or '')"],
        capture_output=True, text=True)
    if asked.returncode != 0:
        raise RuntimeError(f"{python} did not say its PY_CORE_CFLAGS: {asked.stderr}")
    return sorted({flag for flag in asked.stdout.split()
                   if flag.startswith("-D") and not flag.startswith("-D_FORTIFY")})


def header_numbers(version, include_dir, include_extra, defines=()):
    """Compiles and runs the offsetof program; returns {key: number}."""
    spec = SPECS[version]
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler (cc) found")
    lines = ["#define Py_BUILD_CORE 1", "#include <Python.h>"]
    lines += [f'#include "{header}"' for header in HEADERS[version]]
    lines += ["#include <stddef.h>", "#include <stdio.h>", "int main(void) {", '  printf("{");']
    for index, (key, expression) in enumerate(sorted(spec.items())):
        comma = "," if index else ""
        lines.append(f'  printf("{comma}\\"{key}\\": %lld", (long long)({expression}));')
    lines += ['  printf("}\\n");', "  return 0;", "}"]
    with tempfile.TemporaryDirectory() as work:
        source = os.path.join(work, "offsets.c")
        program = os.path.join(work, "offsets")
        with open(source, "w") as out:
            out.write("\n".join(lines) + "\n")
        # The parent dir too: Debian's pyconfig.h includes <x86_64-linux-gnu/python3.X/...>.
        command = [compiler, "-std=gnu11", "-w", "-I", include_dir,
                   "-I", os.path.dirname(os.path.abspath(include_dir))]
        for extra in include_extra:
            command += ["-I", extra]
        command += list(defines)
        command += ["-o", program, source]
        built = subprocess.run(command, capture_output=True, text=True)
        if built.returncode != 0:
            raise RuntimeError(f"compiling against {include_dir} failed:\n{built.stderr[-3000:]}")
        ran = subprocess.run([program], capture_output=True, text=True, check=True)
        return json.loads(ran.stdout)


def spyglass_numbers(dumper, version, python):
    if python is None:
        out = subprocess.run([dumper, "--version", version], capture_output=True, text=True)
    else:
        with tempfile.TemporaryDirectory() as work:
            copy = os.path.join(work, "runtime.bin")
            # Enough for the largest table (3.14's is about 1 KiB); _PyRuntime is far larger.
            copied = subprocess.run([python, "-c", COPY_RUNTIME, copy, "4096"],
                                    capture_output=True, text=True)
            if copied.returncode != 0:
                raise RuntimeError(f"{python} could not copy its _PyRuntime: {copied.stderr}")
            address = copied.stdout.strip().splitlines()[-1]
            out = subprocess.run([dumper, "--debug-offsets", copy, address],
                                 capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{dumper} failed: {out.stdout}{out.stderr}")
    return json.loads(out.stdout)


def flatten(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, prefix + key + "."))
        else:
            flat[prefix + key] = value
    return flat


def compare(version, expected, actual):
    """Returns the list of mismatches; fields absent from `expected` must be 0 in `actual`."""
    problems = []
    for key, want in sorted(expected.items()):
        if key not in actual:
            problems.append(f"{version} {key}: headers say {want}, spyglass has no such field")
        elif actual[key] != want:
            problems.append(f"{version} {key}: headers say {want}, spyglass says {actual[key]}")
    optional = [key for key in actual if key not in expected and isinstance(actual[key], int)
                and not isinstance(actual[key], bool)]
    for key in optional:
        if key in ("ob_type",) or key.startswith("version"):
            continue
        if key.startswith("frame.owner_") and actual[key] == -1:
            continue
        if actual[key] != 0:
            problems.append(f"{version} {key}: absent from {version}'s headers, spyglass says "
                            f"{actual[key]} (should be 0)")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, choices=sorted(SPECS))
    parser.add_argument("--include", required=True, help="the version's include/python3.X dir")
    parser.add_argument("--include-extra", action="append", default=[],
                        help="more include dirs (e.g. the multiarch pyconfig.h dir)")
    parser.add_argument("--dumper", help="path of spyglass_layout_dump")
    parser.add_argument("--python", help="3.13+: the interpreter whose debug offsets to read")
    parser.add_argument("--print", action="store_true", help="print the header numbers only")
    args = parser.parse_args()
    try:
        expected = header_numbers(args.version, args.include, args.include_extra,
                                  core_defines(args.python))
        if args.print:
            print(json.dumps(expected, indent=1, sort_keys=True))
            return 0
        if args.dumper is None:
            parser.error("--dumper is needed unless --print")
        minor = int(args.version.split(".")[1])
        if minor >= 13 and args.python is None:
            parser.error("3.13+ layouts come from a live interpreter: pass --python")
        actual = flatten(spyglass_numbers(args.dumper, args.version,
                                          args.python if minor >= 13 else None))
    except (RuntimeError, subprocess.CalledProcessError, OSError, ValueError) as error:
        print(f"check_layouts: cannot check {args.version}: {error}", file=sys.stderr)
        return 2
    expected.pop("debug_offsets_size", None)
    problems = compare(args.version, expected, actual)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{args.version}: {len(problems)} mismatches")
        return 1
    print(f"{args.version}: all {len(expected)} offsets match the headers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
