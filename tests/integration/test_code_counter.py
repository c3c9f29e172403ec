"""The code counter (docs/versions.md, "The code counter"): from 3.12 a code object met again
while the counter that numbers new ones has not moved is not read again. Checked on real
processes: the proof is taken where it holds, code objects are read where it does not (before
3.12, and from 3.13 with a second interpreter, which numbers its own), and names stay right."""

import re
import subprocess

import pytest

from support import record_json


def has_symbol(interpreter, name) -> bool:
    """Whether the interpreter's binary or libpython has `name` in a symbol table (3.12 finds
    its code counter by symbol: a stripped build has none)."""
    libs = subprocess.run(
        [interpreter.path, "-c",
         "import sysconfig; print(sysconfig.get_config_var('LIBDIR') or '')"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False).stdout.strip()
    candidates = [str(interpreter.path)]
    if libs:
        candidates.append("%s/libpython%s.so.1.0" % (libs, interpreter.minor_text))
    for path in candidates:
        out = subprocess.run(["nm", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, check=False).stdout
        if re.search(r"\b%s\b" % re.escape(name), out):
            return True
    return False


def test_code_objects_are_proven_from_3_12(interpreter, start_target, run_spyglass):
    target = start_target(interpreter, "busy.py")
    counts = record_json(run_spyglass, target.pid, "spin")["code_objects"]
    assert counts["read"] > 0, counts
    if interpreter.minor < (3, 12):
        assert counts["proven"] == 0, counts
        return
    if interpreter.minor == (3, 12) and not has_symbol(interpreter, "_Py_next_func_version"):
        pytest.skip("%s: no _Py_next_func_version in its symbol table (stripped): code objects "
                    "are read each sample" % interpreter.test_id)
    # A thousand samples of one unchanging stack: read a few times, then proven.
    assert counts["proven"] > 10 * counts["read"], counts
    # A program that makes no code objects never shows the counter wrong.
    assert counts["counter_faults"] == 0 and not counts["counter_off"], counts


def test_no_proof_with_a_second_interpreter(interpreter, start_target, run_spyglass):
    if interpreter.minor < (3, 12):
        pytest.skip("no code counter before 3.12")
    target = start_target(interpreter, "second_interpreter.py")
    data = record_json(run_spyglass, target.pid, "churned_*")
    counts = data["code_objects"]
    if interpreter.minor >= (3, 13):
        assert counts["proven"] == 0, counts  # each interpreter numbers its own code
    # Names stay right through the churn: every sample lands in one of the four functions.
    matched = [f for f in data["functions"] if f["samples"]]
    assert matched, data["functions"]
