"""Async-aware wall mode (issue 15): in wall mode every asyncio task contributes its logical
stack, the running one through its thread's frames and each suspended one through its chain of
coroutines, so a coroutine's inclusive time is the whole time any of its calls is in progress,
suspended or running (added over calls, as thread-seconds). cpu and gil modes are unchanged;
`--no-async` turns it off; the JSON's top-level `async_aware` says which; `dump` lists tasks.

  - the reference workload's `gather_async` (its truth includes its suspended time) within the
    bound at 1 kHz and 10 kHz on every interpreter, every other target as before;
  - `--no-async`, `--mode cpu` and `--mode gil` read it far below its wall truth (the old
    behaviour), and the JSON says async_aware false with --no-async;
  - `dump` shows each task (`asyncio tasks`, then `  task NAME` and its frames, innermost
    first; JSON: "tasks": [{"name", "frames"}]) of a program whose tasks are all suspended;
  - the corpus's async servers (tests/realprograms/async_server.py: asyncio streams and
    aiohttp.web under load from keep-alive clients) profiled from outside while exact mode times
    the same coroutines from inside, in one run: both agree with the servers' own timing of
    their handlers, and with each other, within spyglass's bound.

The servers' figures are asserted under --blocking; non-blocking runs too, printing its figures,
and is an expected failure when outside the bound (issue 15's closing note says why).

One interpreter: `-k 'async and pyenv-3.12'`.
"""

import json
import os
import re
import subprocess
import sys
import time
from typing import Dict, List, Optional

import pytest

import support
import test_accuracy as accuracy

sys.path.insert(0, str(support.REPO_ROOT / "tests" / "realprograms"))
import corpus  # noqa: E402

SCALE = float(os.environ.get("SPYGLASS_REAL_SCALE", "1")) * 0.6
ASYNC_TARGET = "gather_async"
MAKE_PYTHON = support.REPO_ROOT / "src" / "extension" / "make_python.sh"


# tests/robustness/sanitize.sh runs the integration suite against an ASan build, whose sampler
# is 2-3 times slower: as for the accuracy tests there, figures are not judged under it (the
# runs still happen, and any sanitizer finding fails that stage).
UNDER_SANITIZER = bool(os.environ.get("ASAN_OPTIONS") or os.environ.get("UBSAN_OPTIONS"))


def timing_not_enforced(problems: List[str], what: str) -> None:
    if problems and UNDER_SANITIZER:
        pytest.skip("timing not enforced under a sanitizer build (ASAN_OPTIONS set); %s:\n%s"
                    % (what, "\n".join(problems)))


def async_flag_problems(document: dict, expected: bool) -> List[str]:
    value = document.get("async_aware", "(missing)")
    if value is expected:
        return []
    return ["the JSON's top-level async_aware is %r, expected %r" % (value, expected)]


# --- The reference workload's coroutine -----------------------------------------------------------

def run_workload(spyglass_bin, interpreter, workload, tmp_path, extra=()):
    truth, document = accuracy.run_workload_under_spyglass(
        spyglass_bin, interpreter, workload, tmp_path, extra=list(extra),
        targets=support.WORKLOAD_ASYNC_TARGETS)
    rows = support.function_rows(document)
    table = accuracy.accuracy_table(truth, rows, targets=support.WORKLOAD_ASYNC_TARGETS)
    header = "%s %s: %d samples at %.0f Hz achieved, %.2f s profiled, workload %.2f s, " \
             "async_aware %r" % (interpreter.test_id, " ".join(extra) or "default",
                                 document["samples"], document["achieved_rate_hz"],
                                 document["duration_seconds"], truth["elapsed"],
                                 document.get("async_aware", "(missing)"))
    print(header + "\n" + table)
    support.NOTES.append(header + "\n" + table)
    return truth, document, header + "\n" + table


@pytest.mark.parametrize("rate", [1000, 10000])
def test_gather_async_within_bound(spyglass_bin, interpreter, workload, tmp_path, rate):
    """gather_async awaits asyncio.gather of four 5 ms sleeps: nearly all of its truth is
    suspended time, which a sampler of thread stacks alone never sees (about 1 % of it)."""
    truth, document, table = run_workload(spyglass_bin, interpreter, workload, tmp_path,
                                          ["--rate", str(rate)])
    assert document["mode"] == "wall" and document["rate_hz"] == rate
    others = accuracy.accuracy_problems(truth, document, interpreter.minor)
    coroutine = accuracy.accuracy_problems(truth, document, interpreter.minor,
                                           targets=[ASYNC_TARGET])
    coroutine += async_flag_problems(document, True)
    timing_not_enforced(others, table)
    assert not others, "\n".join(others + coroutine + [table])  # as before the feature
    timing_not_enforced(coroutine, table)
    assert not coroutine, "\n".join(coroutine + [table])


def far_below(truth: dict, document: dict, table: str) -> None:
    true_seconds = truth["functions"][ASYNC_TARGET]["seconds"]
    measured = support.function_rows(document)[ASYNC_TARGET]["seconds"] or 0.0
    assert true_seconds > 0.05, table
    assert measured < 0.25 * true_seconds, (
        "gather_async read %.4f s of its %.4f s wall truth: only the async-aware wall mode "
        "counts its suspended time\n%s" % (measured, true_seconds, table))


def test_no_async_is_the_old_behaviour(spyglass_bin, workload, tmp_path):
    """--no-async: only thread stacks, as before the feature; the JSON says so; every other
    target is still within its bound."""
    interpreter = accuracy.runner_interpreter()
    truth, document, table = run_workload(spyglass_bin, interpreter, workload, tmp_path,
                                          ["--no-async"])
    assert not async_flag_problems(document, False), table
    far_below(truth, document, table)
    problems = accuracy.accuracy_problems(truth, document, interpreter.minor)
    timing_not_enforced(problems, table)
    assert not problems, "\n".join(problems + [table])


@pytest.mark.parametrize("mode", ["cpu", "gil"])
def test_cpu_and_gil_modes_unchanged(spyglass_bin, workload, tmp_path, mode):
    """A suspended coroutine is on no CPU and holds no GIL: cpu and gil modes count it only
    while it runs, with or without the feature."""
    interpreter = accuracy.runner_interpreter()
    truth, document, table = run_workload(spyglass_bin, interpreter, workload, tmp_path,
                                          ["--mode", mode])
    assert document["mode"] == mode
    far_below(truth, document, table)
    assert isinstance(document.get("async_aware", False), bool), table


def test_json_says_async_aware(spyglass_bin, tmp_path):
    """A top-level boolean, true by default in wall mode, also for a program with no asyncio."""
    out_file = tmp_path / "results.json"
    result = support.run_command(
        [spyglass_bin, "run", "-f", "work", "--format", "json", "-o", str(out_file), "--",
         support.runner_python(), "-c",
         "import time\ndef work():\n    time.sleep(0.2)\nwork()\n"], timeout=60)
    support.assert_success(result)
    document = support.json_document(out_file.read_text())
    problems = async_flag_problems(document, True)
    assert not problems, json.dumps(document, indent=1)[:3000]


# --- dump: the tasks ------------------------------------------------------------------------------

# Every task suspended: three chains of coroutines, a gather of two named children, two waits on
# an Event. `# AT name` marks the line each frame of the script is suspended at.
_TASKS_PROGRAM = r'''
import asyncio, json, os, re, sys

async def inner_wait():
    await asyncio.sleep(3600)  # AT inner_wait

async def outer_wait():
    await inner_wait()  # AT outer_wait

async def child(delay):
    await asyncio.sleep(delay)  # AT child

async def gather_children():
    children = [asyncio.create_task(child(3600), name="child-%d" % index)
                for index in range(2)]
    await asyncio.gather(*children)  # AT gather_children

async def wait_event(event):
    await event.wait()  # AT wait_event

async def await_directly():
    await asyncio.create_task(inner_wait(), name="awaited")  # AT await_directly

async def group_children():
    async with asyncio.TaskGroup() as group:
        for index in range(2):
            group.create_task(child(3600), name="grouped-%d" % index)

async def main():
    asyncio.current_task().set_name("main")
    event = asyncio.Event()
    tasks = [asyncio.create_task(outer_wait(), name="sleeper"),
             asyncio.create_task(gather_children(), name="gatherer"),
             asyncio.create_task(wait_event(event), name="waiter"),
             asyncio.create_task(await_directly(), name="director")]
    if hasattr(asyncio, "TaskGroup"):  # 3.11+
        tasks.append(asyncio.create_task(group_children(), name="grouper"))
    await asyncio.sleep(0.1)  # every task started, and is suspended
    print("ready %d" % os.getpid(), flush=True)
    await event.wait()  # AT main

asyncio.run(main())
'''

# Each task's frames, innermost first: (function, whether the frame is the script's own, so
# that its file and line are checked too). asyncio.sleep and Event.wait are coroutines of the
# standard library; a gather or a Future ends a chain (they are not coroutines).
EXPECTED_TASKS = {
    "sleeper": [("sleep", False), ("inner_wait", True), ("outer_wait", True)],
    "gatherer": [("gather_children", True)],
    "child-0": [("sleep", False), ("child", True)],
    "child-1": [("sleep", False), ("child", True)],
    "waiter": [("wait", False), ("wait_event", True)],
    "main": [("wait", False), ("main", True)],
    "director": [("await_directly", True)],
    "awaited": [("sleep", False), ("inner_wait", True)],
}
AWAIT_MARKER = "<await>"
# Who awaits whom (the tasks not named are awaited by no task): a direct `await task` and gather
# on every interpreter, TaskGroup from 3.11 (3.14+ read the interpreter's own record, older ones
# derive it from the awaiting task).
EXPECTED_AWAITERS = {"child-0": "gatherer", "child-1": "gatherer", "awaited": "director"}
EXPECTED_GROUP_AWAITERS = {"grouped-0": "grouper", "grouped-1": "grouper"}

# `  task NAME (suspended)`, or nested under the task awaiting it (pstree-like):
# `    └─ task NAME (suspended, awaited by A, B)`.
_TASK_LINE = re.compile(r"^(\s*)(?:└─ )?task (.+?) \(suspended(?:, awaited by (.+))?\)$")
_ANY_FRAME = re.compile(r'^\s+File "(.*)", line (-?\d+), in (.*)$')


def text_task_links(text: str) -> Dict[str, dict]:
    """{task name: {"awaited_by": [names], "under": the task it is nested under or None}}."""
    links: Dict[str, dict] = {}
    nesting: List[tuple] = []  # (indent, name) of the tasks open above
    for line in text.splitlines():
        task = _TASK_LINE.match(line)
        if not task:
            continue
        indent = len(task.group(1))
        while nesting and nesting[-1][0] >= indent:
            nesting.pop()
        links[task.group(2)] = {
            "awaited_by": task.group(3).split(", ") if task.group(3) else [],
            "under": nesting[-1][1] if nesting else None}
        nesting.append((indent, task.group(2)))
    return links


def link_problems(links: Dict[str, dict], minor: tuple, nested: bool) -> List[str]:
    expected = dict(EXPECTED_AWAITERS)
    if minor >= (3, 11):
        expected.update(EXPECTED_GROUP_AWAITERS)
    problems = []
    for name, link in sorted(links.items()):
        awaiter = expected.get(name)
        if link["awaited_by"] != ([awaiter] if awaiter else []):
            problems.append("task %r awaited by %r, expected %r" % (name, link["awaited_by"],
                                                                    awaiter))
        if nested and link["under"] != awaiter:
            problems.append("task %r listed under %r, expected %r" % (name, link["under"],
                                                                      awaiter))
    for name in expected:
        if name not in links:
            problems.append("no task %r among %r" % (name, sorted(links)))
    return problems


def text_tasks(text: str) -> Dict[str, List[dict]]:
    """{task name: frames} of every `asyncio tasks` section of a text dump: task lines, each
    followed by its frames. A line in a section that is neither is a failure."""
    tasks: Dict[str, List[dict]] = {}
    current = None
    in_section = False
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("asyncio tasks"):
            in_section, current = True, None
            continue
        if not line.startswith(" "):  # a thread, the header: the section is over
            in_section, current = False, None
            continue
        if not in_section:
            continue
        task = _TASK_LINE.match(line)
        if task:
            current = task.group(2).strip()
            assert current not in tasks, "task %r listed twice\n%s" % (current, text)
            tasks[current] = []
            continue
        frame = _ANY_FRAME.match(line)
        if frame and current is not None:
            tasks[current].append({"file": frame.group(1), "line": int(frame.group(2)),
                                   "function": frame.group(3)})
            continue
        if AWAIT_MARKER in line and current is not None:
            continue
        if re.match(r"^\s+\(\d+ records of who awaits a task could not be read", line):
            continue
        raise AssertionError("unexpected line %r in an asyncio tasks section\n%s" % (line, text))
    return tasks


def json_tasks(document: dict) -> Dict[str, List[dict]]:
    """{task name: frames} from "tasks" lists at the top level or in each thread."""
    lists = [document.get("tasks") or []]
    lists += [thread.get("tasks") or [] for thread in document.get("threads") or []]
    tasks = {}
    for task in (task for found in lists for task in found):
        assert set(task) >= {"name", "frames"}, task
        assert task["name"] not in tasks, "task %r listed twice" % task["name"]
        tasks[task["name"]] = task["frames"]
    return tasks


def task_problems(tasks: Dict[str, List[dict]], script: str, lines: Dict[str, int]) -> List[str]:
    problems = []
    for name, expected in EXPECTED_TASKS.items():
        if name not in tasks:
            problems.append("no task %r among %r" % (name, sorted(tasks)))
            continue
        frames = [frame for frame in tasks[name]
                  if AWAIT_MARKER not in (frame.get("function") or frame.get("name") or "")]
        shown = ["%s:%s %s" % (frame.get("file"), frame.get("line"),
                               frame.get("function") or frame.get("name")) for frame in frames]
        if len(frames) != len(expected):
            problems.append("task %r: %d frames %r, expected %r" % (
                name, len(frames), shown, [function for function, _ in expected]))
            continue
        for frame, (function, own) in zip(frames, expected):
            actual = frame.get("function") or frame.get("name") or ""
            if actual != function and not actual.endswith("." + function):
                problems.append("task %r: frame %r, expected %r (%r)" % (name, actual, function,
                                                                         shown))
            elif own and (frame.get("file") != script or frame.get("line") != lines[function]):
                problems.append("task %r: %s at %s:%s, expected %s:%d" % (
                    name, function, frame.get("file"), frame.get("line"), script,
                    lines[function]))
    return problems


def test_dump_shows_tasks(spyglass_bin, interpreter, tmp_path):
    script = tmp_path / "tasks.py"
    script.write_text(_TASKS_PROGRAM)
    lines = {match.group(1): number
             for number, text in enumerate(_TASKS_PROGRAM.splitlines(), start=1)
             for match in [re.search(r"# AT (\w+)$", text)] if match}
    target = support.Script(interpreter.path, str(script), cwd=str(tmp_path))
    try:
        deadline = time.monotonic() + 10
        while not all(state == "S" for state in support.thread_states(target.pid)):
            assert time.monotonic() < deadline, "the program never went to sleep"
            time.sleep(0.005)
        text = support.run_command([spyglass_bin, "dump", str(target.pid)], timeout=30)
        as_json = support.run_command([spyglass_bin, "dump", str(target.pid), "--json"],
                                      timeout=30)
    finally:
        target.stop()
    support.assert_success(text)
    support.assert_success(as_json)
    problems = ["text: " + problem for problem in task_problems(
        text_tasks(text.stdout), str(script), lines)]
    document = json.loads(as_json.stdout)
    problems += ["json: " + problem for problem in task_problems(
        json_tasks(document), str(script), lines)]
    # Who awaits whom: named in the task's line and nested under it (text); "awaited_by" (JSON).
    problems += ["text: " + problem for problem in link_problems(
        text_task_links(text.stdout), interpreter.minor, nested=True)]
    problems += ["json: " + problem for problem in link_problems(
        {task["name"]: {"awaited_by": [awaiter["name"] for awaiter in task["awaited_by"]]}
         for task in document.get("tasks") or []}, interpreter.minor, nested=False)]
    assert not problems, "\n".join(problems + [text.stdout])


# --- Trees and exports: each task under the task awaiting it ---------------------------------------

_AWAITERS_PROGRAM = r"""
import asyncio

async def leaf(delay):
    await asyncio.sleep(delay)

async def gather_parent():
    await asyncio.gather(*(leaf(0.01) for _ in range(3)))

async def direct_parent():
    await asyncio.create_task(leaf(0.01))

async def group_parent():
    async with asyncio.TaskGroup() as group:
        for _ in range(2):
            group.create_task(leaf(0.01))

async def main():
    loop = asyncio.get_running_loop()
    end = loop.time() + 1.5
    while loop.time() < end:
        await gather_parent()
        await direct_parent()
        if hasattr(asyncio, "TaskGroup"):
            await group_parent()

asyncio.run(main())
"""

_FOLDED = re.compile(r"^(.*) (\d+)$")


def test_exports_draw_tasks_under_their_awaiters(spyglass_bin, interpreter, tmp_path):
    """The collapsed export draws each `leaf` task under the frames of the task awaiting it
    (gather and a direct await everywhere, TaskGroup from 3.11), from a `<task>` frame; the
    awaiter waiting only for them is drawn through them; the tree of `leaf` has its awaiters as
    callers. The drawing is presentation only: `leaf`'s figures are its own stacks' (the unit
    tests check figures are the same with and without it; the accuracy tests above, that they
    are right)."""
    script = tmp_path / "awaiters.py"
    script.write_text(_AWAITERS_PROGRAM)
    folded = tmp_path / "out.folded"
    result = support.run_command(
        [spyglass_bin, "run", "-f", "leaf", "--format", "collapsed", "-o", str(folded), "--tree",
         "--", interpreter.path, str(script)], timeout=120)
    support.assert_success(result)
    linked = {"gather_parent": 0, "direct_parent": 0, "TaskGroup": 0}
    leaf_samples = alone = 0
    lines = folded.read_text().splitlines()
    for line in lines:
        match = _FOLDED.match(line)
        assert match, "not a collapsed line: %r" % line
        frames, count = match.group(1).split(";"), int(match.group(2))
        if not any(frame.startswith("leaf (") for frame in frames):
            continue
        leaf_samples += count
        at = next(i for i, frame in enumerate(frames) if frame.startswith("leaf ("))
        if at >= 2 and frames[at - 1] == "<task>":
            awaiter = frames[at - 2].split(" (")[0]
            if awaiter in ("TaskGroup.__aexit__", "TaskGroup._aexit"):  # _aexit: 3.13.1+
                awaiter = "TaskGroup"
            if awaiter in linked:
                linked[awaiter] += count
        elif at == 0:
            alone += count
    expected = ["gather_parent", "direct_parent"]
    if interpreter.minor >= (3, 11):
        expected.append("TaskGroup")
    # The lines with leaf, their file names left out, the longest cut.
    leaf_lines = sorted(re.sub(r" \([^;]*?:\d+\)", "", line)[-240:] for line in lines
                        if "leaf (" in line)
    shown = "%s: %r, %d of %d leaf samples drawn alone\n%s" % (
        interpreter.test_id, linked, alone, leaf_samples, "\n".join(leaf_lines[:20]))
    print(shown)
    assert leaf_samples > 500, shown
    for awaiter in expected:
        assert linked[awaiter] > 0, "no leaf drawn under %s\n%s" % (awaiter, shown)
    # A task is drawn alone only when its awaiter was not read at that sample (it was running,
    # or changed while read): a few per cent at most.
    assert alone <= 0.1 * leaf_samples, shown
    # The awaiters wait only for the leaves drawn under them: hardly ever drawn on their own.
    awaiter_alone = sum(int(_FOLDED.match(line).group(2)) for line in lines
                        if re.search(r"(gather_parent|direct_parent) \([^;]*;<await> \d+$", line))
    assert awaiter_alone <= 0.1 * leaf_samples, shown
    # The tree of leaf: its awaiters are its callers, above a <task> line.
    assert "callers of leaf" in result.stdout, result.stdout
    callers = result.stdout.split("callers of leaf", 1)[1].split("callees of leaf", 1)[0]
    assert "<task>" in callers and "gather_parent" in callers, result.stdout


# --- The async servers: sampling and exact mode on the same run -----------------------------------

_PACKAGES: Dict[str, str] = {}  # interpreter path: package folder, or "!" + why not


def exact_package(interpreter) -> Optional[str]:
    """Exact mode's package for the interpreter (`make python`, cached in build-python/ as for
    tests/exact, which builds the same), or None, with a note, when it cannot be built."""
    if interpreter.path not in _PACKAGES:
        try:
            completed = subprocess.run([str(MAKE_PYTHON), interpreter.path],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, timeout=900,
                                       cwd=str(support.REPO_ROOT))
            output = completed.stdout.strip().splitlines() or ["no output"]
            folder = output[-1].strip()
            if completed.returncode == 0 and os.path.isdir(folder):
                _PACKAGES[interpreter.path] = folder
            else:
                _PACKAGES[interpreter.path] = "!" + " | ".join(output[-3:])
        except subprocess.TimeoutExpired:
            _PACKAGES[interpreter.path] = "!make_python.sh did not finish within 900 s"
    package = _PACKAGES[interpreter.path]
    if package.startswith("!"):
        note = "exact mode for %s could not be built: %s" % (interpreter.test_id, package[1:])
        if note not in support.NOTES:
            support.NOTES.append(note)
        return None
    return package


def exact_allowance(truth: float, calls: int) -> float:
    """Exact mode times a coroutine from its first step to its end, the truth inside its body:
    exact can only read a little higher (the frame's first and last instructions, and a
    preemption between them on a loaded machine)."""
    return 0.01 * truth + 20e-6 * calls + 0.002


def exact_table(measurement) -> str:
    exact = support.function_rows(measurement.exact or {"functions": []})
    lines = ["%s: exact mode (coroutine wall seconds, calls) against the truth and the sampler"
             % measurement.label,
             "  %-18s %9s %9s %8s %9s %8s %7s %7s" % ("function", "truth s", "exact s", "diff",
                                                      "spyglass", "diff", "calls", "exact")]
    for row in measurement.rows():
        item = exact.get(row.function, {})
        wall = item.get("coroutine_wall_seconds")
        lines.append("  %-18s %9.3f %9s %+7.2f%% %9s %+7.1f%% %7d %7s" % (
            row.function, row.truth, "-" if wall is None else "%.3f" % wall,
            100 * ((wall or 0.0) / row.truth - 1) if row.truth else 0.0,
            "no data" if row.measured is None else "%.3f" % row.measured,
            100 * row.relative, row.calls, item.get("calls", "-")))
    return "\n".join(lines)


@pytest.mark.parametrize("program", corpus.ASYNC_PROGRAMS)
def test_async_server(spyglass_bin, interpreter, environment, program):
    """One run of the server under exact mode (`python -m spyglass run -f ...`) with `spyglass
    record -p --blocking` attached: exact mode matches the server's own timing (calls exactly,
    wall time within 1 %), and the sampler matches both within its bound."""
    check_server(spyglass_bin, interpreter, environment, program, blocking=True)


@pytest.mark.parametrize("program", corpus.ASYNC_PROGRAMS)
def test_async_server_nonblocking(spyglass_bin, interpreter, environment, program):
    """The same, non-blocking. Known short of its bound (issue 15's closing note): reading a
    busy event loop's tasks while they run leaves handlers a few per cent low or, where a
    coroutine's memory is reused mid-read, gives one another's time; --blocking (above) is
    exact. Its figures are printed; outside the bound it is an expected failure, never silent."""
    check_server(spyglass_bin, interpreter, environment, program, blocking=False)


def check_server(spyglass_bin, interpreter, environment, program, blocking):
    package = exact_package(interpreter)
    measurement = corpus.measure(spyglass_bin, interpreter.path, interpreter.test_id,
                                 environment, corpus.PROGRAMS[program], rate=1000, scale=SCALE,
                                 exact_package=package, blocking=blocking)
    tables = measurement.table() + ("\n" + exact_table(measurement) if package else "")
    print(tables)
    support.NOTES.append(tables)
    assert not measurement.run_problems(), tables

    exact_problems = []
    if package:
        exact = support.function_rows(measurement.exact)
        for row in measurement.rows():
            item = exact.get(row.function) or {}
            wall = item.get("coroutine_wall_seconds")
            if item.get("calls") != row.calls:
                exact_problems.append("%s: exact mode counted %r calls, the server %d" % (
                    row.function, item.get("calls"), row.calls))
            if wall is None or abs(wall - row.truth) > exact_allowance(row.truth, row.calls):
                exact_problems.append("%s: exact mode %r s, truth %.3f s" % (
                    row.function, wall, row.truth))
    assert not exact_problems, "\n".join(exact_problems + [tables])

    problems = async_flag_problems(measurement.document, True)
    exact = support.function_rows(measurement.exact or {"functions": []})
    for row in measurement.rows():
        if not row.within:
            problems.append("%s: spyglass %s, truth %.3f s (%+.1f%%): more than %g x the bound "
                            "%.3f s + margin %.3f s" % (
                                row.function, "no data" if row.measured is None else
                                "%.3f s" % row.measured, row.truth, 100 * row.relative,
                                support.BOUND_FACTOR, row.bound, row.margin()))
        wall = (exact.get(row.function) or {}).get("coroutine_wall_seconds")
        if wall is not None:
            allowed = support.BOUND_FACTOR * row.bound + row.margin() + exact_allowance(
                row.truth, row.calls)
            if abs((row.measured or 0.0) - wall) > allowed:
                problems.append("%s: spyglass %.3f s, exact mode %.3f s: apart by more than "
                                "%.3f s" % (row.function, row.measured or 0.0, wall, allowed))
    timing_not_enforced(problems, tables)
    if problems and not blocking:
        pytest.xfail("non-blocking async server outside its bound (issue 15):\n" +
                     "\n".join(problems))
    assert not problems, "\n".join(problems + [tables])
