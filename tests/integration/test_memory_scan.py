"""The fallback for interpreters whose symbols cannot be used: scanning the interpreter's writable
memory for a runtime whose pointers check out (forced here with SPYGLASS_FORCE_SCAN=1, which
makes spyglass ignore `_PyRuntime` and `.PyRuntime`).

The scan must find the very runtime the symbol names. On 3.11 this is the hard case: obmalloc's
`usedpools` table is a row of circular lists whose pointers pass for a runtime, an interpreter and
a thread pointing back at it, and lies before `_PyRuntime` in memory; a scan that takes the first
structure that checks out dumps nothing sensible there."""

import json

from support import assert_success
from test_dump import KNOWN_STACK_THREADS, check_stack, json_thread_for, start_known_stack


def dump_json(run_spyglass, pid):
    result = run_spyglass(["dump", "--json", pid])
    assert_success(result)
    return json.loads(result.stdout)


def test_memory_scan_finds_the_runtime(interpreter, start_target, run_spyglass, monkeypatch):
    target = start_known_stack(start_target, interpreter)
    by_symbol = dump_json(run_spyglass, target.pid)["python"]
    assert by_symbol["found_by"] != "memory scan", by_symbol

    monkeypatch.setenv("SPYGLASS_FORCE_SCAN", "1")
    dump = dump_json(run_spyglass, target.pid)
    assert dump["python"]["found_by"] == "memory scan", dump["python"]
    assert dump["python"]["runtime_address"] == by_symbol["runtime_address"], (
        "the scan settled on %s, the symbol names %s" % (
            dump["python"]["runtime_address"], by_symbol["runtime_address"]))
    assert dump["python"]["version"] == by_symbol["version"], dump["python"]
    assert len(dump["threads"]) == KNOWN_STACK_THREADS, json.dumps(dump, indent=1)
    for expected_thread in target.expected["threads"]:
        check_stack(json_thread_for(dump, expected_thread)["frames"], expected_thread,
                    check_details=True)
