"""spyglass's CPython layouts against the real headers of every interpreter this machine has.

For each supported interpreter (pyenv 3.8-3.13, Debian's own, Debian unstable's 3.14 and 3.15)
this runs tools/check_layouts.py: it compiles `offsetof`/`sizeof` against that interpreter's own
internal headers and compares them with the spec (src/cpython/versions.toml: every field, its
width, the _Py_DebugOffsets shape) and with spyglass's builtin table (3.8-3.12) or the layout
spyglass reads from that live interpreter's _Py_DebugOffsets (3.13+). An interpreter without its
headers is a visible skip.

Environment: SPYGLASS_BUILD, the spyglass build folder (default `build`), which must hold
tools/layout_dump/spyglass_layout_dump (built by the default build).
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cpython_versions
import interpreters

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECK_LAYOUTS = REPO_ROOT / "tools" / "check_layouts.py"


def dumper_path() -> Path:
    build = Path(os.environ.get("SPYGLASS_BUILD", "build"))
    if not build.is_absolute():
        build = REPO_ROOT / build
    return build / "tools" / "layout_dump" / "spyglass_layout_dump"


@pytest.fixture(scope="session")
def dumper() -> Path:
    path = dumper_path()
    if not (path.is_file() and os.access(str(path), os.X_OK)):
        pytest.fail("no %s: build the default targets, or set SPYGLASS_BUILD to the build folder"
                    % path, pytrace=False)
    return path


def include_dir(interpreter) -> Path:
    """The interpreter's own include/python3.X, as its sysconfig says."""
    completed = subprocess.run(
        [interpreter.path, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=interpreters.clean_environment(), timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    return Path(completed.stdout.strip())


def test_layout_matches_headers(interpreter, dumper):
    headers = include_dir(interpreter)
    if not (headers / "internal").is_dir():
        pytest.skip("%s has no internal headers at %s (for Debian's: apt-get install python%s-dev)"
                    % (interpreter.test_id, headers, interpreter.minor_text))
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler to compile the offsetof program")
    # --python: the live interpreter's debug offsets (3.13+) and its core's -D flags (any).
    command = [sys.executable, str(CHECK_LAYOUTS), "--dumper", str(dumper),
               "--version", interpreter.minor_text, "--include", str(headers),
               "--python", interpreter.path]
    completed = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=300, check=False)
    assert completed.returncode == 0, "%s: %s" % (interpreter.test_id, completed.stdout)
    assert "numbers match the headers" in completed.stdout


def load_checker():
    spec = importlib.util.spec_from_file_location("check_layouts", str(CHECK_LAYOUTS))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checker_reports_mismatches():
    checker = load_checker()
    version = cpython_versions.SPEC.versions[9]
    good = {key: field.value for key, field in version.fields.items()}
    headers = dict(good)
    headers.update(checker.expected_numbers(version))
    assert checker.compare(version, headers, dict(good)) == []
    # A field spyglass gets wrong, a width the spec gets wrong, a field that should be absent.
    wrong = dict(good, **{"code.name": good["code.name"] + 8, "interp.gil_pointer": 8,
                          "frame.owner_cstack": -1})
    bad_width = dict(headers, **{"width:frame.lasti": 8})
    problems = checker.compare(version, bad_width, wrong)
    assert len(problems) == 3, problems
    assert any("code.name" in problem for problem in problems)
    assert any("width of frame.lasti" in problem for problem in problems)
    assert any("interp.gil_pointer" in problem for problem in problems)
    assert checker.compare(version, headers, {"thread.frame": 24}) != []


def test_checker_flags_a_wrong_debug_offsets_shape():
    """A shape with one word moved must fail against the headers' offsets."""
    checker = load_checker()
    version = cpython_versions.SPEC.versions[cpython_versions.NEWEST_MINOR]
    headers = checker.expected_numbers(version)
    good = {key: field.value for key, field in version.fields.items() if field.value is not None}
    assert [p for p in checker.compare(version, headers, good) if "_Py_DebugOffsets" in p] == []
    shifted = dict(headers, **{"debug:thread_state.current_frame":
                               headers["debug:thread_state.current_frame"] + 8})
    problems = checker.compare(version, shifted, good)
    assert any("_Py_DebugOffsets thread_state.current_frame" in p for p in problems), problems


def test_checker_flags_what_the_live_interpreter_contradicts():
    """The fields no header gives (TaskObj, 3.8's md_dict) are checked against what a live
    interpreter shows: a probe that disagrees with spyglass must fail."""
    checker = load_checker()
    version = cpython_versions.SPEC.versions[8]
    good = {key: field.value for key, field in version.fields.items()}
    headers = dict(good)
    headers.update(checker.expected_numbers(version))
    probed = {key: good[key] for key in checker.PROBED}
    assert checker.compare(version, headers, dict(good), probed) == []
    problems = checker.compare(version, headers, dict(good),
                               dict(probed, **{"async.task_coro": good["async.task_coro"] + 8}))
    assert len(problems) == 1 and "async.task_coro" in problems[0], problems


def test_checker_flags_a_wrong_version(dumper):
    """The 3.9 table compared with 3.8's headers must fail: the check has teeth."""
    pyenv = interpreters.discover_pyenv()
    by_minor = {interpreter.minor: interpreter for interpreter in pyenv}
    if (3, 8) not in by_minor:
        pytest.skip("no pyenv 3.8 to compare against")
    headers = include_dir(by_minor[(3, 8)])
    checker = load_checker()
    version = cpython_versions.SPEC.versions[8]
    expected = checker.header_numbers(version, str(headers), [])
    actual = checker.spyglass_numbers(str(dumper), "3.9", None)
    assert checker.compare(version, expected, actual) != []


def test_readme_states_the_supported_range():
    """The range users read is the spec's (src/cpython/versions.toml)."""
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    assert "CPython %s" % cpython_versions.RANGE_TEXT in readme
