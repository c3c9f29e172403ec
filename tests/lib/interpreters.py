"""Finds the CPython interpreters this machine has, for every test suite and the benchmark.

Sources, none of them hard-coded to one machine:
  - pyenv: every `X.Y.Z` directory under `$(pyenv root)/versions` (pyenv on PATH), else
    `$PYENV_ROOT/versions`, else `~/.pyenv/versions`; the newest patch of each minor version.
  - the system's `/usr/bin/python3.N` executables (Debian's static, stripped build).
  - Debian unstable's builds of the minor versions listed in src/cpython/versions.toml
    (3.14, 3.15), fetched by `scripts/fetch-python.sh` (slow the first time, so callers run it
    lazily, once: see `fetch_debian_unstable`).

Run this file directly to print what it finds (`--fetch` fetches too).
"""

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from cpython_versions import DEBIAN_UNSTABLE_MINORS, REPO_ROOT, SUPPORTED_MINORS

FETCH_SCRIPT = REPO_ROOT / "scripts" / "fetch-python.sh"
# Python 2.7 prints its version the same way; `%` formatting keeps this runnable by 2.7 and 3.x.
_VERSION_PROBE = "import sys; print('%d.%d.%d' % tuple(sys.version_info[:3]))"
_PYENV_VERSION_DIR = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_SYSTEM_PYTHON_NAME = re.compile(r"^python(\d+)\.(\d+)$")


@dataclasses.dataclass(frozen=True)
class Interpreter:
    """One runnable CPython interpreter."""

    source: str  # "pyenv", "debian" or "debian-unstable"
    path: str  # the executable to run (for debian-unstable, a wrapper script)
    version: Tuple[int, int, int]

    @property
    def minor(self) -> Tuple[int, int]:
        return self.version[:2]

    @property
    def version_text(self) -> str:
        return "%d.%d.%d" % self.version

    @property
    def minor_text(self) -> str:
        return "%d.%d" % self.minor

    @property
    def test_id(self) -> str:
        return "%s-%s" % (self.source, self.version_text)

    @property
    def supported(self) -> bool:
        return self.version[0] == 3 and self.version[1] in SUPPORTED_MINORS


def clean_environment() -> Dict[str, str]:
    """The environment to run target interpreters in: nothing from the test runner's venv leaks
    into them, and they leave no __pycache__ behind in the source tree."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PYTHON") and key not in ("VIRTUAL_ENV", "PYENV_VERSION")
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def probe_version(executable: str, timeout: float = 30.0) -> Optional[Tuple[int, int, int]]:
    """Runs the interpreter and asks its version; None when it does not run."""
    try:
        completed = subprocess.run(
            [executable, "-c", _VERSION_PROBE],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=clean_environment(),
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.match(rb"^(\d+)\.(\d+)\.(\d+)\s*$", completed.stdout)
    if completed.returncode != 0 or not match:
        return None
    return tuple(int(part) for part in match.groups())


def pyenv_root() -> Optional[Path]:
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            completed = subprocess.run(
                [pyenv, "root"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                timeout=30, check=False, text=True)
            if completed.returncode == 0 and completed.stdout.strip():
                return Path(completed.stdout.strip())
        except (OSError, subprocess.TimeoutExpired):
            pass
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    return Path.home() / ".pyenv"


def _pyenv_executable(version_dir: Path, major: int, minor: int) -> Optional[Path]:
    # The versioned name is the real binary; `python` may be missing (2.x builds) or a symlink.
    for name in ("python%d.%d" % (major, minor), "python%d" % major, "python"):
        candidate = version_dir / "bin" / name
        if candidate.is_file() and os.access(str(candidate), os.X_OK):
            return candidate
    return None


def discover_pyenv() -> List[Interpreter]:
    """The newest patch release of each minor version installed with pyenv."""
    root = pyenv_root()
    versions_dir = root / "versions" if root else None
    if not versions_dir or not versions_dir.is_dir():
        return []
    newest: Dict[Tuple[int, int], Tuple[Tuple[int, int, int], Path]] = {}
    for entry in versions_dir.iterdir():
        match = _PYENV_VERSION_DIR.match(entry.name)
        if not match:
            continue  # virtualenvs, -dev builds, pypy...: not plain CPython releases
        version = tuple(int(part) for part in match.groups())
        executable = _pyenv_executable(entry, version[0], version[1])
        if executable is None:
            continue
        if version[:2] not in newest or version > newest[version[:2]][0]:
            newest[version[:2]] = (version, executable)
    found = []
    for version, executable in newest.values():
        # Trust what the interpreter says over the directory name, and drop broken installs.
        actual = probe_version(str(executable))
        if actual is not None:
            found.append(Interpreter("pyenv", str(executable), actual))
    return sorted(found, key=lambda interpreter: interpreter.version)


def discover_system(directory: str = "/usr/bin") -> List[Interpreter]:
    """The distribution's `pythonX.Y` executables (Debian's, on Debian)."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in sorted(os.listdir(directory)):
        if not _SYSTEM_PYTHON_NAME.match(name):
            continue
        executable = os.path.join(directory, name)
        if not os.path.isfile(executable) or not os.access(executable, os.X_OK):
            continue
        version = probe_version(executable)
        if version is not None:
            found.append(Interpreter("debian", executable, version))
    return found


@dataclasses.dataclass
class FetchResult:
    interpreter: Optional[Interpreter]
    problem: str  # why there is no interpreter; empty when there is one


_fetched: Dict[Tuple[int, int], FetchResult] = {}


def fetch_debian_unstable(minors=None, timeout: float = 900) -> Dict[Tuple[int, int], FetchResult]:
    """Debian unstable's interpreters of the given minor versions ((3, 15), ...; by default those
    src/cpython/versions.toml lists), fetched by scripts/fetch-python.sh in one run (which prints
    one wrapper per version it got, and one line on stderr per version it did not). Remembered
    for the rest of the process: a second call costs nothing."""
    if minors is None:
        minors = [(3, m) for m in DEBIAN_UNSTABLE_MINORS]
    wanted = [tuple(minor) for minor in minors]
    missing = [minor for minor in wanted if minor not in _fetched]
    if missing:
        _fetched.update(_run_fetch(missing, timeout))
    return {minor: _fetched[minor] for minor in wanted}


def fetched_already() -> bool:
    """True once fetch_debian_unstable ran in this process."""
    return bool(_fetched)


def _run_fetch(minors, timeout: float) -> Dict[Tuple[int, int], FetchResult]:
    script = FETCH_SCRIPT.name
    texts = ["%d.%d" % minor for minor in minors]

    def everyone(problem):
        return {minor: FetchResult(None, problem) for minor in minors}

    if not FETCH_SCRIPT.is_file():
        return everyone("%s does not exist" % FETCH_SCRIPT)
    try:
        completed = subprocess.run(
            [str(FETCH_SCRIPT)] + texts, cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, check=False,
            text=True, errors="replace")
    except subprocess.TimeoutExpired:
        return everyone("%s did not finish within %d s" % (script, timeout))
    except OSError as error:
        return everyone("could not run %s: %s" % (script, error))
    wrappers = {}
    for line in completed.stdout.splitlines():
        match = re.search(r"python(\d+)\.(\d+)$", line.strip())
        if match:
            wrappers[(int(match.group(1)), int(match.group(2)))] = line.strip()
    messages = completed.stderr.strip().splitlines()
    results = {}
    for minor, text in zip(minors, texts):
        wrapper = wrappers.get(minor)
        if wrapper is None:
            # Lines about every version (the package list), then this version's own.
            general = [line for line in messages if not re.match(r"fetch-python: \d+\.\d+:", line)]
            about = general[-2:] + [line for line in messages if (" %s:" % text) in line]
            results[minor] = FetchResult(None, "%s %s failed (exit %d): %s" % (
                script, text, completed.returncode, " | ".join(about) or "no message"))
            continue
        version = probe_version(wrapper, timeout=60)
        if version is None:
            results[minor] = FetchResult(None, "%s printed %r, which does not run as Python" % (
                script, wrapper))
        elif version[:2] != minor:
            results[minor] = FetchResult(None, "%s gave Python %s, not %s" % (
                script, "%d.%d.%d" % version, text))
        else:
            results[minor] = FetchResult(Interpreter("debian-unstable", wrapper, version), "")
    return results


def discover_local() -> List[Interpreter]:
    """Every interpreter found without downloading anything, supported or not."""
    return discover_pyenv() + discover_system()


def missing_minors(local: List[Interpreter],
                   fetched_minors=tuple((3, m) for m in DEBIAN_UNSTABLE_MINORS)
                   ) -> List[Tuple[int, int]]:
    """Supported minor versions no local interpreter provides (and no fetch will provide)."""
    have = {interpreter.minor for interpreter in local} | set(fetched_minors)
    return [(3, minor) for minor in SUPPORTED_MINORS if (3, minor) not in have]


def not_found_message(minor: Tuple[int, int]) -> str:
    return "CPython %d.%d not found on this machine: install it with pyenv to test it" % minor


if __name__ == "__main__":
    for interpreter in discover_local():
        print("%-24s %-11s %s" % (interpreter.test_id,
                                  "supported" if interpreter.supported else "unsupported",
                                  interpreter.path))
    for minor in missing_minors(discover_local(), fetched_minors=()):
        print(not_found_message(minor))
    if "--fetch" in sys.argv:
        for minor, result in sorted(fetch_debian_unstable().items()):
            print("%-24s %-11s %s" % (result.interpreter.test_id, "supported",
                                      result.interpreter.path)
                  if result.interpreter else "%d.%d: %s" % (minor + (result.problem,)))
