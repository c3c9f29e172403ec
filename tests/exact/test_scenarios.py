"""Behaviour of exact mode inside each interpreter: recursion, generators, coroutines,
exceptions, threads, late definitions, add/remove on the stack, stop mid-call, the decorator and
the Results object. One child process per interpreter runs tests/exact/scenarios.py."""

import json
import os
import subprocess

import pytest

from conftest import HERE, run_python

_cache = {}


@pytest.fixture
def observed(interpreter):
    python, package = interpreter
    if python not in _cache:
        proc = run_python(python, package, [os.path.join(HERE, "scenarios.py")], timeout=120)
        assert proc.returncode == 0, proc.stderr
        # One message for the simulated internal failure, nothing else.
        assert proc.stderr.count("spyglass: exact mode disabled") == 1, proc.stderr
        _cache[python] = json.loads(proc.stdout.strip().splitlines()[-1])
    return _cache[python]


def scenario(observed, name):
    data = observed[name]
    assert "error" not in data, data.get("traceback")
    return data


def test_recursion_counted_once(observed):
    data = scenario(observed, "recursion")
    assert data["calls"] == 5  # outermost calls only, as the truth counts them
    assert 0 < data["seconds"] <= data["wall"]
    assert data["self"] == pytest.approx(data["seconds"], rel=1e-6)


def test_self_time_excludes_chosen_callees(observed):
    data = scenario(observed, "self_time")
    assert 0.05 <= data["outer"] <= data["outside"]
    assert data["inner"] >= 0.03
    assert data["outer_self"] == pytest.approx(data["outer"] - data["inner"], rel=1e-6)


def test_generator_time_while_running(observed):
    data = scenario(observed, "generator")
    assert data["calls"] == 1
    assert 0.005 <= data["seconds"] < 0.05 - 0.005  # not the 50 ms spent suspended
    assert data["seconds"] < data["outside"]


def test_coroutine_running_and_wall_time(observed):
    data = scenario(observed, "coroutine")
    assert data["calls"] == 1
    assert 0.01 <= data["seconds"] < data["wall"]
    assert 0.06 <= data["wall"] <= data["outside"]
    assert data["p50"] == pytest.approx(data["wall"], rel=0.07)  # histogram bucket precision


def test_exceptions_end_calls(observed):
    data = scenario(observed, "exceptions")
    assert data == {"fails": 11, "catches": 1}


def test_threads_before_and_after_start(observed):
    data = scenario(observed, "threads")
    assert data["calls"] == 8
    assert data["threads"] == 3
    assert data["per_thread_calls"] == [1, 3, 4]


def test_functions_defined_after_start_and_patterns(observed):
    data = scenario(observed, "defined_after_start")
    assert data["late_function"] == 3
    assert data["Late.method"] == 3
    assert data["__main__:late_qualified"] == 3
    assert data["scenarios.py:late_by_file"] == 3
    assert data["late_glob_*"] == 6
    assert data["__main__.late_dotted"] == 3
    # A script's module also answers to its file name (scenarios.py runs as __main__).
    assert data["scenarios:late_function"] == 3


def test_add_remove_while_on_stack(observed):
    data = scenario(observed, "add_remove_on_stack")
    assert data["host"] == 2
    assert data["guest_seen"] == [1, 1]  # removing an entry drops its figures
    assert data["guest_listed"] is False


def test_add_while_running(observed):
    data = scenario(observed, "add_while_running")
    assert data == {"added": ["added_later"], "calls": 3}


def test_stop_mid_call(observed):
    data = scenario(observed, "stop_mid_call")
    assert data["calls"] == 0  # not finished when stopped: time kept, no call counted
    assert data["seconds"] >= 0.01
    assert data["later"] == 1


def test_decorator_marks_without_wrapping(observed):
    data = scenario(observed, "decorator")
    assert data["same_code"] and data["no_wrapped"] and data["identity"] and data["pickled_same"]
    assert data["signature"] == "(a, b=2, *args, c, **kwargs)"
    assert data["doc"] == "docstring"
    assert "scenarios_helper:helper_traced" in data["names"]
    assert data["calls"] == 4
    assert [row for row in data["named_rows"] if "decorated" in row[0]] == [["decorated", 1]]


def test_alongside_cprofile(observed):
    data = scenario(observed, "with_cprofile")
    if "skipped" in data:
        pytest.skip(data["skipped"])
    assert data["spyglass"] == 1
    assert data["cprofile"] == [177]  # fib(10) makes 177 calls: cProfile still sees them all


def test_internal_failure_disables_quietly(observed, interpreter):
    data = scenario(observed, "internal_failure")
    assert data["value"] == 1  # the program went on
    assert data["running"] is False  # uninstalled at the next safe point
    assert data["fib"] == 1  # figures before the failure are kept
    assert any("disabled" in note for note in data["notes"])
    assert data["restarted"] is False  # refuses to start again, with an exception to the caller


def test_results_object(observed):
    data = scenario(observed, "results_api")
    assert data["mode"] == "exact"
    assert data["json_roundtrip"]
    for key in ("name", "calls", "seconds", "self_seconds", "latency"):
        assert key in data["keys"]
    assert "fib" in data["table"] and "Calls" in data["table"]
    assert data["never"]["has_data"] is False and data["never"]["calls"] == 0


def test_backend_by_version(observed, interpreter):
    python, _ = interpreter
    backend = observed["info"]["backend"]
    version = subprocess.check_output([python, "-c", "import sys; print(sys.version_info[1])"],
                                      text=True)
    if int(version) >= 12:
        assert backend.startswith("sys.monitoring")
    elif os.environ.get("SPYGLASS_EXACT_BACKEND") == "profile":  # the suite run on the fallback
        assert backend == "profile hook"
    else:
        assert backend == "eval-frame function (PEP 523)"
