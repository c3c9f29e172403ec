"""The pattern table (tests/programs/patterns/table.json) inside the program it describes, in
exact mode, on every interpreter: the same rows the core's unit test and the spyglass command
check, so both modes choose the same functions. Malformed patterns are refused in one line."""

import json
import os
import sys

from conftest import REPO, run_python

sys.path.insert(0, os.path.join(REPO, "tests", "programs", "patterns"))
import table_check  # noqa: E402


def test_table_inside_the_program(interpreter, tmp_path):
    python, package = interpreter
    version = run_python(python, package, ["-c", "import sys; print(sys.version_info[:2])"])
    minor = tuple(int(part) for part in version.stdout.strip("()\n ").split(","))
    out = tmp_path / "results.json"
    args = ["-m", "spyglass", "run", "--format", "json", "-o", str(out)]
    for pattern in table_check.patterns(minor):
        args += ["-f", pattern]
    args += [table_check.PROGRAM, "--rounds", "2"]
    proc = run_python(python, package, args, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with open(out) as f:
        rows = {item["name"]: item for item in json.load(f)["functions"]}
    problems = table_check.mismatches(rows, minor)
    assert not problems, "\n".join(problems)


def test_malformed_patterns_are_refused(interpreter):
    python, package = interpreter
    for pattern in table_check.TABLE["malformed"]:
        proc = run_python(python, package, ["-m", "spyglass", "run", "-f", pattern,
                                            table_check.PROGRAM, "--rounds", "1"])
        assert proc.returncode == 2, (pattern, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("spyglass: ") and "is not a function pattern" in proc.stderr
        assert "Traceback" not in proc.stderr and "ready" not in proc.stdout, proc.stderr
