"""The ground truth of the real programs: each program times its chosen functions itself.

A chosen function takes the time inside its own body:

    def handle_algebra(n):
        began = TRUTH.begin()
        try:
            ...
        finally:
            TRUTH.add("handle_algebra", began)

and not around its call site, because the time between a caller's clock read and the callee's
first instruction is not the callee's: a thread may hand the GIL over right after a C call
returns and wait a whole switch interval (5 ms) before the callee's frame exists, which a
sampler rightly gives to the caller. Read inside the body, both clock reads happen while the
function's frame is on the stack, so the truth can only be shorter than the frame's life by a
few instructions. Times add up over calls and threads (thread-seconds), as spyglass's figures
do; a recursive function times its outermost call only.

For the same reason nothing may wait after the closing clock read, while the frame is still
on the stack: `add` does its bookkeeping (a lock, allocations that may run the garbage
collector, calls at which the GIL may be handed over) before it reads the clock, and after it
only stores the reading. When `add` took a lock and summed up after its clock read, a request
thread that waited there for the GIL (5-20 ms, behind the sympy threads) was rightly seen
inside its 0.1 ms `handle_status` by spyglass and not by the truth: `handle_status` read
+35 ... +122 % in about one run in 60 (3.10 and 3.12, 10 kHz), each time from one such wait.

The file is written at exit, normal or by SIGTERM/SIGINT, as
{"program", "python", "pid", "elapsed", "functions": {name: {"seconds", "calls"}}}; with
SPYGLASS_TRUTH_CALLS=1 in the environment also "calls_log": [name, native thread id, start,
seconds] of every call, to compare with spyglass's figures per thread when a total is off.

With --wait, a program sets itself up (imports, servers), prints `ready {"pid": PID}` and waits
for a line on stdin before it does any of the work it times: a profiler attaches in between,
as to a program already running, and sees all of the work. Without it, the work starts at once.
"""

import argparse
import atexit
import json
import os
import signal
import sys
import threading
import time
from typing import List, Optional

perf_counter = time.perf_counter


class Truth:
    def __init__(self, program: str):
        self.program = program
        self._declared: List[str] = []
        # Every call's [name, native thread id, start, end] (a few thousand per run at most).
        self._calls: List[list] = []
        self.path: Optional[str] = None
        self._started = perf_counter()
        self._written = False
        self._wait = False
        self.log_calls = bool(os.environ.get("SPYGLASS_TRUTH_CALLS"))

    begin = staticmethod(perf_counter)

    def add(self, name: str, began: float) -> None:
        """Ends a call that began at `began` (see the module's docstring: the clock is read
        last, and only a store follows it). list.append is atomic, so no lock is taken."""
        call = [name, threading.get_native_id(), began, 0.0]
        self._calls.append(call)
        call[3] = perf_counter()

    def _ended_calls(self):
        """[name, native thread id, start, seconds] of every call ended so far (a call whose
        end is being stored right now is left out)."""
        return [[name, tid, began, ended - began]
                for name, tid, began, ended in list(self._calls) if ended]

    def declare(self, *names: str) -> None:
        """Functions that must appear in the file even if they never ran."""
        self._declared.extend(names)

    def document(self) -> dict:
        elapsed = perf_counter() - self._started
        calls = self._ended_calls()
        functions = {name: {"seconds": 0.0, "calls": 0} for name in self._declared}
        for name, _, _, seconds in calls:
            function = functions.setdefault(name, {"seconds": 0.0, "calls": 0})
            function["seconds"] += seconds
            function["calls"] += 1
        return {
            "program": self.program,
            "python": "%d.%d.%d" % tuple(sys.version_info[:3]),
            "pid": os.getpid(),
            "elapsed": elapsed,
            "functions": {name: functions[name] for name in sorted(functions)},
            **({"calls_log": calls} if self.log_calls else {}),
        }

    def write(self) -> None:
        if self.path is None or self._written:
            return
        self._written = True
        temporary = self.path + ".tmp"
        with open(temporary, "w") as handle:
            json.dump(self.document(), handle, indent=1)
        os.replace(temporary, self.path)  # a reader never sees half a file

    def start(self, argv: Optional[List[str]] = None, description: str = "") -> argparse.Namespace:
        """Reads the common options (--truth FILE, --scale X, plus the program's own, added
        to `self.parser` before) and arranges for the file to be written at exit."""
        options = self.parser.parse_args(argv)
        self.path = options.truth
        atexit.register(self.write)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _exit_on_signal)
        self._wait = options.wait
        return options

    def ready(self) -> None:
        """Called once set up, before the timed work: see --wait. The elapsed time counts from
        here."""
        if self._wait:
            print("ready " + json.dumps({"pid": os.getpid()}), flush=True)
            sys.stdin.readline()
        self._started = perf_counter()

    @property
    def parser(self) -> argparse.ArgumentParser:
        if not hasattr(self, "_parser"):
            parser = argparse.ArgumentParser(prog=self.program)
            parser.add_argument("--truth", help="write the program's own timings to this file")
            parser.add_argument("--scale", type=float, default=1.0,
                                help="multiply the fixed amount of work (default 1)")
            parser.add_argument("--wait", action="store_true",
                                help="print `ready` once set up, then wait for a line on stdin")
            self._parser = parser
        return self._parser


def _exit_on_signal(signum, frame):
    # SystemExit unwinds the program normally, so atexit writes the truth.
    sys.exit(128 + signum)


def run_program(truth: Truth, functions, work, amount: int) -> int:
    """The main of a single-threaded program: options, set-up done, then `work(amount scaled)`
    with every timed function listed in the truth even if it never ran."""
    options = truth.start()
    truth.declare(*functions)
    truth.ready()
    work(max(1, round(amount * options.scale)))
    done(truth)
    return 0


def done(truth: Truth) -> None:
    """The last line a program prints: what it did, for the test's log."""
    document = truth.document()
    print("done %s in %.2f s: %s" % (truth.program, document["elapsed"], ", ".join(
        "%s %.3f s/%d" % (name, item["seconds"], item["calls"])
        for name, item in document["functions"].items())), flush=True)
