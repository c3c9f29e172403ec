"""Ctrl-C and SIGTERM stop `record` cleanly with the results gathered; output into a closed pipe
ends quietly; `--blocking` never leaves the target stopped, even when spyglass is SIGKILLed in
the middle of a sample."""

import os
import signal
import subprocess
import time

import pytest

import support
from conftest import program, run_to_exit


def start_spyglass(spyglass_bin, args, **kwargs):
    return subprocess.Popen([spyglass_bin] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                            stdout=kwargs.pop("stdout", subprocess.PIPE),
                            stderr=subprocess.PIPE, **kwargs)


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
def test_stop_signal_prints_results(robust_interpreter, start_target, spyglass_bin,
                                    signal_number):
    target = start_target(robust_interpreter, program("lifecycle.py"), "exit", 120)
    spyglass = start_spyglass(spyglass_bin, ["record", "-p", target.pid, "-r", "500", "-f",
                                             "spin"])
    time.sleep(2.0)
    spyglass.send_signal(signal_number)
    try:
        stdout, stderr = spyglass.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        spyglass.kill()
        raise AssertionError("record did not stop within 20 s of %s" % signal_number.name)
    text = stdout.decode(errors="replace")
    errors = stderr.decode(errors="replace")
    assert spyglass.returncode in (0, 128 + signal_number), (spyglass.returncode, errors)
    assert "spin" in text, "no results printed after %s:\n%s\n%s" % (
        signal_number.name, text, errors)
    assert target.proc.poll() is None, "the target died"


@pytest.mark.parametrize("command", ["dump", "record"])
def test_closed_pipe_ends_quietly(robust_interpreter, start_target, spyglass_bin, command):
    """Like `spyglass dump PID | head -0`: the reader is gone before spyglass writes."""
    target = start_target(robust_interpreter, program("many_threads.py"), 50)
    read_end, write_end = os.pipe()
    os.close(read_end)
    args = ["dump", target.pid] if command == "dump" else [
        "record", "-p", target.pid, "-r", "200", "-d", "1", "-f", "blocked_worker"]
    spyglass = start_spyglass(spyglass_bin, args, stdout=write_end)
    os.close(write_end)
    _, stderr = spyglass.communicate(timeout=60)
    errors = stderr.decode(errors="replace")
    assert spyglass.returncode == 0, "exit %d: %s" % (spyglass.returncode, errors)
    assert errors.strip() == "", errors


def test_closed_pipe_through_head(robust_interpreter, start_target, spyglass_bin):
    """The shell form: `spyglass dump PID | head -1` with pipefail shows spyglass's status."""
    target = start_target(robust_interpreter, program("many_threads.py"), 300)
    script = 'set -o pipefail; "$0" dump "$1" | head -1 >/dev/null'
    completed = subprocess.run(["bash", "-c", script, spyglass_bin, str(target.pid)],
                               stderr=subprocess.PIPE, timeout=60)
    errors = completed.stderr.decode(errors="replace")
    assert completed.returncode == 0, "exit %d: %s" % (completed.returncode, errors)
    assert errors.strip() == "", errors


def blocking_supported(spyglass_bin) -> bool:
    completed = subprocess.run([spyglass_bin, "record", "--help"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=30)
    return b"--blocking" in completed.stdout


def test_blocking_never_leaves_target_stopped(robust_interpreter, start_target, spyglass_bin):
    """SIGKILL of spyglass at many points of a `--blocking` run: afterwards no thread of the
    target is stopped (T, t) and it keeps running."""
    if not blocking_supported(spyglass_bin):
        pytest.skip("`spyglass record --blocking` is not implemented yet")
    target = start_target(robust_interpreter, program("many_threads.py"), 20)
    for attempt in range(8):
        spyglass = start_spyglass(spyglass_bin, ["record", "-p", target.pid, "--blocking",
                                                 "-r", "1000", "-d", "5"])
        time.sleep(0.3 + 0.17 * attempt)
        early_exit = spyglass.poll()
        spyglass.kill()
        _, stderr = spyglass.communicate(timeout=20)
        if early_exit is not None and early_exit != 0:
            pytest.fail("record --blocking failed: " + stderr.decode(errors="replace"))
        # The kernel detaches a dead tracer's tracees at once; allow a moment for the exit.
        deadline = time.monotonic() + 2.0
        states = support.thread_states(target.pid)
        while time.monotonic() < deadline and any(s in "tT" for s in states):
            time.sleep(0.02)
            states = support.thread_states(target.pid)
        assert states, "the target died"
        assert not any(s in "tT" for s in states), (
            "attempt %d: threads left stopped after SIGKILL: %r" % (attempt, states))
    # And it still runs: a dump sees all its threads.
    result = support.run_command([spyglass_bin, "dump", str(target.pid)], timeout=30)
    support.assert_success(result)


def test_run_blocking_finishes_and_keeps_exit_status(robust_interpreter, spyglass_bin):
    """`run --blocking` ptraces its own child: the thread reaping the child used to take the
    ptrace stops meant for the sampler, which then waited for ever (a hang within the first
    samples). It must profile to the end, print the results and exit with the program's
    status, several times in a row (the race was decided by which thread the kernel woke)."""
    if not blocking_supported(spyglass_bin):
        pytest.skip("`spyglass record --blocking` is not implemented yet")
    for attempt in range(3):
        command = [spyglass_bin, "run", "--blocking", "-r", "1000", "-f", "spin", "--",
                   robust_interpreter.path, program("lifecycle.py"), "exit-status", "1.5"]
        returncode, text, errors = run_to_exit(command, attempt, 60)
        assert returncode == 3, (attempt, returncode, errors)
        assert "spin" in text, errors
