"""Fixtures of the robustness tests: the integration tests' fixtures (spyglass_bin, run_spyglass,
start_target, ...) shared by loading tests/integration/conftest.py, plus `robust_interpreter`:
these tests are heavy, so they run on three interpreters only: the newest local one with frame
objects (3.8-3.10) and the newest with interpreter frames (3.11+), which covers both walkers,
and the newest supported version (Debian unstable's, src/cpython/versions.toml; skipped when it
cannot be fetched), whose _Py_DebugOffsets shape is the newest. Set SPYGLASS_ROBUST_ALL=1 to run
them on every supported local interpreter."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
INTEGRATION = HERE.parent / "integration"
PROGRAMS = HERE / "programs"
sys.path.insert(0, str(INTEGRATION))

_spec = importlib.util.spec_from_file_location("integration_conftest", INTEGRATION / "conftest.py")
_shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shared)

import support  # noqa: E402  (tests/integration/support.py, on the path above)

spyglass_bin = _shared.spyglass_bin
run_spyglass = _shared.run_spyglass
start_target = _shared.start_target
pytest_report_header = _shared.pytest_report_header
pytest_terminal_summary = _shared.pytest_terminal_summary


def newest_fetched():
    """Debian unstable's build of the newest supported version, or None (with a line saying why
    in the summary) when it cannot be had."""
    import interpreters  # tests/lib, on the path once the integration conftest is loaded
    if os.environ.get("SPYGLASS_SKIP_FETCH") == "1":
        return None
    newest = (3, interpreters.SUPPORTED_MINORS[-1])
    if newest[1] not in interpreters.DEBIAN_UNSTABLE_MINORS:
        return None
    result = interpreters.fetch_debian_unstable([newest])[newest]
    if result.interpreter is None:
        support.NOTES.append("CPython %d.%d skipped: %s" % (newest + (result.problem,)))
    return result.interpreter


def chosen_interpreters():
    supported = [i for i in _shared.local_interpreters() if i.supported]
    if os.environ.get("SPYGLASS_ROBUST_ALL") == "1":
        return supported
    chosen = []
    for older in (True, False):
        group = [i for i in supported if (i.minor < (3, 11)) == older]
        if group:
            chosen.append(max(group, key=lambda i: (i.version, i.source == "pyenv")))
    fetched = newest_fetched()
    if fetched is not None and all(i.minor != fetched.minor for i in chosen):
        chosen.append(fetched)
    return chosen


def pytest_generate_tests(metafunc):
    if "robust_interpreter" in metafunc.fixturenames:
        found = chosen_interpreters()
        if found:
            metafunc.parametrize("robust_interpreter", found, ids=[i.test_id for i in found])
        else:
            metafunc.parametrize("robust_interpreter", [pytest.param(None, marks=pytest.mark.skip(
                reason="no supported CPython found (see tests/lib/interpreters.py)"))],
                ids=["none-found"])


def run_to_exit(command, attempt: int, timeout: float):
    """Runs a spyglass command that must end by itself (with the program it runs): returns its
    exit status, stdout and stderr as text; a hang fails the test, naming the attempt."""
    try:
        completed = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail("attempt %d: %s hung (no exit within %g s)" % (
            attempt, " ".join(str(part) for part in command[1:3]), timeout))
    return (completed.returncode, completed.stdout.decode(errors="replace"),
            completed.stderr.decode(errors="replace"))


def program(name: str) -> str:
    """Absolute path of a program in tests/robustness/programs (start_target accepts it)."""
    return str(PROGRAMS / name)
