"""Running spyglass and target programs for the integration tests (used through conftest.py)."""

import dataclasses
import json
import os
import re
import select
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from interpreters import REPO_ROOT, Interpreter, clean_environment

PROGRAMS_DIR = REPO_ROOT / "tests" / "programs"
DEFAULT_SPYGLASS = REPO_ROOT / "build" / "spyglass"
# Exit codes of spyglass (see the spec of `spyglass dump`).
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_NO_SUCH_PROCESS = 3
EXIT_PERMISSION = 4
EXIT_NOT_PYTHON = 5
EXIT_UNSUPPORTED_VERSION = 6
# Text that betrays a crash or an uncaught error rather than a message meant for the user.
_CRASH_MARKERS = ("Traceback", "terminate called", "Sanitizer", "runtime error:", "Assertion",
                  "Segmentation fault", "core dumped", "what():")

# (test id, what was measured, seconds): printed at the end of the run by conftest.py.
TIMINGS = []
# Lines about the session (which fetched interpreters ran, or why not): printed at the end of the run.
NOTES = []


def record_timing(test_id: str, what: str, seconds: float) -> None:
    TIMINGS.append((test_id, what, seconds))
    print("%s: %s took %.1f ms" % (test_id, what, seconds * 1000))


@dataclasses.dataclass
class Result:
    args: List[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        return "`%s` exited %d after %.2f s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            " ".join(self.args), self.returncode, self.seconds, self.stdout[-4000:],
            self.stderr[-4000:])


def run_command(args: Sequence[str], timeout: float) -> Result:
    """Runs a command; a timeout is a test failure that names the command."""
    started = time.monotonic()
    try:
        completed = subprocess.run(
            list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=timeout, check=False, text=True, errors="replace")
    except subprocess.TimeoutExpired as expired:
        raise AssertionError("`%s` did not finish within %.0f s; stderr so far: %s" % (
            " ".join(args), timeout, expired.stderr)) from None
    return Result(list(args), completed.returncode, completed.stdout, completed.stderr,
                  time.monotonic() - started)


def assert_success(result: Result) -> None:
    assert result.returncode == EXIT_OK, result.describe()
    assert_no_crash(result)


def record_json(run_spyglass, pid, *patterns, seconds: str = "1",
                mode: Optional[str] = None) -> dict:
    """`record -p PID` for `seconds` at 1 kHz (in `mode` when given) with each pattern chosen:
    its JSON document (the run must succeed)."""
    args = ["record", "-p", pid, "-r", "1000", "-d", seconds, "--format", "json"]
    if mode:
        args += ["--mode", mode]
    for pattern in patterns:
        args += ["-f", pattern]
    result = run_spyglass(args, timeout=60)
    assert_success(result)
    return json.loads(result.stdout)


def assert_no_crash(result: Result) -> None:
    assert result.returncode >= 0, "killed by signal %d\n%s" % (
        -result.returncode, result.describe())
    for marker in _CRASH_MARKERS:
        assert marker not in result.stderr, "stderr shows a crash (%r)\n%s" % (
            marker, result.describe())


def assert_clean_failure(result: Result, expected_code: Optional[int] = None) -> str:
    """A refusal: a non-zero exit code and exactly one line `spyglass: ...` on stderr.
    Returns that line."""
    assert_no_crash(result)
    assert result.returncode != EXIT_OK, "expected a failure\n" + result.describe()
    if expected_code is not None:
        assert result.returncode == expected_code, "expected exit code %d\n%s" % (
            expected_code, result.describe())
    lines = result.stderr.strip("\n").splitlines()
    assert len(lines) == 1, "expected one line on stderr\n" + result.describe()
    assert lines[0].startswith("spyglass: "), (
        "the message must start with 'spyglass: '\n" + result.describe())
    assert len(lines[0]) > len("spyglass: ") + 5, "the message says nothing\n" + result.describe()
    return lines[0]


def assert_success_or_clean_failure(result: Result, json_output: bool) -> bool:
    """For races (the target changing or exiting mid-walk): either a complete dump or one clean
    line. Returns True when the dump succeeded."""
    assert_no_crash(result)
    if result.returncode == EXIT_OK:
        if json_output:
            try:
                json.loads(result.stdout)
            except ValueError as error:
                raise AssertionError("exit 0 but unreadable JSON (%s)\n%s" % (
                    error, result.describe())) from None
        return True
    assert_clean_failure(result)
    return False


def thread_states(pid: int) -> List[str]:
    """The scheduler state letter of each thread of a process ([] once it is gone)."""
    states = []
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return []
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as stat:
                # The command name may contain spaces or parentheses: the state follows the last ')'.
                states.append(stat.read().rsplit(")", 1)[1].split()[0])
        except (OSError, IndexError):
            pass  # the thread ended meanwhile
    return states


class Target:
    """A target program running under one interpreter; always killed by stop()."""

    def __init__(self, interpreter: Interpreter, program: str, args: Sequence[str],
                 ready_timeout: float):
        self.interpreter = interpreter
        self.program = str(PROGRAMS_DIR / program)
        self._stderr_file = tempfile.TemporaryFile(mode="w+b")
        self.proc = subprocess.Popen(
            [interpreter.path, self.program] + [str(arg) for arg in args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr_file,
            env=clean_environment(), cwd=str(PROGRAMS_DIR),
            # Its own process group, so stop() also kills what a wrapper script may have forked.
            start_new_session=True)
        self.expected = {}
        self.pid = self.proc.pid
        self._wait_for_ready(ready_timeout)
        # The program's own pid: the interpreter may run under a wrapper that did not exec.
        self.pid = int(self.expected.get("pid", self.proc.pid))

    def stderr_text(self) -> str:
        self._stderr_file.seek(0)
        return self._stderr_file.read().decode(errors="replace")

    def _fail(self, why: str) -> None:
        self.stop()
        raise AssertionError("%s %s: %s\n--- its stderr ---\n%s" % (
            self.interpreter.test_id, Path(self.program).name, why, self.stderr_text()))

    def _wait_for_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        output = b""
        fd = self.proc.stdout.fileno()
        while b"\n" not in output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail("no `ready` line within %.0f s (stdout so far: %r)" % (timeout, output))
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                self.proc.wait()
                self._fail("exited with code %d before `ready` (stdout: %r)" % (
                    self.proc.returncode, output))
            output += chunk
        line = output.split(b"\n", 1)[0].decode(errors="replace")
        if not line.startswith("ready"):
            self._fail("expected a `ready` line, got %r" % line)
        payload = line[len("ready"):].strip()
        if payload:
            self.expected = json.loads(payload)

    def wait_until_all_threads_sleep(self, thread_count: int, timeout: float = 10.0) -> None:
        """Waits until the process has `thread_count` threads, all asleep in the kernel: the
        programs that block print `ready` just before their last step into the read."""
        deadline = time.monotonic() + timeout
        states = []
        while time.monotonic() < deadline:
            states = thread_states(self.pid)
            if len(states) == thread_count and all(state == "S" for state in states):
                return
            time.sleep(0.002)
        self._fail("threads never all blocked: states %r, expected %d threads" % (
            states, thread_count))

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        else:
            try:  # the wrapper may have exited while its child lives on
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc.stdout:
            self.proc.stdout.close()
        self._stderr_file.close()


# --- Reading dumps ------------------------------------------------------------------------------

_HEADER = re.compile(r"^Process (\d+): Python (\S+) \((.*)\)$")
_THREAD = re.compile(r"^Thread (0x[0-9a-fA-F]+|\d+)\b(.*)$")
_FRAME = re.compile(r'^  File "(.*)", line (-?\d+), in (.*)$')


@dataclasses.dataclass
class TextThread:
    label: str  # what follows "Thread ": a native id in decimal or a thread id in hex
    rest: str  # the rest of the line: "name", (holds the GIL)
    frames: List[dict]

    @property
    def holds_gil(self) -> bool:
        return "(holds the GIL)" in self.rest


@dataclasses.dataclass
class TextDump:
    pid: int
    version: str
    binary: str
    threads: List[TextThread]


def parse_text_dump(text: str) -> TextDump:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "empty output"
    header = _HEADER.match(lines[0])
    assert header, "bad header line %r" % lines[0]
    threads = []
    for line in lines[1:]:
        thread = _THREAD.match(line)
        if thread:
            threads.append(TextThread(thread.group(1), thread.group(2), []))
            continue
        frame = _FRAME.match(line)
        if frame and threads:
            threads[-1].frames.append(
                {"file": frame.group(1), "line": int(frame.group(2)), "function": frame.group(3)})
            continue
        raise AssertionError("unexpected line %r in\n%s" % (line, text))
    return TextDump(int(header.group(1)), header.group(2), header.group(3), threads)


def function_matches(actual: str, expected_frame: dict) -> bool:
    """The qualified name must be exact where the code object has one (3.11+); before, the plain
    name is the truth, and a reconstructed qualified name ending in it is accepted too."""
    if expected_frame["qualname"] is not None:
        return actual == expected_frame["qualname"]
    name = expected_frame["name"]
    return actual == name or actual.endswith("." + name)


def frame_mismatches(actual_frames: List[dict], expected_frames: List[dict],
                     check_details: bool) -> List[str]:
    """Differences between a dumped stack and the expected one, innermost first. With
    `check_details`, also the JSON-only fields `name` and `first_line`."""
    problems = []
    if len(actual_frames) != len(expected_frames):
        problems.append("%d frames dumped, %d expected" % (len(actual_frames),
                                                           len(expected_frames)))
    for index, (actual, expected) in enumerate(zip(actual_frames, expected_frames)):
        where = "frame %d (%s)" % (index, expected["qualname"] or expected["name"])
        if not function_matches(actual.get("function", ""), expected):
            problems.append("%s: function %r" % (where, actual.get("function")))
        if actual.get("file") != expected["file"]:
            problems.append("%s: file %r, expected %r" % (where, actual.get("file"),
                                                          expected["file"]))
        if actual.get("line") != expected["line"]:
            problems.append("%s: line %r, expected %r" % (where, actual.get("line"),
                                                          expected["line"]))
        if check_details:
            if actual.get("name") != expected["name"]:
                problems.append("%s: name %r" % (where, actual.get("name")))
            if actual.get("first_line") != expected["first_line"]:
                problems.append("%s: first_line %r, expected %r" % (
                    where, actual.get("first_line"), expected["first_line"]))
    return problems


def format_stack(frames: List[dict]) -> str:
    return "\n".join("    %s:%s %s" % (frame.get("file"), frame.get("line"),
                                        frame.get("function") or frame.get("qualname")
                                        or frame.get("name"))
                     for frame in frames)


# --- Profiling sessions (record, run, attach) ---------------------------------------------------

# How far from the truth a figure may be, in units of spyglass's own error bound. The bound is
# a 95 % interval and, since the sampling moments are drawn as a Poisson process
# (docs/accuracy.md), the errors really are that wide: one figure in twenty lands outside it by
# chance. The suite checks several hundred figures per run, so it allows twice the bound (about
# four standard deviations: by chance about once in 15,000 figures); a systematic error larger
# than the bound still fails.
BOUND_FACTOR = 2.0

WORKLOAD_TARGETS = ["heavy_computation", "disk_io", "network_request", "many_tiny_calls",
                    "consume_generator", "Worker.process", "run_async", "idle_wait", "recurse"]
# ISSUE15: the workload's coroutine, whose truth is its wall time, suspended time included
# (async-aware wall mode). tests/integration/test_async.py checks it with the targets above;
# once the feature lands it can join WORKLOAD_TARGETS (then every accuracy test checks it).
WORKLOAD_ASYNC_TARGETS = WORKLOAD_TARGETS + ["gather_async"]


def workload_path() -> Optional[Path]:
    """The shared reference workload (`$SPYGLASS_WORKLOAD`, else <repo>/../shared/bench/
    workload.py), or None when this machine has none."""
    explicit = os.environ.get("SPYGLASS_WORKLOAD")
    path = Path(explicit) if explicit else REPO_ROOT.parent / "shared" / "bench" / "workload.py"
    return path if path.is_file() else None


class Script:
    """Any Python script that prints `ready PID` (or `ready {json}`) on its first line, run by
    one interpreter in its own process group; always killed by stop()."""

    def __init__(self, interpreter_path: str, script: str, args: Sequence[str] = (),
                 cwd: Optional[str] = None, ready_timeout: float = 60.0,
                 env: Optional[Dict[str, str]] = None, stdin=subprocess.DEVNULL):
        self._stderr_file = tempfile.TemporaryFile(mode="w+b")
        self.args = [interpreter_path, str(script)] + [str(arg) for arg in args]
        self.proc = subprocess.Popen(
            self.args, stdin=stdin, stdout=subprocess.PIPE,
            stderr=self._stderr_file, env=clean_environment() if env is None else env, cwd=cwd,
            start_new_session=True)
        self.pid = self.proc.pid
        self.output = b""  # stdout read so far
        line = self.read_line(ready_timeout)
        words = line.split(None, 1)
        if not words or words[0] != "ready":
            self.stop()
            raise AssertionError("%s: expected a `ready` line, got %r; stderr: %s" % (
                " ".join(self.args), line, self.stderr_text()))
        if len(words) == 2 and words[1].strip().isdigit():
            self.pid = int(words[1])
        elif len(words) == 2:
            self.pid = int(json.loads(words[1]).get("pid", self.proc.pid))

    def read_line(self, timeout: float) -> str:
        """The next line of the script's stdout ("" at its end or after `timeout`)."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return ""
            readable, _, _ = select.select([fd], [], [], remaining)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return ""
                self.output += chunk
        line, self.output = self.output.split(b"\n", 1)
        return line.decode(errors="replace")

    def stderr_text(self) -> str:
        self._stderr_file.seek(0)
        return self._stderr_file.read().decode(errors="replace")

    def pause(self) -> None:
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.stdout:
            self.proc.stdout.close()
        self._stderr_file.close()


def thread_count(pid: int) -> int:
    try:
        return len(os.listdir("/proc/%d/task" % pid))
    except OSError:
        return 0


def wait_for_threads(pid: int, count: int, timeout: float = 30.0) -> None:
    """Waits until process `pid` runs at least `count` threads (spyglass's sampling thread
    starts once it is attached and profiling)."""
    deadline = time.monotonic() + timeout
    while thread_count(pid) < count:
        if time.monotonic() > deadline:
            raise AssertionError("process %d never had %d threads" % (pid, count))
        time.sleep(0.005)


def json_document(text: str) -> dict:
    """The first JSON object in `text` that starts a line: spyglass run's stdout may hold the
    program's own lines before the results, the prompt its other answers around them."""
    start = 0 if text.startswith("{") else text.find("\n{") + 1
    assert start > 0 or text.startswith("{"), "no JSON object in output:\n" + text[-3000:]
    try:
        return json.JSONDecoder().raw_decode(text, start)[0]
    except ValueError as error:
        raise AssertionError("unreadable JSON (%s):\n%s" % (error, text[-3000:])) from None


def function_rows(document: dict) -> dict:
    """{pattern as given: its item} of a JSON result."""
    return {item["name"]: item for item in document["functions"]}


DEMO_APP = REPO_ROOT / "examples" / "demo_app.py"
DEMO_FUNCTIONS = ["heavy_computation", "disk_io", "network_request"]
# Keys every item of the JSON results' "functions" list carries (src/report/results.cpp).
FUNCTION_KEYS = {"name", "seconds", "self_seconds", "samples", "error_seconds", "threads",
                 "share", "has_data", "matches"}
RUN_KEYS = {"functions", "rate_hz", "achieved_rate_hz", "mode", "duration_seconds", "samples",
            "late_samples", "missed_samples", "pid", "python_version", "target_exited"}


def runner_python() -> str:
    """The interpreter of the tests themselves: for tests that are not about versions."""
    import sys
    return sys.executable


def start_demo_app(*args, cwd: Optional[str] = None) -> Script:
    return Script(runner_python(), str(DEMO_APP), args, cwd=cwd)
