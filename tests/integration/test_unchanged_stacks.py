"""Thread stacks known unchanged (docs/versions.md, "The GIL's count of changes"): the stack of
a thread that has not taken the GIL since it was read is not read again. Checked on real
processes: waiting threads are taken unread and still show where they wait, on every
interpreter; with a second interpreter (3.12+) every stack is read. That a thread's stack is
read anew once it moves on is the corpus's thread_pool program (test_real_programs.py), whose
workers time their own waits."""

import pytest

from support import record_json


def test_waiting_threads_are_not_read_again(interpreter, start_target, run_spyglass):
    # Three threads waiting: the GIL's last holder is read every sample, the other two once.
    target = start_target(interpreter, "named_threads.py")
    data = record_json(run_spyglass, target.pid, "wait_here")
    counts = data["thread_stacks"]
    assert counts["unchanged"] > counts["read"], counts
    # Both workers wait in wait_here in every sample, read or not.
    waiting = [f for f in data["functions"] if f["name"] == "wait_here"]
    assert waiting and waiting[0]["samples"] == 2 * data["samples"], (waiting, data["samples"])


def test_a_still_program_costs_one_read_a_sample(interpreter, start_target, run_spyglass):
    # Nothing changes: past the first walks (which read names and line tables), every sample is
    # one batched system call, the prefetch. Two runs of different lengths on the same target:
    # the start-up's reads are the same in both, the difference is the samples'.
    target = start_target(interpreter, "named_threads.py")
    runs = [record_json(run_spyglass, target.pid, "wait_here", seconds=seconds)
            for seconds in ("0.5", "1.5")]
    samples = runs[1]["samples"] - runs[0]["samples"]
    calls = runs[1]["read_calls"] - runs[0]["read_calls"]
    assert samples > 500 and calls <= 1.02 * samples, (calls, samples)


def test_every_stack_is_read_with_a_second_interpreter(interpreter, start_target, run_spyglass):
    if interpreter.minor < (3, 12):
        pytest.skip("the test program needs the interpreters module of 3.12+")
    target = start_target(interpreter, "second_interpreter.py")
    counts = record_json(run_spyglass, target.pid, "churned_*")["thread_stacks"]
    assert counts["read"] > 0 and counts["unchanged"] == 0, counts
