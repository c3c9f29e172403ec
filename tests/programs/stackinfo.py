"""Helpers for the target programs: record the stack a thread blocks with, then announce it.

Runs on every supported CPython (3.8+), stdlib only. The recorded stacks are the interpreter's own truth
(`sys._getframe()`, `f_lineno`), so a test compares spyglass's dump with what that exact
interpreter holds, whatever its version does with line numbers or qualified names.

How a program blocks with an exactly known line: the blocking call is
`os.read(stackinfo.record_caller(...), 1)`. Python evaluates the argument first, on the same line,
so the line recorded for the caller's frame is the line it then blocks on; `os.read` is a C
function and adds no Python frame. Nobody ever writes to the pipe, so the read never returns.
"""

import json
import os
import sys
import threading
import time

# A pipe nobody writes to: reading it blocks forever (both ends stay open for the process's life).
_BLOCK_READ_FD, _BLOCK_WRITE_FD = os.pipe()
# Generous bound on the frames recorded per thread; the programs never come close.
_MAX_FRAMES = 10000

_lock = threading.Lock()
_threads = {}  # ident -> record
_blocking_frames = {}  # ident -> the frame object that will block


def frame_record(frame):
    code = frame.f_code
    return {
        "name": code.co_name,
        # co_qualname exists from 3.11; before, the frame only knows the plain name.
        "qualname": getattr(code, "co_qualname", None),
        "file": code.co_filename,
        "line": frame.f_lineno,
        "first_line": code.co_firstlineno,
    }


def stack_records(frame):
    """Frames from `frame` outwards, innermost first."""
    records = []
    while frame is not None and len(records) < _MAX_FRAMES:
        records.append(frame_record(frame))
        frame = frame.f_back
    return records


def native_thread_name(native_id):
    try:
        with open("/proc/self/task/%d/comm" % native_id) as comm:
            return comm.read().strip()
    except OSError:
        return None


def set_native_thread_name(name):
    """Names the calling OS thread (Linux keeps 15 bytes), when ctypes is available."""
    try:
        import ctypes

        pr_set_name = 15
        ctypes.CDLL(None).prctl(pr_set_name, name.encode()[:15], 0, 0, 0)
    except Exception:  # no ctypes in this build, or no prctl: the name is optional
        pass


def record_caller(depth=1):
    """Records the calling thread's stack (from the caller's frame) and returns the fd to block
    on. Meant to be the argument of os.read on the line that blocks."""
    frame = sys._getframe(depth)
    thread = threading.current_thread()
    native_id = threading.get_native_id()
    record = {
        "name": thread.name,
        "native_name": native_thread_name(native_id),
        "ident": threading.get_ident(),
        "native_id": native_id,
        "frames": stack_records(frame),
    }
    with _lock:
        _threads[record["ident"]] = record
        _blocking_frames[record["ident"]] = frame
    return _BLOCK_READ_FD


def wait_until_blocked(idents, timeout=30.0):
    """Waits until each thread in `idents` has recorded its stack and left record_caller, so its
    Python stack is the recorded one (all that remains is the C call into read)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _lock:
            frames = dict(_blocking_frames)
        current = sys._current_frames()
        if all(ident in frames and current.get(ident) is frames[ident] for ident in idents):
            return
        time.sleep(0.001)
    sys.stderr.write("threads %r never reached their blocking call\n" % (list(idents),))
    sys.exit(1)


def announce_and_block(other_threads=()):
    """Records the calling (main) thread's stack, waits for `other_threads` to be blocked, prints
    `ready {json}` and returns the fd to block on. Use as `os.read(announce_and_block(...), 1)`."""
    record_caller(depth=2)
    wait_until_blocked([thread.ident for thread in other_threads])
    main_ident = threading.get_ident()
    with _lock:
        threads = [_threads[main_ident]] + [
            _threads[ident] for ident in sorted(_threads) if ident != main_ident]
    expected = {
        "pid": os.getpid(),
        "python": {
            "version": "%d.%d.%d" % tuple(sys.version_info[:3]),
            "executable": sys.executable,
        },
        "threads": threads,
    }
    sys.stdout.write("ready " + json.dumps(expected) + "\n")
    sys.stdout.flush()
    return _BLOCK_READ_FD


def announce_ready(**extra):
    """For programs whose stack is not checked: prints `ready {json}` with the pid."""
    data = {"pid": os.getpid(), "python": {"version": "%d.%d.%d" % tuple(sys.version_info[:3])}}
    data.update(extra)
    sys.stdout.write("ready " + json.dumps(data) + "\n")
    sys.stdout.flush()
