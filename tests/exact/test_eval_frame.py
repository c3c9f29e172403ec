"""The eval-frame backend (PEP 523, 3.8-3.11; backend_eval_frame.cpp) against the profile hook
it replaces by default: the same calls, the same generator and coroutine steps, threads started
after start() timed, the interpreter's eval-frame function restored at stop(), and the profile
hook used instead when another tool has an eval-frame function installed."""

import json
import os
import subprocess
import sysconfig

import pytest

from conftest import HERE, VERSIONS, build_package, run_python

PRE_312 = [v for v in VERSIONS if int(v.split(".")[1]) < 12]
EVAL_FRAME = "eval-frame function (PEP 523)"
TAKEN = "profile hook (another tool's eval-frame function is installed)"

# Generators, coroutines, an async generator and exceptions, each chosen; the consumer sleeps
# between a generator's steps (time that is not the generator's).
WORKLOAD = r"""
import asyncio, json, sys, threading, time
import spyglass

def gen(n):
    for i in range(n):
        yield i

def plain(x):
    return x + 1

def boom():
    raise ValueError("x")

async def coro(n):
    for _ in range(n):
        await asyncio.sleep(0.01)
    return n

async def agen(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i

async def consume():
    return [x async for x in agen(4)]

def catcher():
    while True:
        try:
            yield
        except KeyError:
            pass

spyglass.start(["gen", "plain", "boom", "coro", "agen", "catcher"])
for _ in range(3):
    for _ in gen(5):
        time.sleep(0.01)
for i in range(10):
    plain(i)
for _ in range(3):
    try:
        boom()
    except ValueError:
        pass
asyncio.run(coro(3))
asyncio.run(consume())
g = gen(10); next(g); g.close()
g = gen(5)
try:
    g.throw(KeyError)
except KeyError:
    pass
c = catcher(); next(c); c.throw(KeyError); c.throw(KeyError); c.close()
backend = spyglass.info()["backend"]
r = spyglass.results().to_dict()
spyglass.stop()
print(json.dumps({"backend": backend, "functions": r["functions"]}))
"""


def run_workload(python, package, backend):
    proc = run_python(python, package, ["-c", WORKLOAD], SPYGLASS_EXACT_BACKEND=backend)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["backend"], {f["name"]: f for f in out["functions"]}


@pytest.mark.parametrize("version", PRE_312)
def test_same_figures_as_profile_hook(version):
    python, package = build_package(version)
    eval_name, evaluated = run_workload(python, package, "eval_frame")
    profile_name, profiled = run_workload(python, package, "profile")
    assert eval_name == EVAL_FRAME
    assert profile_name == "profile hook"
    calls = {name: f["calls"] for name, f in evaluated.items()}
    assert calls == {name: f["calls"] for name, f in profiled.items()}
    # 3 whole runs, the one closed after a step, the one thrown into before it started.
    assert calls == {"gen": 5, "plain": 10, "boom": 3, "coro": 1, "agen": 1, "catcher": 1}
    for functions in (evaluated, profiled):
        # A generator's time is its steps only: the consumer's 150 sleeps of 10 ms are not in
        # it (a yield was taken for an end, or a resume for a start, they would be).
        assert functions["gen"]["seconds"] < 0.05
        # A coroutine's wall time runs from its start to its end, awaits included.
        assert functions["coro"]["coroutine_wall_seconds"] >= 0.025
        assert functions["coro"]["seconds"] < 0.02


def test_backend_named(interpreter):
    python, package = interpreter
    proc = run_python(python, package, ["-c", "import spyglass; spyglass.start(['f']); "
                                              "print(spyglass.info()['backend']); spyglass.stop(); "
                                              "print(spyglass.info()['backend'])"])
    assert proc.returncode == 0, proc.stderr
    running, stopped = proc.stdout.split("\n")[:2]
    version = subprocess.check_output([python, "-c", "import sys; print(sys.version_info[1])"],
                                      text=True)
    if int(version) < 12:
        assert running == stopped == EVAL_FRAME
    else:
        assert running.startswith("sys.monitoring")


THREADS = r"""
import _thread, json, threading, time
import spyglass

def work(x):
    return x * 2

def body(n):
    for i in range(n):
        work(i)

spyglass.start(["work"])
t = threading.Thread(target=body, args=(5,)); t.start(); t.join()
done = threading.Event()
def raw():  # a thread that `threading` never sees: no threading.setprofile
    body(7)
    done.set()
_thread.start_new_thread(raw, ())
done.wait(10)
time.sleep(0.05)
r = spyglass.results().to_dict()
spyglass.stop()
f = r["functions"][0]
print(json.dumps({"calls": f["calls"], "threads": len(f["threads"])}))
"""


@pytest.mark.parametrize("version", PRE_312)
def test_threads_started_after_start(version):
    python, package = build_package(version)
    proc = run_python(python, package, ["-c", THREADS], SPYGLASS_EXACT_BACKEND="eval_frame")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"calls": 12, "threads": 2}


def build_foreign(python, folder):
    """tests/exact/foreign_eval_frame.c for `python`: a stand-in for another tool's eval-frame
    function."""
    info = subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                                    "['include']); print(sysconfig.get_config_var('EXT_SUFFIX'))"],
                                   text=True).split("\n")
    output = os.path.join(str(folder), "foreign_eval_frame" + info[1])
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-I" + info[0], "-o", output,
                    os.path.join(HERE, "foreign_eval_frame.c")], check=True)
    return str(folder)


FOREIGN = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import foreign_eval_frame as foreign
import spyglass

def work(x):
    return x + 1

out = {}
spyglass.start(["work"])
out["ours_running"] = foreign.current()
spyglass.stop()
out["ours_stopped"] = foreign.current()

foreign.install()
before = foreign.seen()
spyglass.start(["work"])
for i in range(4):
    work(i)
out["backend"] = spyglass.info()["backend"]
out["calls"] = spyglass.results().to_dict()["functions"][0]["calls"]
out["theirs_running"] = foreign.current()
spyglass.stop()
out["theirs_stopped"] = foreign.current()
out["theirs_called"] = foreign.seen() > before
foreign.uninstall()

spyglass.start(["work"])
foreign.install()  # installed after ours: stop() leaves it
spyglass.stop()
out["installed_after"] = foreign.current()
foreign.uninstall()
spyglass.start(["work"])
out["again"] = spyglass.info()["backend"]
spyglass.stop()
print(json.dumps(out))
"""


@pytest.mark.parametrize("version", PRE_312)
def test_eval_function_restored_or_left_to_its_owner(version, tmp_path):
    python, package = build_package(version)
    folder = build_foreign(python, tmp_path)
    proc = run_python(python, package, ["-c", FOREIGN, folder])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {
        "ours_running": "other", "ours_stopped": "default",
        "backend": TAKEN, "calls": 4, "theirs_running": "foreign", "theirs_stopped": "foreign",
        "theirs_called": True, "installed_after": "foreign", "again": EVAL_FRAME}


def test_unknown_backend_name_warns(tmp_path):
    python, package = build_package(PRE_312[0] if PRE_312 else VERSIONS[0])
    proc = run_python(python, package, ["-c", "import spyglass; spyglass.start(['f']); "
                                              "print(spyglass.info()['backend'])"],
                      SPYGLASS_EXACT_BACKEND="bogus")
    assert proc.returncode == 0, proc.stderr
    if PRE_312:
        assert "SPYGLASS_EXACT_BACKEND=bogus" in proc.stderr
        assert proc.stdout.strip() == EVAL_FRAME


SPECIALISED = r"""
import json, spyglass
class Box:
    def __getitem__(self, i):
        return i
def plain(x):
    return x + 1
def caller(n):
    b = Box(); s = 0
    for i in range(n):
        s += plain(i) + b[i]
    return s
caller(5000)  # call sites specialised (3.11: inlined Python-to-Python calls) before start()
spyglass.start(["plain", "Box.__getitem__"])
caller(10)
r = spyglass.results().to_dict()
spyglass.stop()
print(json.dumps({f["name"]: f["calls"] for f in r["functions"]}))
"""


@pytest.mark.parametrize("version", PRE_312)
def test_call_sites_specialised_before_start(version):
    python, package = build_package(version)
    proc = run_python(python, package, ["-c", SPECIALISED], SPYGLASS_EXACT_BACKEND="eval_frame")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"plain": 10,
                                                                "Box.__getitem__": 10}
