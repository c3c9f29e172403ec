"""Accuracy against ground truth: the shared reference workload (../shared/bench/workload.py)
measures each target function's true inclusive time at its call site; spyglass, profiling it
from outside, must agree within its own error bound and within a few percent.

The workload does a fixed amount of work (--iterations), so `spyglass run` sees all of it. For
attach and record -p, the workload is started under a tiny launcher that stops itself once the
interpreter is up; spyglass attaches to the stopped process and starts sampling, and only then is
the process continued: nothing of the truth happens before spyglass watches. At the end the
workload is stopped again after it wrote the truth, so the prompt can be asked for its results.

Run the whole comparison on one interpreter with `-k 'accuracy and pyenv-3.12'`; the table of
truth vs measured is printed (`-s`) and listed at the end of the run.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import support

# SPYGLASS_ACCURACY_ITERATIONS: rounds of the workload (more rounds, tighter relative bounds).
ITERATIONS = int(os.environ.get("SPYGLASS_ACCURACY_ITERATIONS", "10"))
# What the launcher runs: stop, then run the workload as __main__ with the given arguments.
_LAUNCHER = ("import os, runpy, signal, sys; os.kill(os.getpid(), signal.SIGSTOP); "
             "path = sys.argv[1]; sys.argv = sys.argv[1:]; "
             "runpy.run_path(path, run_name='__main__')")


def read_truth(path) -> dict:
    with open(str(path)) as handle:
        return json.load(handle)


def accuracy_table(truth: dict, measured: dict, targets=support.WORKLOAD_TARGETS) -> str:
    lines = ["%-18s %10s %10s %10s %10s %8s" % ("function", "truth s", "measured s", "diff s",
                                              "± bound s", "samples")]
    for name in targets:
        true_seconds = truth["functions"].get(name, {}).get("seconds", 0.0)
        item = measured.get(name, {})
        seconds = item.get("seconds") or 0.0
        lines.append("%-18s %10.4f %10.4f %+10.4f %10.4f %8d" % (
            name, true_seconds, seconds, seconds - true_seconds, item.get("error_seconds") or 0.0,
            item.get("samples") or 0))
    return "\n".join(lines)


def accuracy_problems(truth: dict, document: dict, interpreter_minor,
                      targets=support.WORKLOAD_TARGETS) -> list:
    """Each target outside its error bound (support.BOUND_FACTOR times it, plus a small
    tolerance for the call-site timing itself).

    Worker.process runs on a background thread, so its call-site truth also holds the GIL
    hand-offs around the call: the worker takes `start = perf_counter()`, then at the eval
    breaker right after that call it may hand the GIL to the main thread and wait before its
    frame exists (about 1 % of its time on a busy machine). The tolerance covers it."""
    measured = support.function_rows(document)
    problems = []
    for name in targets:
        true_seconds = truth["functions"][name]["seconds"]
        item = measured.get(name)
        if item is None:
            problems.append("%s: missing from the results" % name)
            continue
        seconds = item["seconds"] or 0.0
        difference = abs(seconds - true_seconds)
        allowed = support.BOUND_FACTOR * item["error_seconds"] + 0.005 + 0.02 * true_seconds
        if difference > allowed:
            hint = ""
            if not item["has_data"] and "." in name and interpreter_minor < (3, 11):
                hint = (": before 3.11 code objects have no co_qualname, the walker names the "
                        "frame '%s' alone, so the Class.method pattern cannot match"
                        % name.rsplit(".", 1)[1])
            problems.append("%s: measured %.4f s%s, truth %.4f s: off by %.4f s, more than "
                            "%g x the bound %.4f s + tolerance%s" % (
                                name, seconds, "" if item["has_data"] else " (no data)",
                                true_seconds, difference, support.BOUND_FACTOR,
                                item["error_seconds"], hint))
    return problems


def check(request, interpreter, truth: dict, document: dict, how: str) -> None:
    table = accuracy_table(truth, support.function_rows(document))
    header = "%s %s: %d samples at %.0f Hz achieved, %.2f s profiled, workload %.2f s" % (
        request.node.name, how, document["samples"], document["achieved_rate_hz"],
        document["duration_seconds"], truth["elapsed"])
    print(header + "\n" + table)
    support.NOTES.append(header + "\n" + table)
    assert document["python_version"] == interpreter.version_text or (
        document["python_version"].startswith(interpreter.minor_text))
    problems = accuracy_problems(truth, document, interpreter.minor)
    assert not problems, "%s\n%s\n%s" % ("\n".join(problems), header, table)


def run_workload_under_spyglass(spyglass_bin, interpreter, workload, tmp_path, extra=(),
                                targets=support.WORKLOAD_TARGETS):
    truth_file = tmp_path / "truth.json"
    out_file = tmp_path / "results.json"
    command = [spyglass_bin, "run", "-f"] + list(targets) + list(extra) + [
        "--format", "json", "-o", str(out_file), "--", interpreter.path, str(workload),
        "--iterations", str(ITERATIONS), "--truth", str(truth_file)]
    result = support.run_command(command, timeout=120)
    support.assert_success(result)
    assert truth_file.is_file(), "the workload wrote no truth\n" + result.describe()
    assert "done rounds=%d" % ITERATIONS in result.stdout, result.describe()
    return read_truth(truth_file), support.json_document(out_file.read_text())


def start_stopped_workload(interpreter, workload, tmp_path):
    """The workload's process, stopped before it did anything (see the module's docstring)."""
    truth_file = tmp_path / "truth.json"
    process = subprocess.Popen(
        [interpreter.path, "-c", _LAUNCHER, str(workload), "--iterations", str(ITERATIONS),
         "--truth", str(truth_file)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=support.clean_environment(), start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        states = support.thread_states(process.pid)
        if states and all(state == "T" for state in states):
            return process, truth_file
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the workload launcher never stopped itself: %r" % (
                process.communicate()[1],))
        time.sleep(0.01)


def finish_workload(process, truth_file, timeout=120.0):
    """Reads the workload's stdout up to its `done` line, then stops it (it has written the
    truth) so that spyglass still sees it alive."""
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode(errors="replace")
        if not line:
            break
        lines.append(line)
        if line.startswith("done"):
            break
    assert lines and lines[-1].startswith("done"), "workload output: %r" % lines
    os.killpg(process.pid, signal.SIGSTOP)
    return read_truth(truth_file)


def kill_workload(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def test_run_accuracy(request, spyglass_bin, interpreter, workload, tmp_path):
    truth, document = run_workload_under_spyglass(spyglass_bin, interpreter, workload, tmp_path)
    assert document["mode"] == "wall" and document["rate_hz"] == 1000
    check(request, interpreter, truth, document, "spyglass run")


def test_attach_accuracy(request, spyglass_bin, interpreter, workload, tmp_path):
    """The interactive prompt, driven through a pipe: start, (the workload runs), stop,
    results --json."""
    process, truth_file = start_stopped_workload(interpreter, workload, tmp_path)
    prompt = None
    try:
        prompt = subprocess.Popen(
            [spyglass_bin, "attach", str(process.pid), "-f"] + support.WORKLOAD_TARGETS,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        prompt.stdin.write("start\n")
        prompt.stdin.flush()
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = prompt.stdout.readline()
            seen.append(line)
            if not line or line.startswith("profiling at"):
                break
        assert seen[-1].startswith("profiling at"), "prompt said %r; stderr %s" % (
            seen, prompt.stderr.read() if prompt.poll() is not None else "")
        os.killpg(process.pid, signal.SIGCONT)
        truth = finish_workload(process, truth_file)
        output, errors = prompt.communicate("stop\nresults --json\nexit\n", timeout=60)
    finally:
        if prompt and prompt.poll() is None:
            prompt.kill()
        kill_workload(process)
    assert prompt.returncode == 0, "attach exited %d\n%s\n%s" % (prompt.returncode, output,
                                                                 errors)
    assert "Traceback" not in errors
    check(request, interpreter, truth, support.json_document(output), "spyglass attach")


def runner_interpreter():
    return support.Interpreter("runner", sys.executable, tuple(sys.version_info[:3]))


def test_record_accuracy(request, spyglass_bin, workload, tmp_path):
    """record -p until the target exits: nothing measured is lost at its exit. (One interpreter:
    it reads the target as attach does.)"""
    interpreter = runner_interpreter()
    process, truth_file = start_stopped_workload(interpreter, workload, tmp_path)
    out_file = tmp_path / "results.json"
    record = None
    try:
        record = subprocess.Popen(
            [spyglass_bin, "record", "-p", str(process.pid), "-f"] + support.WORKLOAD_TARGETS +
            ["--format", "json", "-o", str(out_file)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        support.wait_for_threads(record.pid, 2)  # its sampling thread: it is profiling
        os.killpg(process.pid, signal.SIGCONT)
        output, errors = record.communicate(timeout=120)
    finally:
        if record and record.poll() is None:
            record.kill()
        kill_workload(process)
    assert record.returncode == 0, "record exited %d\n%s\n%s" % (record.returncode, output,
                                                                 errors)
    assert "exited" in errors, errors  # it says the target exited
    check(request, interpreter, read_truth(truth_file),
          support.json_document(out_file.read_text()), "spyglass record -p")


def test_cpu_mode_ignores_sleep(spyglass_bin, workload, tmp_path):
    """--mode cpu: idle_wait (a sleep) is near zero, heavy_computation still counts."""
    interpreter = runner_interpreter()
    truth, document = run_workload_under_spyglass(spyglass_bin, interpreter, workload, tmp_path,
                                                  extra=["--mode", "cpu"])
    rows = support.function_rows(document)
    print(accuracy_table(truth, rows))
    assert document["mode"] == "cpu"
    idle = rows["idle_wait"]["seconds"] or 0.0
    true_idle = truth["functions"]["idle_wait"]["seconds"]
    assert idle <= max(0.01, 0.05 * true_idle), "idle_wait %.4f s of CPU (slept %.4f s)" % (
        idle, true_idle)
    # On a busy machine much of heavy_computation's wall time is spent queued for a CPU, which
    # cpu mode rightly leaves out: only ask that it is seen.
    assert rows["heavy_computation"]["samples"] > 0, accuracy_table(truth, rows)


# A 60-deep recursion and a shallow function, taking turns, each spinning as long at its leaf.
_DEEP_AND_SHALLOW = r'''
import json, sys, time

def spin(n):
    total = 0
    for i in range(n):
        total += (i * i) % 7
    return total

def recurse(depth):
    return spin(2000) if depth == 0 else recurse(depth - 1)

def shallow():
    return spin(2000)

began = time.perf_counter()
inside = 0.0
while time.perf_counter() - began < float(sys.argv[1]):
    start = time.perf_counter()
    recurse(60)
    inside += time.perf_counter() - start
    shallow()
print(json.dumps({"recurse": inside}))
'''


def test_deep_stack_that_comes_and_goes(spyglass_bin, interpreter, tmp_path):
    """A deep stack that replaces a shallow one every few hundred µs is read as it is, at
    10 kHz. Reading its sixty new frames one system call at a time took long enough for the
    program to move on, and the re-read of that torn stack then landed in the shallow function:
    recurse read 8-37 % low, shallow as much high. Its pages are now read whole on a miss, the
    prefetch covers the last few distinct stacks (this one and the shallow one), a re-read fetches
    everything in one batch, and samples fall at random moments of their slot: on a fixed grid
    this 205 µs loop aliased with the 100 µs period and recurse read 7-13 % low."""
    script = tmp_path / "deep_and_shallow.py"
    script.write_text(_DEEP_AND_SHALLOW)
    out_file = tmp_path / "results.json"
    result = support.run_command(
        [spyglass_bin, "run", "--rate", "10000", "-f", "recurse", "shallow", "--format", "json",
         "-o", str(out_file), "--", interpreter.path, str(script), "2"], timeout=120)
    support.assert_success(result)
    truth = json.loads(result.stdout.strip().splitlines()[-1])["recurse"]
    rows = support.function_rows(support.json_document(out_file.read_text()))
    measured = rows["recurse"]["seconds"] or 0.0
    # Its bound at 10 kHz over a second of truth is about 1 %; 5 % leaves room for a busy machine.
    within = abs(measured - truth) <= 0.05 * truth + support.BOUND_FACTOR * rows["recurse"][
        "error_seconds"]
    if not within and interpreter.minor < (3, 11):
        # Open (issue 12, docs/accuracy.md): 3.8-3.10's frame objects make a fresh deep stack a
        # long read, often caught mid-change; its re-read lands later (7 % low in some runs).
        pytest.xfail("recurse measured %.3f s, truth %.3f s on %s: known gap (issue 12)" % (
            measured, truth, interpreter.test_id))
    assert within, (
        "recurse measured %.3f s, truth %.3f s (%+.1f %%); shallow %.3f s" % (
            measured, truth, 100 * (measured / truth - 1), rows["shallow"]["seconds"] or 0.0))


def _cpu_and_wall(truth_path):
    """(the thread's CPU seconds, wall seconds) that tests/programs/bursts.py wrote last."""
    cpu, wall = (float(x) for x in truth_path.read_text().split())
    return cpu, wall


def test_cpu_mode_counts_a_burst_from_its_start(interpreter, start_target, run_spyglass,
                                                tmp_path):
    """--mode cpu on a thread that sleeps 25 ms and then computes for 15 ms, over and over: the
    share of time spyglass puts in `burst` is the share of CPU time the program itself measured
    there (time.thread_time). A thread woken from a sleep counts as running from its first
    sample on, not from the scheduler tick that first moves its run time (this read 14 % low
    on every interpreter: the first tick comes up to 4 ms into each burst)."""
    truth_path = tmp_path / "bursts.txt"
    target = start_target(interpreter, "bursts.py", truth_path)
    deadline = time.monotonic() + 10
    while not truth_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    cpu_before, wall_before = _cpu_and_wall(truth_path)
    document = support.record_json(run_spyglass, target.pid, "burst", seconds="3", mode="cpu")
    cpu_after, wall_after = _cpu_and_wall(truth_path)
    measured = support.function_rows(document)["burst"]["seconds"] or 0.0
    share = measured / document["duration_seconds"]
    true_share = (cpu_after - cpu_before) / (wall_after - wall_before)
    # About 1,100 samples in `burst`: a 10 % band is three times their noise.
    print("%s: burst %.2f %% vs %.2f %%" % (interpreter.test_id, 100 * share, 100 * true_share))
    assert abs(share - true_share) <= 0.10 * true_share, (
        "%s: burst %.1f %% of the time in cpu mode, %.1f %% of it on a CPU by its own clock" % (
            interpreter.test_id, 100 * share, 100 * true_share))
