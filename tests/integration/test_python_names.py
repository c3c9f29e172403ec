"""Python's own names, read from the target (issue 17): threading.Thread.name in `dump`, the
prompt's `threads` and per-thread results (before: the kernel's name, "python3" for every
thread), and `dump --locals` (each frame's local variables, short and bounded). Every
interpreter, on tests/programs/named_threads.py: two threads named worker-0 and worker-1, the
second renamed after it started, waiting in a function whose locals are known."""

import json
import subprocess

import support

# What wait_here's locals look like for worker-0 (number is 42 + the worker's index).
EXPECTED_LOCALS = {
    "number": "42",
    "text": "'hello\\n\\'quoted\\''",
    "ratio": "2.5",
    "nothing": "None",
    "flag": "True",
    "items": "<dict of 2 items>",
    "negative": "-7",
    "blob": "b'\\x00bytes'",
}


def test_dump_names_and_locals(interpreter, start_target, run_spyglass):
    target = start_target(interpreter, "named_threads.py")
    result = run_spyglass(["dump", target.pid, "--json", "--locals"])
    support.assert_success(result)
    threads = json.loads(result.stdout)["threads"]
    names = sorted(t["name"] for t in threads)
    assert names == ["MainThread", "renamed-worker", "worker-0"], names
    worker = next(t for t in threads if t["name"] == "worker-0")
    frame = next(f for f in worker["frames"] if f["name"] == "wait_here")
    local_vars = frame["locals"]
    for name, value in EXPECTED_LOCALS.items():
        assert local_vars.get(name) == value, (name, local_vars)
    assert local_vars["big"] == "<int of 5 digits>", local_vars
    assert local_vars["obj"].startswith("<Payload object at 0x"), local_vars
    assert local_vars["event"].startswith("<Event object at 0x"), local_vars
    # Text form: the same, under each frame.
    text = run_spyglass(["dump", target.pid, "--locals"])
    support.assert_success(text)
    assert 'Thread %d "MainThread"' % target.pid in text.stdout, text.stdout
    assert '      number = 43\n' in text.stdout and '      ratio = 2.5\n' in text.stdout


def test_threads_and_per_thread_results(interpreter, start_target, spyglass_bin, run_spyglass):
    target = start_target(interpreter, "named_threads.py")
    out = subprocess.run([spyglass_bin, "attach", str(target.pid)], input="threads\nexit\n",
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for name in ("MainThread", "worker-0", "renamed-worker"):
        assert " %s " % name in out.stdout, out.stdout
    result = run_spyglass(["record", target.pid, "-f", "wait_here", "-d", "0.3", "--format",
                           "json"])
    support.assert_success(result)
    function = support.function_rows(json.loads(result.stdout))["wait_here"]
    assert sorted(t["name"] for t in function["threads"]) == ["renamed-worker", "worker-0"], \
        function["threads"]
