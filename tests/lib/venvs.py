"""Per-interpreter package environments for tests that run real programs on real libraries.

`environment(python, version, requirements)` returns a folder of packages installed from PyPI
for that interpreter, created on first use and cached between runs under `$SPYGLASS_CACHE/venvs`
(default `<repo>/.cache/venvs`), keyed by the interpreter, its version, the requirements file's
text and pip's version. A program runs with it through `Environment.env()`.

Why `pip install --target` and PYTHONPATH rather than `python -m venv`: it is the one way that
works for every interpreter the tests use. Debian unstable's 3.14 runs through a wrapper that
execs that suite's loader (scripts/fetch-python314.sh); a venv's `bin/python` would point at the
bare binary, which cannot start without the loader, and that build has no `ensurepip` either.
With a target folder, every program runs under the very interpreter path the other tests use
(so spyglass sees the same binary), and the folder comes first on `sys.path`, before the
interpreter's own site-packages and dist-packages. User site-packages are turned off.

pip itself: one pinned pip wheel, downloaded once, is run by each target interpreter
(`python pip.whl/pip install ...`, which pip supports), so markers and wheel tags are the
target's own, and interpreters without pip work the same way.

Failures are never silent and never a hang: an unreachable PyPI, or a package with no build
for an interpreter, raises `Unavailable` with one line saying which; the tests turn it into a
visible skip. A failure is remembered for the rest of the process, so a missing network costs
one pip timeout, not one per test.
"""

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
# The newest pip that still runs on 3.8 (pip 25.0 dropped 3.7, 25.1 dropped 3.8).
PIP_VERSION = "24.3.1"
# ... which does not run on 3.15 (its vendored code uses typing.no_type_check_decorator, gone
# in 3.15): from 3.15 on, a pip that does.
PIP_VERSION_315 = "26.3"


def pip_version(version: str) -> str:
    """The pip used for an interpreter of `version` ("3.15.2")."""
    major, minor = (int(part) for part in version.split(".")[:2])
    return PIP_VERSION_315 if (major, minor) >= (3, 15) else PIP_VERSION
# Short: an unreachable index must not hold a test run for minutes (pip's defaults, and this
# machine's PIP_DEFAULT_TIMEOUT, are much longer).
PIP_NETWORK_OPTIONS = ["--timeout", "20", "--retries", "2"]
INSTALL_TIMEOUT_SECONDS = 600


class Unavailable(Exception):
    """The environment cannot be made here; the message says why, in one line."""


def cache_root() -> Path:
    return Path(os.environ.get("SPYGLASS_CACHE") or REPO_ROOT / ".cache") / "venvs"


class Environment:
    """A folder of installed packages for one interpreter."""

    def __init__(self, python: str, site: Path):
        self.python = python
        self.site = site

    def env(self, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        """`base` (default: this process's environment) with the packages first on sys.path
        and the user's own site-packages out of the way."""
        env = dict(os.environ if base is None else base)
        env["PYTHONPATH"] = str(self.site)
        env["PYTHONNOUSERSITE"] = "1"
        return env


_FAILURES: Dict[str, str] = {}


def _clean_env() -> Dict[str, str]:
    # Nothing of the caller's venv or PYTHON* settings may steer the target's pip.
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("PYTHON") and key not in ("VIRTUAL_ENV", "PIP_TARGET",
                                                           "PIP_PREFIX", "PIP_USER")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "no message"


def _explain_pip_failure(output: str, what: str) -> str:
    """One line for a failed pip run: no index reached, or no build for this interpreter."""
    network = re.search(r"(NewConnectionError|Max retries exceeded|Temporary failure in name "
                        r"resolution|Network is unreachable|timed out|ProxyError|SSLError|"
                        r"not a trusted or secure host)[^\n]*", output)
    if network:
        errno = re.search(r"\[Errno -?\d+\] [^'\")]+", network.group(0))
        return "%s: PyPI unreachable (%s)" % (
            what, (errno.group(0) if errno else network.group(0))[:160].strip())
    no_build = re.search(r"No matching distribution found for (\S+)", output)
    if no_build and "(from versions: none)" in output:
        return "%s: the index offers no version of %s at all (is PyPI reachable?)" % (
            what, no_build.group(1))
    if no_build:
        requires = re.search(r"Requires-Python ([^;\n]+)", output)
        return "%s: no build of %s for this interpreter%s" % (
            what, no_build.group(1), " (it requires Python %s)" % requires.group(1).strip()
            if requires else "")
    return "%s failed: %s" % (what, _last_lines(output))


def _run_pip(command, what: str) -> None:
    try:
        completed = subprocess.run(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=_clean_env(), timeout=INSTALL_TIMEOUT_SECONDS, check=False, text=True,
            errors="replace")
    except subprocess.TimeoutExpired:
        raise Unavailable("%s did not finish within %d s" % (what, INSTALL_TIMEOUT_SECONDS))
    except OSError as error:
        raise Unavailable("%s could not start: %s" % (what, error))
    if completed.returncode != 0:
        raise Unavailable(_explain_pip_failure(completed.stdout, what))


class _Lock:
    """An exclusive lock on a file of the cache: two test runs (or a test run and the bench
    script) never build the same environment at once."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(str(path), "a")

    def __enter__(self):
        fcntl.flock(self._file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


def pip_wheel(pythons=(), version: str = PIP_VERSION) -> Path:
    """The pinned pip wheel (pip `version`), downloaded once into the cache by the first of this
    process's interpreter and `pythons` that has pip."""
    folder = cache_root() / "pip"
    wheel = folder / ("pip-%s-py3-none-any.whl" % version)
    if wheel.is_file():
        return wheel
    with _Lock(cache_root() / "pip.lock"):
        if wheel.is_file():
            return wheel
        problems = []
        for python in (sys.executable,) + tuple(pythons):
            try:
                _run_pip([python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                          "--dest", str(folder), "pip==%s" % version] + PIP_NETWORK_OPTIONS,
                         "downloading pip %s with %s" % (version, python))
            except Unavailable as error:
                problems.append(str(error))
                continue
            if wheel.is_file():
                return wheel
            problems.append("%s downloaded no %s" % (python, wheel.name))
        raise Unavailable(problems[-1] if problems else "no interpreter to download pip with")


def environment_key(python: str, version: str, requirements: Path) -> str:
    digest = hashlib.sha256()
    for part in (os.path.realpath(python), version, requirements.read_text(),
                 pip_version(version)):
        digest.update(part.encode() + b"\0")
    return "py%s-%s" % (version, digest.hexdigest()[:12])


def environment(python: str, version: str, requirements: Path) -> Environment:
    """The cached environment of `requirements` for the interpreter `python` (its version
    `version`, e.g. "3.12.1"), made now if needed. Raises Unavailable."""
    key = environment_key(python, version, requirements)
    if key in _FAILURES:
        raise Unavailable(_FAILURES[key])
    folder = cache_root() / key
    site = folder / "site"
    if (folder / "ready.json").is_file():
        return Environment(python, site)
    try:
        wheel = pip_wheel((python,), pip_version(version))
        with _Lock(cache_root() / (key + ".lock")):
            if not (folder / "ready.json").is_file():
                _install(python, version, requirements, wheel, folder)
    except Unavailable as error:
        _FAILURES[key] = str(error)
        raise
    return Environment(python, site)


def _install(python: str, version: str, requirements: Path, wheel: Path, folder: Path) -> None:
    # Into a fresh folder beside the final one, renamed when complete: an interrupted install
    # leaves no half-made environment behind that a later run would take as ready.
    cache_root().mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=str(cache_root())))
    try:
        _run_pip([python, str(wheel / "pip"), "install", "--no-input", "--quiet",
                  "--only-binary=:all:", "--target", str(staging / "site"),
                  "-r", str(requirements)] + PIP_NETWORK_OPTIONS,
                 "installing %s for Python %s" % (requirements.name, version))
        (staging / "ready.json").write_text(json.dumps({
            "python": python, "version": version, "pip": pip_version(version),
            "requirements": requirements.read_text()}, indent=1))
        if folder.exists():
            shutil.rmtree(str(folder))
        os.rename(str(staging), str(folder))
    finally:
        shutil.rmtree(str(staging), ignore_errors=True)


if __name__ == "__main__":
    # python tests/lib/venvs.py PYTHON VERSION [REQUIREMENTS]: makes one and prints its folder.
    requirements_file = Path(sys.argv[3]) if len(sys.argv) > 3 else (
        REPO_ROOT / "tests" / "realprograms" / "requirements.txt")
    try:
        print(environment(sys.argv[1], sys.argv[2], requirements_file).site)
    except Unavailable as unavailable:
        print("unavailable: %s" % unavailable, file=sys.stderr)
        sys.exit(1)
