"""Exact mode's tests run the extension inside every supported version found (the range of
src/cpython/versions.toml): pyenv's 3.8-3.13 and Debian unstable's 3.14 and 3.15
(scripts/fetch-python.sh). Each is built with `make python PYTHON=...` (cached in build-python/);
a missing interpreter skips its tests visibly."""

import glob
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
import interpreters  # noqa: E402  (tests/lib: the supported versions, the fetch of 3.14+)

VERSIONS = ["3.%d" % minor for minor in interpreters.SUPPORTED_MINORS]

_interpreters = {}
_packages = {}
_problems = {}  # why a version could not be had, when known


def _pyenv_root():
    try:
        return subprocess.check_output(["pyenv", "root"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return os.path.expanduser("~/.pyenv")


def _find_interpreter(version):
    if version in _interpreters:
        return _interpreters[version]
    found = None
    override = os.environ.get("SPYGLASS_PYTHON_" + version.replace(".", ""))
    if override:
        found = override
    elif int(version.split(".")[1]) in interpreters.DEBIAN_UNSTABLE_MINORS:
        if os.environ.get("SPYGLASS_SKIP_FETCH") != "1":
            minor = (3, int(version.split(".")[1]))
            result = interpreters.fetch_debian_unstable()[minor]
            found = result.interpreter.path if result.interpreter else None
            if found is None:
                _problems[version] = result.problem
    else:
        candidates = sorted(
            glob.glob(os.path.join(_pyenv_root(), "versions", version + ".*", "bin",
                                   "python" + version)),
            key=lambda p: [int(x) for x in p.split("/versions/")[1].split("/")[0].split(".")
                           if x.isdigit()])
        if candidates:
            found = candidates[-1]
    _interpreters[version] = found
    return found


def build_package(version):
    """(python, folder for PYTHONPATH) or skips the test."""
    python = _find_interpreter(version)
    if python is None:
        pytest.skip("Python %s not found on this machine%s" % (
            version, (": " + _problems[version]) if version in _problems else ""))
    if version not in _packages:
        out = subprocess.run(["make", "-s", "--no-print-directory", "python", "PYTHON=" + python],
                             cwd=REPO, capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            _packages[version] = RuntimeError("make python failed for %s:\n%s\n%s" % (
                python, out.stdout[-3000:], out.stderr[-3000:]))
        else:
            _packages[version] = out.stdout.strip().splitlines()[-1]
    package = _packages[version]
    if isinstance(package, Exception):
        pytest.fail(str(package))
    return python, package


def child_env(package, **extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = package
    env.pop("SPYGLASS_LISTEN", None)
    env.update(extra)
    return env


def run_python(python, package, args, timeout=120, **env):
    return subprocess.run([python] + list(args), env=child_env(package, **env),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(params=VERSIONS)
def interpreter(request):
    return build_package(request.param)


def workload_path():
    path = os.environ.get("SPYGLASS_WORKLOAD") or os.path.join(REPO, "..", "shared", "bench",
                                                                "workload.py")
    return os.path.abspath(path) if os.path.exists(path) else None


def load_json(path):
    with open(path) as f:
        return json.load(f)
