"""`spyglass dump PID [--json]` against real interpreters, compared with what each interpreter
itself reports about its stacks (tests/programs/known_stack.py, deep_stack.py, busy.py)."""

import json
import re
import time

import support
from support import assert_success, format_stack, frame_mismatches, parse_text_dump

KNOWN_STACK_THREADS = 2
DEEP_STACK_DEPTH = 100


def start_known_stack(start_target, interpreter):
    target = start_target(interpreter, "known_stack.py")
    target.wait_until_all_threads_sleep(KNOWN_STACK_THREADS)
    return target


def check_stack(actual_frames, expected_thread, check_details):
    problems = frame_mismatches(actual_frames, expected_thread["frames"], check_details)
    assert not problems, "thread %r:\n  %s\ndumped:\n%s\nexpected:\n%s" % (
        expected_thread["name"], "\n  ".join(problems), format_stack(actual_frames),
        format_stack(expected_thread["frames"]))


def text_thread_for(dump, expected_thread):
    """The text block of a thread, found by native id (decimal) or thread id (hex)."""
    for thread in dump.threads:
        if thread.label.startswith("0x"):
            if int(thread.label, 16) == expected_thread["ident"]:
                return thread
        elif int(thread.label) == expected_thread["native_id"]:
            return thread
    raise AssertionError("no thread %r (native id %d, thread id 0x%x) among %r" % (
        expected_thread["name"], expected_thread["native_id"], expected_thread["ident"],
        [thread.label for thread in dump.threads]))


def json_thread_for(dump, expected_thread):
    matches = [thread for thread in dump["threads"]
               if thread.get("thread_id") == expected_thread["ident"]]
    assert len(matches) == 1, "thread %r (thread id %d): %d matches among %r" % (
        expected_thread["name"], expected_thread["ident"], len(matches),
        [thread.get("thread_id") for thread in dump["threads"]])
    return matches[0]


def test_text_dump_shows_every_frame(interpreter, start_target, run_spyglass):
    target = start_known_stack(start_target, interpreter)
    result = run_spyglass(["dump", target.pid])
    assert_success(result)
    dump = parse_text_dump(result.stdout)

    assert dump.pid == target.pid, result.stdout
    assert dump.binary, result.stdout
    assert len(dump.threads) == KNOWN_STACK_THREADS, result.stdout
    for expected_thread in target.expected["threads"]:
        thread = text_thread_for(dump, expected_thread)
        check_stack(thread.frames, expected_thread, check_details=False)
        assert not thread.holds_gil, "%r is blocked in read(), without the GIL\n%s" % (
            expected_thread["name"], result.stdout)
    assert_left_running(target)


def test_json_dump_matches_the_interpreter(interpreter, start_target, run_spyglass):
    target = start_known_stack(start_target, interpreter)
    result = run_spyglass(["dump", "--json", target.pid])
    assert_success(result)
    dump = json.loads(result.stdout)

    assert dump["pid"] == target.pid
    python = dump["python"]
    assert isinstance(python["binary"], str) and python["binary"], python
    assert re.match(r"^0x[0-9a-f]+$", python["runtime_address"]), python
    assert isinstance(python["found_by"], str) and python["found_by"], python

    assert len(dump["threads"]) == KNOWN_STACK_THREADS, result.stdout
    for expected_thread in target.expected["threads"]:
        thread = json_thread_for(dump, expected_thread)
        assert thread["native_id"] in (None, expected_thread["native_id"]), thread
        assert thread["name"] in (None, expected_thread["name"],
                                  expected_thread["native_name"]), thread
        assert thread["holds_gil"] is not True, "%r is blocked in read(), without the GIL" % (
            expected_thread["name"])
        assert thread["interpreter_id"] == 0, thread
        assert thread["truncated"] is False, thread
        check_stack(thread["frames"], expected_thread, check_details=True)


def test_dump_names_the_exact_python_version(interpreter, start_target, run_spyglass):
    """The full X.Y.Z, as the interpreter itself reports it (`sys.version_info`)."""
    target = start_target(interpreter, "idle.py")
    expected = interpreter.version_text
    result = run_spyglass(["dump", "--json", target.pid])
    assert_success(result)
    assert json.loads(result.stdout)["python"]["version"].startswith(expected), result.stdout
    result = run_spyglass(["dump", target.pid])
    assert_success(result)
    assert parse_text_dump(result.stdout).version.startswith(expected), result.stdout


def test_second_thread_is_dumped(interpreter, start_target, run_spyglass):
    target = start_known_stack(start_target, interpreter)
    result = run_spyglass(["dump", "--json", target.pid])
    assert_success(result)
    dump = json.loads(result.stdout)
    second = target.expected["threads"][1]
    assert second["name"] == "second-thread"
    thread = json_thread_for(dump, second)
    assert thread["frames"] and thread["frames"][0]["name"] == "worker_wait", thread
    if thread["name"] is not None:
        assert thread["name"] == "second-thread", thread


def dump_until(run_spyglass, args, condition, timeout=10.0):
    """Dumps until `condition(result)` holds: for targets that only print `ready` on their way to
    the state the test wants. Each dump must succeed."""
    deadline = time.monotonic() + timeout
    while True:
        result = run_spyglass(args)
        assert_success(result)
        if condition(result):
            return result
        assert time.monotonic() < deadline, "the target never reached the expected state\n" + (
            result.describe())
        time.sleep(0.01)


def test_busy_thread_holds_the_gil(interpreter, start_target, run_spyglass):
    target = start_target(interpreter, "busy.py")

    def spinning(result):
        threads = json.loads(result.stdout)["threads"]
        return [frame["name"] for frame in threads[0]["frames"]] == ["spin", "<module>"]

    result = dump_until(run_spyglass, ["dump", "--json", target.pid], spinning)
    threads = json.loads(result.stdout)["threads"]
    assert len(threads) == 1, result.stdout
    assert threads[0]["holds_gil"] is True, result.stdout

    result = run_spyglass(["dump", target.pid])
    assert_success(result)
    assert parse_text_dump(result.stdout).threads[0].holds_gil, result.stdout
    assert_left_running(target)


def assert_left_running(target):
    """A dump must not leave the target stopped (a ptrace or SIGSTOP left behind)."""
    time.sleep(0.05)
    states = support.thread_states(target.pid)
    assert states and not any(state in "tT" for state in states), (
        "target threads left in states %r after the dump" % states)


def test_deep_stack_is_dumped_whole(interpreter, start_target, run_spyglass, request):
    target = start_target(interpreter, "deep_stack.py", DEEP_STACK_DEPTH)
    target.wait_until_all_threads_sleep(1)
    expected_thread = target.expected["threads"][0]
    assert len(expected_thread["frames"]) == DEEP_STACK_DEPTH + 2

    result = run_spyglass(["dump", "--json", target.pid])
    assert_success(result)
    support.record_timing(request.node.callspec.id, "dump --json, %d frames" % (
        len(expected_thread["frames"])), result.seconds)
    thread = json.loads(result.stdout)["threads"][0]
    assert thread["truncated"] is False
    check_stack(thread["frames"], expected_thread, check_details=True)

    result = run_spyglass(["dump", target.pid])
    assert_success(result)
    support.record_timing(request.node.callspec.id, "dump (text), %d frames" % (
        len(expected_thread["frames"])), result.seconds)
    check_stack(parse_text_dump(result.stdout).threads[0].frames, expected_thread,
                check_details=False)
