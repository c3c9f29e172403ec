"""The pattern table (tests/programs/patterns/table.json) through the spyglass command against
the running program it describes: every pattern form, on every interpreter, matches the
functions the table says (the same table the core's unit test and exact mode's test run).
Also: malformed patterns are refused with one line, a glob's matched functions carry figures of
their own, and on real library code (sympy) globs list each function, re-exported names
(sympy.factor, json.dumps) match where they are defined, and the table fits 80 columns."""

import os
import signal
import subprocess
import sys

import pytest

import support
from interpreters import clean_environment

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


# --- Real library code: sympy --------------------------------------------------------------


def _sympy_environment():
    """(python, environment) to run sympy_target.py with: the per-interpreter package
    environments of tests/lib/venvs.py (tests/realprograms/requirements.txt) when this tree has
    them, else the tests' own interpreter when it has sympy; skips when neither."""
    python = support.runner_python()
    lib = support.REPO_ROOT / "tests" / "lib"
    requirements = support.REPO_ROOT / "tests" / "realprograms" / "requirements.txt"
    if (lib / "venvs.py").is_file() and requirements.is_file():
        sys.path.insert(0, str(lib))
        import venvs
        try:
            found = venvs.environment(python, "%d.%d.%d" % sys.version_info[:3], requirements)
        except venvs.Unavailable as unavailable:
            pytest.skip("sympy environment: %s" % unavailable)
        return python, found.env(clean_environment())
    check = subprocess.run([python, "-c", "import sympy"], capture_output=True, check=False)
    if check.returncode != 0:
        pytest.skip("sympy is not installed for %s (and tests/lib/venvs.py is not here)" % python)
    return python, clean_environment()


@pytest.fixture
def sympy_program():
    python, env = _sympy_environment()
    process = subprocess.Popen([python, str(support.PROGRAMS_DIR / "patterns" / "sympy_target.py")],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        assert process.stdout.readline().startswith(b"ready"), "sympy_target.py did not start"
        yield process.pid
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_sympy_globs_and_reexported_names(sympy_program, run_spyglass, spyglass_bin):
    pid = sympy_program
    result = run_spyglass(["record", "-p", pid, "-d", "2", "--format", "json", "-f",
                           "sympy.polys.*", "sympy.factor", "json.dumps", "sympy.factr"],
                          timeout=60)
    support.assert_success(result)
    document = support.json_document(result.stdout)
    rows = support.function_rows(document)
    # A re-exported name matches where it is defined.
    factor = rows["sympy.factor"]
    assert factor["has_data"], factor
    assert [(m["function"], m["label"].split(" (")[1].rsplit(":", 1)[0])
            for m in factor["matches"]] == [("factor", "sympy/polys/polytools.py")], factor
    dumps = rows["json.dumps"]["matches"]
    assert [(m["function"], m["label"].split(" (")[1].rsplit(":", 1)[0]) for m in dumps] == [
        ("dumps", "json/__init__.py")], dumps
    # A glob: each function its own figures, heaviest first, named from its top package.
    glob = rows["sympy.polys.*"]
    assert len(glob["matches"]) > 20, glob["matches"]
    seconds = [m["seconds"] for m in glob["matches"]]
    assert seconds == sorted(seconds, reverse=True)
    assert all(m["label"].split(" (")[1].startswith("sympy/polys/") for m in glob["matches"])
    # A name that matches nothing gets the closest names seen.
    assert any("'sympy.factr' matched none" in note and "closest: factor" in note
               for note in document["notes"]), document["notes"]
    # The table at 80 columns: the pattern's row, its 10 heaviest functions, the rest folded.
    table = support.run_command(["env", "COLUMNS=80", spyglass_bin, "record", "-p", str(pid),
                                 "-d", "1", "-f", "sympy.polys.*"], timeout=60)
    support.assert_success(table)
    lines = table.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), table.stdout
    assert sum("↳" in line for line in lines) == 10, table.stdout
    assert any("… " in line and " more " in line for line in lines), table.stdout
