#!/usr/bin/env python3
"""Checks spyglass's CPython layouts (src/cpython/versions.toml) against the real headers.

For a version X.Y this compiles a tiny C program with `offsetof`/`sizeof` against that version's
own headers (-DPy_BUILD_CORE, its include dirs, the -D flags its core was built with), runs it,
and compares with what spyglass says:

  * every field whose spec gives a C expression: the headers' number against spyglass's
    layout (for 3.8-3.12 the generated table, printed by `spyglass_layout_dump --version X.Y`;
    for 3.13+ the layout spyglass builds from the _Py_DebugOffsets of a live interpreter, given
    with --python, which copies its own _PyRuntime bytes to a file for
    `spyglass_layout_dump --debug-offsets FILE ADDR` to read like target memory);
  * every offset's width: sizeof of the member against the spec's `width`;
  * 3.13+: the shape of _Py_DebugOffsets: the offset of every word the spec lists, and the
    table's size;
  * fields the spec leaves out of a version: spyglass must say 0 (-1 for frame.owner_*).

Usage:
  tools/check_layouts.py --dumper BUILD/tools/layout_dump/spyglass_layout_dump \
      --include DIR --version 3.12 [--python python3.13]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cpython_spec  # noqa: E402

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


# Python program run by --python for the fields no installed header gives (their spec says
# `why`): it finds each in a live object of that interpreter and prints {field: number}.
#   async.module_dict  PyModuleObject.md_dict (Objects/moduleobject.c before 3.10): the word
#                      of the `sys` module that points at sys.__dict__;
#   async.task_*       _asyncio's TaskObj (Modules/_asynciomodule.c, never in a header): the
#                      words of a fresh _asyncio.Task that point at its coroutine and its name,
#                      and its size, _asyncio.Task.__basicsize__. The basic size is sizeof(TaskObj):
#                      the GC header lies before the object and is not counted; up to 3.12 the
#                      instance dict and weak-reference list are members of TaskObj (counted,
#                      and they are in the struct); from 3.13 they are managed (Py_TPFLAGS_
#                      MANAGED_DICT / MANAGED_WEAKREF, stored before the object, not counted).
# Each offset is where the one aligned word holding the pointer is; none or several is an error.
PROBE = r"""
import asyncio, ctypes, json, sys

def words_pointing_at(obj, target):
    size = type(obj).__basicsize__
    raw = ctypes.string_at(id(obj), size)
    want = id(target).to_bytes(8, sys.byteorder)
    return [at for at in range(0, size - 7, 8) if raw[at:at + 8] == want]

def one(found, what):
    if len(found) != 1:
        raise SystemExit("probe: %d words point at %s: %s" % (len(found), what, found))
    return found[0]

wanted = sys.argv[1].split(",")
out = {}
if "async.module_dict" in wanted:
    out["async.module_dict"] = one(words_pointing_at(sys, sys.__dict__), "sys.__dict__")
if any(key.startswith("async.task_") for key in wanted):
    import _asyncio

    async def probe_coroutine():
        return None

    loop = asyncio.new_event_loop()
    coro = probe_coroutine()
    name = "spyglass-probe-%d" % id(loop)  # a str made here, so its address is its own
    task = _asyncio.Task(coro, loop=loop, name=name)
    assert type(task) is _asyncio.Task
    out["async.task_size"] = type(task).__basicsize__
    out["async.task_coro"] = one(words_pointing_at(task, coro), "the task's coroutine")
    out["async.task_name"] = one(words_pointing_at(task, name), "the task's name")
    loop.run_until_complete(task)
    loop.close()
print(json.dumps({key: out[key] for key in wanted}))
"""
PROBED = ("async.module_dict", "async.task_size", "async.task_coro", "async.task_name")


def expressions(version):
    """{name: C expression} of everything the headers can say about this version's spec."""
    exprs = {}
    for field in version.fields.values():
        if field.c:
            exprs[field.key] = field.c
        if field.width_expression:
            exprs["width:" + field.key] = field.width_expression
    if version.reads_debug_offsets:
        for name in version.debug_words():
            exprs["debug:" + name] = "offsetof(_Py_DebugOffsets, %s)" % name
        exprs["debug:sizeof"] = "sizeof(_Py_DebugOffsets)"
    return exprs


def expected_numbers(version):
    """What the spec says each expression must come to (the fields' own numbers come from
    spyglass's layout instead, compared in `compare`)."""
    want = {}
    for field in version.fields.values():
        if field.width_expression:
            want["width:" + field.key] = field.width
    for name, word in version.debug_words().items():
        want["debug:" + name] = 8 * word
    if version.reads_debug_offsets:
        want["debug:sizeof"] = 8 * version.debug_table_words()
    return want


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
    """Compiles and runs the offsetof program; returns {name: number}."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler (cc) found")
    lines = ["#define Py_BUILD_CORE 1", "#include <Python.h>"]
    lines += [f'#include "{header}"' for header in version.headers]
    lines += ["#include <stddef.h>", "#include <stdio.h>", "int main(void) {", '  printf("{");']
    for index, (key, expression) in enumerate(sorted(expressions(version).items())):
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


def probe_numbers(version, python):
    """{field: number} found in the live interpreter for the probed fields of the version."""
    wanted = [key for key in PROBED if key in version.fields]
    if not wanted:
        return {}
    probed = subprocess.run([python, "-c", PROBE, ",".join(wanted)], capture_output=True,
                            text=True)
    if probed.returncode != 0:
        raise RuntimeError(f"{python} could not probe {', '.join(wanted)}: "
                           f"{probed.stdout}{probed.stderr}")
    return json.loads(probed.stdout.strip().splitlines()[-1])


def spyglass_numbers(dumper, version_text, python):
    if python is None:
        out = subprocess.run([dumper, "--version", version_text], capture_output=True, text=True)
    else:
        with tempfile.TemporaryDirectory() as work:
            copy = os.path.join(work, "runtime.bin")
            # Enough for the largest table (3.15's is 888 bytes); _PyRuntime is far larger.
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


def absent_value(key):
    return -1 if key.startswith("frame.owner_") else 0


def compare(version, headers, actual, probed=None):
    """The list of mismatches between the headers' numbers, the spec and spyglass's layout
    (and `probed`, what a live interpreter showed for the fields no header gives)."""
    problems = []
    text = version.text
    probed = probed or {}
    for key, field in version.fields.items():
        if key not in actual:
            problems.append(f"{text} {key}: spyglass has no such field")
        elif field.c and headers.get(key) != actual[key]:
            problems.append(f"{text} {key}: headers say {headers.get(key)} ({field.c}), "
                            f"spyglass says {actual[key]}")
        elif key in probed and probed[key] != actual[key]:
            problems.append(f"{text} {key}: the live interpreter shows {probed[key]}, "
                            f"spyglass says {actual[key]}")
        elif not field.c and field.value is not None and field.value != actual[key]:
            problems.append(f"{text} {key}: the spec says {field.value}, spyglass says "
                            f"{actual[key]}")
    for name, want in sorted(expected_numbers(version).items()):
        if headers.get(name) != want:
            what = ("width of " + name[len("width:"):]) if name.startswith("width:") else \
                "_Py_DebugOffsets " + name[len("debug:"):]
            problems.append(f"{text} {what}: headers say {headers.get(name)}, "
                            f"the spec says {want}")
    for key, value in sorted(actual.items()):
        if key in version.fields or not isinstance(value, int) or isinstance(value, bool):
            continue
        if key in ("version",):
            continue
        if value != absent_value(key):
            problems.append(f"{text} {key}: absent from {text}'s spec, spyglass says {value} "
                            f"(should be {absent_value(key)})")
    for meta in ("frame_model", "line_table"):
        if meta in actual and actual[meta] != getattr(version, meta):
            problems.append(f"{text} {meta}: the spec says {getattr(version, meta)}, "
                            f"spyglass says {actual[meta]}")
    return problems


def main():
    spec = cpython_spec.load()
    choices = [v.text for v in spec.versions.values()]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, choices=choices)
    parser.add_argument("--include", required=True, help="the version's include/python3.X dir")
    parser.add_argument("--include-extra", action="append", default=[],
                        help="more include dirs (e.g. the multiarch pyconfig.h dir)")
    parser.add_argument("--dumper", help="path of spyglass_layout_dump")
    parser.add_argument("--python", help="the interpreter (needed for 3.13+: its debug offsets; "
                        "for any version, the -D flags of its core)")
    parser.add_argument("--print", action="store_true", help="print the header numbers only")
    args = parser.parse_args()
    version = spec.versions[int(args.version.split(".")[1])]
    try:
        headers = header_numbers(version, args.include, args.include_extra,
                                 core_defines(args.python))
        if args.print:
            print(json.dumps(headers, indent=1, sort_keys=True))
            return 0
        if args.dumper is None:
            parser.error("--dumper is needed unless --print")
        if version.reads_debug_offsets and args.python is None:
            parser.error("3.13+ layouts come from a live interpreter: pass --python")
        if args.python is None and any(key in version.fields for key in PROBED):
            parser.error(f"{args.version}'s spec has fields no header gives, checked in a live "
                         f"interpreter: pass --python")
        actual = spyglass_numbers(args.dumper, args.version,
                                  args.python if version.reads_debug_offsets else None)
        probed = probe_numbers(version, args.python)
    except (RuntimeError, subprocess.CalledProcessError, OSError, ValueError) as error:
        print(f"check_layouts: cannot check {args.version}: {error}", file=sys.stderr)
        return 2
    problems = compare(version, headers, actual, probed)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{args.version}: {len(problems)} mismatches")
        return 1
    checked = len(expressions(version))
    print(f"{args.version}: all {checked} numbers match the headers "
          f"({len(version.fields)} fields, their widths"
          f"{', the _Py_DebugOffsets shape' if version.reads_debug_offsets else ''})"
          f"{'; %d found in a live interpreter' % len(probed) if probed else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
