"""`pip install .` from this checkout, as a user installs spyglass: the extension is built for
the interpreter running pip, the `spyglass` command comes with it, and neither needs a library
that only a development machine has (the wheel carries what it links)."""

import glob
import json
import os
import resource
import subprocess
import time

import pytest

from conftest import REPO, VERSIONS, _find_interpreter

PROGRAM = r'''
import spyglass

@spyglass.trace
def marked(x):
    return x + 1

def named(x):
    return x * 2

with spyglass.profile(["named"]) as p:
    for i in range(1000):
        marked(i)
        named(i)
print(sorted((f["name"], f["calls"]) for f in p.results.to_dict()["functions"]))
'''

# Libraries every Linux system has; anything else the binaries link would have to be installed
# by the user, which a pip install cannot do.
SYSTEM_LIBRARIES = ("linux-vdso", "libc.so", "libm.so", "ld-linux", "libpthread", "libdl.so",
                    "librt.so", "libgcc_s.so", "libstdc++.so")


def pip_wheel_beside(python):
    """The pip wheel scripts/fetch-python.sh puts beside a Debian unstable interpreter (which
    comes without pip), or None for an interpreter with its own."""
    wheels = glob.glob(os.path.join(os.path.dirname(python), "root", "usr", "share",
                                    "python-wheels", "pip-*.whl"))
    return sorted(wheels)[-1] if wheels else None


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtual environment of the newest supported interpreter found (Debian unstable's
    3.15 run through its loader, else the newest pyenv one) with spyglass pip-installed from
    this checkout."""
    python = None
    for version in reversed(VERSIONS):
        python = _find_interpreter(version)
        if python is not None:
            break
    if python is None:
        pytest.skip("no supported interpreter found on this machine")
    venv = tmp_path_factory.mktemp("pip") / "venv"
    wheel = pip_wheel_beside(python)
    if wheel:
        # No ensurepip: install pip from its wheel (pip runs from a wheel file).
        subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True,
                       timeout=300)
        subprocess.run([str(venv / "bin" / "python"), os.path.join(wheel, "pip"), "install",
                        "-q", "--no-index", wheel], check=True, timeout=300)
    else:
        subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
    cpu_before = _children_cpu_seconds()
    started = time.monotonic()
    out = subprocess.run([str(venv / "bin" / "pip"), "install", "--disable-pip-version-check",
                          "-q", REPO], capture_output=True, text=True, timeout=1800)
    INSTALL_COST["wall"] = time.monotonic() - started
    INSTALL_COST["cpu"] = _children_cpu_seconds() - cpu_before
    assert out.returncode == 0, "pip install . with %s failed:\n%s\n%s" % (
        python, out.stdout[-4000:], out.stderr[-4000:])
    return venv


# What `pip install .` cost: wall seconds and the CPU seconds of pip and every compiler it ran.
INSTALL_COST = {}
# The bound: under 90 s on a quiet 2-core machine. Wall time on a shared, loaded test
# machine says little, so the test bounds the CPU time instead: 180 CPU seconds is 90 s on two
# busy cores (measured: 109 CPU s for the build alone with the unity build and only the wheel's
# targets; 324 CPU s before, when every file and the test tools were compiled one by one).
MAX_INSTALL_CPU_SECONDS = 180


def _children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_install_is_quick(installed):
    print("pip install . took %.0f s (%.0f CPU s)" % (INSTALL_COST["wall"], INSTALL_COST["cpu"]))
    assert INSTALL_COST["cpu"] < MAX_INSTALL_CPU_SECONDS, INSTALL_COST


def test_wheel_carries_no_debug_information(installed):
    site = subprocess.run([str(installed / "bin" / "python"), "-c",
                           "import spyglass._spyglass as m; print(m.__file__)"],
                          capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    for binary in (str(installed / "bin" / "spyglass"), site.stdout.strip()):
        out = subprocess.run(["readelf", "-S", "-W", binary], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert ".debug_info" not in out.stdout, "%s carries debug information" % binary
    assert os.path.getsize(str(installed / "bin" / "spyglass")) < 20 * 1024 * 1024


def test_command_is_installed(installed):
    out = subprocess.run([str(installed / "bin" / "spyglass"), "--version"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("spyglass "), out


def test_extension_times_chosen_functions(installed, tmp_path):
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SPYGLASS_LISTEN")}
    out = subprocess.run([str(installed / "bin" / "python"), str(script)], capture_output=True,
                         text=True, timeout=120, env=env, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[('named', 1000), ('program:marked', 1000)]" or \
        out.stdout.strip() == "[('__main__:marked', 1000), ('named', 1000)]", out.stdout


def test_run_form_of_the_installed_command(installed, tmp_path):
    script = tmp_path / "work.py"
    script.write_text("import time\n"
                      "def work():\n"
                      "    t = time.perf_counter()\n"
                      "    while time.perf_counter() - t < 0.3: pass\n"
                      "work()\n")
    out = subprocess.run([str(installed / "bin" / "spyglass"), "run", "-f", "work", "--format",
                          "json", "--", str(installed / "bin" / "python"), str(script)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    work = {f["name"]: f for f in json.loads(out.stdout)["functions"]}["work"]
    assert work["has_data"] and work["samples"] > 100, work


def test_links_only_system_libraries(installed):
    site = subprocess.run([str(installed / "bin" / "python"), "-c",
                           "import spyglass._spyglass as m; print(m.__file__)"],
                          capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert site.returncode == 0, site.stderr
    for binary in (str(installed / "bin" / "spyglass"), site.stdout.strip()):
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        linked = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
        extra = [lib for lib in linked
                 if not os.path.basename(lib).startswith(SYSTEM_LIBRARIES)]
        assert not extra, "%s links %s, which a user's machine may lack" % (binary, extra)
