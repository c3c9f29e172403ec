"""The pattern table (tests/programs/patterns/table.json) through the spyglass command against
the running program it describes: every pattern form, on every interpreter, matches the
functions the table says (the same table the core's unit test and exact mode's test run).
Also: malformed patterns are refused with one line, and a glob's matched functions carry
figures of their own."""

import sys

import support

sys.path.insert(0, str(support.PROGRAMS_DIR / "patterns"))
import table_check  # noqa: E402

PROGRAM = "patterns/pattern_target.py"


def test_table_against_the_running_program(interpreter, start_target, run_spyglass):
    target = start_target(interpreter, PROGRAM)
    patterns = table_check.patterns(interpreter.minor)
    # 2 s at 1 kHz: each function of the program (about 8 % of its time each) is seen hundreds
    # of times, so a function missing from a row's matches is the pattern's doing.
    result = run_spyglass(["record", "-p", target.pid, "-d", "2", "--format", "json", "-f"] +
                          patterns, timeout=60)
    support.assert_success(result)
    document = support.json_document(result.stdout)
    rows = support.function_rows(document)
    problems = table_check.mismatches(rows, interpreter.minor)
    assert not problems, "\n".join(problems) + "\n" + result.describe()
    # Each matched function of a glob has its own figures, heaviest first.
    for row in rows.values():
        if len(row["matches"]) < 2:
            continue
        seconds = [match["seconds"] for match in row["matches"]]
        assert seconds == sorted(seconds, reverse=True), row
        for match in row["matches"]:
            assert match["samples"] > 0 and 0 < match["seconds"] <= row["seconds"] + 1e-9, match
            assert {"label", "function", "file", "line", "error_seconds", "share"} <= set(match)


def test_malformed_patterns_are_refused(start_target, run_spyglass):
    python = support.runner_python()
    target = support.Script(python, str(support.PROGRAMS_DIR / PROGRAM), [])
    try:
        for pattern in table_check.TABLE["malformed"]:
            result = run_spyglass(["record", "-p", target.pid, "-d", "1", "-f", pattern])
            line = support.assert_clean_failure(result, support.EXIT_USAGE)
            assert "is not a function pattern" in line, result.describe()
    finally:
        target.stop()
