"""Fixtures of the integration tests: spyglass against real Python processes.

Tests taking the `interpreter` fixture run once per supported CPython this machine has (see
tests/lib/interpreters.py), with ids like `pyenv-3.12.1`, `debian-3.11.2`, `debian-unstable-3.15`:
the minor versions src/cpython/versions.toml lists under debian_unstable (3.14, 3.15) are
fetched once per session by scripts/fetch-python.sh, and skipped with a line saying why when that
fails (no network, registry unreachable); each other supported minor version the machine lacks
shows up as a skip that says how to get it. Tests taking
`unsupported_interpreter` run once per pyenv interpreter spyglass refuses (2.7, 3.6, 3.7...).

Run one interpreter's tests with `-k pyenv-3.12` (any part of an id).

Environment:
  SPYGLASS_BIN             the spyglass command (default: <repo>/build/spyglass)
  SPYGLASS_FETCH_TIMEOUT   seconds allowed to scripts/fetch-python.sh (default 600)
  SPYGLASS_SKIP_FETCH=1    fetch nothing (the tests of 3.14 and 3.15 are skipped)
"""

import dataclasses
import functools
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

# The helpers shared by every suite (interpreter discovery, the supported versions).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

import interpreters
import support
from interpreters import Interpreter


@dataclasses.dataclass(frozen=True)
class Slot:
    """One parameter of the `interpreter` fixture: a local interpreter, one that the fetch
    script provides (3.14, 3.15), or a supported minor version missing here (a skip)."""

    test_id: str
    interpreter: Optional[Interpreter] = None
    fetch_minor: Optional[Tuple[int, int]] = None
    missing_minor: Optional[Tuple[int, int]] = None


@functools.lru_cache(maxsize=None)
def local_interpreters() -> Tuple[Interpreter, ...]:
    return tuple(interpreters.discover_local())


def supported_slots() -> List[Slot]:
    local = local_interpreters()
    slots = [Slot(interpreter.test_id, interpreter=interpreter)
             for interpreter in local if interpreter.supported]
    slots += [Slot("debian-unstable-3.%d" % minor, fetch_minor=(3, minor))
              for minor in interpreters.DEBIAN_UNSTABLE_MINORS]
    slots += [Slot("missing-%d.%d" % minor, missing_minor=minor)
              for minor in interpreters.missing_minors(list(local))]
    return sorted(slots, key=lambda slot: (slot.missing_minor or (0, 0), slot.test_id))


def unsupported_interpreters() -> List[Interpreter]:
    return [interpreter for interpreter in local_interpreters() if not interpreter.supported]


def pytest_report_header(config):
    lines = ["spyglass: %s" % spyglass_path()]
    for interpreter in local_interpreters():
        lines.append("python %-16s %-11s %s" % (
            interpreter.test_id, "supported" if interpreter.supported else "unsupported",
            interpreter.path))
    lines.append("python %s from Debian unstable, by %s (run when a test needs it)" % (
        ", ".join("3.%d" % minor for minor in interpreters.DEBIAN_UNSTABLE_MINORS),
        interpreters.FETCH_SCRIPT.relative_to(interpreters.REPO_ROOT)))
    return lines


def pytest_generate_tests(metafunc):
    if "interpreter" in metafunc.fixturenames:
        slots = supported_slots()
        metafunc.parametrize("interpreter", slots, ids=[slot.test_id for slot in slots],
                             indirect=True)
    if "unsupported_interpreter" in metafunc.fixturenames:
        found = unsupported_interpreters()
        if found:
            metafunc.parametrize("unsupported_interpreter", found,
                                 ids=[interpreter.test_id for interpreter in found])
        else:
            metafunc.parametrize("unsupported_interpreter", [
                pytest.param(None, marks=pytest.mark.skip(
                    reason="no unsupported CPython (3.7, 3.6, 2.7) found under pyenv: install "
                    "one with pyenv to test how spyglass refuses it"))], ids=["none-found"])


def fetched_interpreter(minor: Tuple[int, int]) -> Interpreter:
    """Debian unstable's build of `minor`; every listed version is fetched at the first call (one
    run of the fetch script per session). Skips the test, with a line in the summary, when
    it cannot be had."""
    text = "%d.%d" % minor
    if os.environ.get("SPYGLASS_SKIP_FETCH") == "1":
        pytest.skip("CPython %s not fetched (SPYGLASS_SKIP_FETCH=1)" % text)
    first = not interpreters.fetched_already()
    results = interpreters.fetch_debian_unstable(
        timeout=float(os.environ.get("SPYGLASS_FETCH_TIMEOUT", "600")))
    if first:
        for fetched_minor, result in sorted(results.items()):
            support.NOTES.append(
                "debian-unstable-%d.%d is %s (%s)" % (fetched_minor + (
                    result.interpreter.version_text, result.interpreter.path))
                if result.interpreter else
                "CPython %d.%d skipped: %s" % (fetched_minor + (result.problem,)))
    result = results[minor]
    if result.interpreter is None:
        pytest.skip("CPython %s not available: %s" % (text, result.problem))
    return result.interpreter


@pytest.fixture
def workload():
    """The reference workload (../shared/bench/workload.py or SPYGLASS_WORKLOAD), else a skip
    that says how to provide it."""
    path = support.workload_path()
    if path is None:
        pytest.skip("no reference workload: set SPYGLASS_WORKLOAD or provide "
                    "<repo>/../shared/bench/workload.py")
    return path


@pytest.fixture
def interpreter(request) -> Interpreter:
    slot = request.param
    if slot.missing_minor is not None:
        pytest.skip(interpreters.not_found_message(slot.missing_minor))
    if slot.fetch_minor is not None:
        return fetched_interpreter(slot.fetch_minor)
    return slot.interpreter


def spyglass_path() -> str:
    return os.environ.get("SPYGLASS_BIN") or str(support.DEFAULT_SPYGLASS)


@pytest.fixture(scope="session")
def spyglass_bin() -> str:
    path = spyglass_path()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("no spyglass command at %s: build it (make build) or set SPYGLASS_BIN"
                    % path, pytrace=False)
    return path


@pytest.fixture
def run_spyglass(spyglass_bin):
    """run_spyglass(args, timeout=30, as_user=None) -> support.Result. `as_user` is a command
    prefix (e.g. one that drops privileges) put before spyglass."""

    def run(args, timeout=30.0, as_user=None):
        command = list(as_user or []) + [spyglass_bin] + [str(arg) for arg in args]
        return support.run_command(command, timeout)

    return run


@pytest.fixture
def start_target():
    """start_target(interpreter, program, *args, ready_timeout=60) -> support.Target: starts
    tests/programs/<program> and returns once it printed `ready`. Every target started is killed
    when the test ends, whatever happened."""
    started = []

    def start(interpreter, program, *args, ready_timeout=60.0):
        target = support.Target(interpreter, program, args, ready_timeout)
        started.append(target)
        return target

    yield start
    for target in started:
        target.stop()


def pytest_terminal_summary(terminalreporter):
    if support.NOTES:
        terminalreporter.section("interpreters")
        for note in support.NOTES:
            terminalreporter.write_line(note)
    if not support.TIMINGS:
        return
    terminalreporter.section("spyglass timings")
    for test_id, what, seconds in support.TIMINGS:
        terminalreporter.write_line("%-60s %-40s %8.1f ms" % (test_id, what, seconds * 1000))


@pytest.fixture
def environment(interpreter):
    """The environment of the real programs (tests/realprograms) for the interpreter: their
    libraries from PyPI, installed once into a per-interpreter folder and cached. Where it cannot
    be made (no network, no pip for that version) the test is skipped with a line saying why."""
    programs = str(support.REPO_ROOT / "tests" / "realprograms")
    if programs not in sys.path:
        sys.path.insert(0, programs)
    import corpus

    try:
        return corpus.program_environment(interpreter.path, interpreter.version_text)
    except corpus.venvs.Unavailable as error:
        note = "programs from PyPI on %s skipped: %s" % (interpreter.test_id, error)
        if note not in support.NOTES:
            support.NOTES.append(note)
        pytest.skip(str(error))
