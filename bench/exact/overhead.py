"""Exact mode's overhead beside cProfile, yappi and line_profiler, same interpreter, same run.

    python3 bench/exact/overhead.py [--python /path/to/python ...] [--json out.json] [--quick]
                                    [--build-root DIR] [--calls N] [--repeat N]

For each interpreter: builds spyglass for it (`make python`, in build-python/ or --build-root),
installs yappi and line_profiler from PyPI into a private venv (build-bench/venv-<version>, or
DIR/venv-<version> with --build-root; skipped for interpreters without venv/pip), then measures
in one child process:

Before 3.12 spyglass is measured with each backend (spyglass/eval_frame, the default, and
spyglass/profile, the profile hook), chosen through SPYGLASS_EXACT_BACKEND at each start().

  chosen    ns added per call of a chosen function (`def hot(x): return x + 1`)
  unchosen  % slowdown of a call-heavy benchmark (recursive fib) whose functions are NOT chosen
            (another function is): what timing a few functions costs the rest of the program
  stopped   % slowdown of the same benchmark after start() + stop()

cProfile and yappi profile every function (they cannot choose); line_profiler times the chosen
function's lines. Each figure compares the fastest of many interleaved runs with and without the
tool (the least disturbed by other processes). Prints a table and writes JSON.
"""

import argparse
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = r'''
import gc, json, statistics, sys, time

def hot(x):
    return x + 1

def cold(x):
    return x - 1

def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

N_CALLS = int(sys.argv[1])
FIB = int(sys.argv[2])
REPEAT = int(sys.argv[3])

def loop(n):
    f = hot
    for i in range(n):
        f(i)

def timed(fn, *args):
    gc.disable()
    t = time.perf_counter()
    fn(*args)
    t = time.perf_counter() - t
    gc.enable()
    return t

def measure(enable, disable, work, *args):
    """(fastest with - fastest without, fastest without) over REPEAT interleaved pairs: the
    fastest run is the one least disturbed by other processes (a busy 2-core machine)."""
    withs, bases = [], []
    for _ in range(REPEAT):
        bases.append(timed(work, *args))
        enable()
        try:
            withs.append(timed(work, *args))
        finally:
            disable()
    return min(withs) - min(bases), min(bases)

def chosen_ns(enable, disable):
    delta, _ = measure(enable, disable, loop, N_CALLS)
    return delta / N_CALLS * 1e9

def unchosen_pct(enable, disable):
    delta, base = measure(enable, disable, fib, FIB)
    return delta / base * 100

out = {"python": sys.version.split()[0]}
nothing = lambda: None

# spyglass; before 3.12 with each of its backends (SPYGLASS_EXACT_BACKEND, read at start())
import os, spyglass
rows = {}
out["spyglass_backend"] = {}
def sg_hot():
    spyglass.start(["hot"])
def sg_cold():
    spyglass.start(["cold"])
def sg_stop():
    spyglass.stop()
backends = ["eval_frame", "profile"] if sys.version_info < (3, 12) else [None]
for backend in backends:
    name = "spyglass" if backend is None else "spyglass/" + backend
    if backend is not None:
        os.environ["SPYGLASS_EXACT_BACKEND"] = backend
    rows[name] = {"chosen_ns": chosen_ns(sg_hot, sg_stop),
                  "unchosen_pct": unchosen_pct(sg_cold, sg_stop)}
    spyglass.start(["hot"]); out["spyglass_backend"][name] = spyglass.info()["backend"]
    spyglass.stop()
    rows[name]["stopped_pct"] = unchosen_pct(nothing, nothing)  # after start/stop: nothing left
os.environ.pop("SPYGLASS_EXACT_BACKEND", None)

# cProfile (profiles everything)
import cProfile
prof = [None]
def cp_on():
    prof[0] = cProfile.Profile(); prof[0].enable()
def cp_off():
    prof[0].disable()
rows["cProfile"] = {"chosen_ns": chosen_ns(cp_on, cp_off), "unchosen_pct": unchosen_pct(cp_on, cp_off)}
p = cProfile.Profile(); p.enable(); p.disable()
rows["cProfile"]["stopped_pct"] = unchosen_pct(nothing, nothing)

try:
    import yappi
    yappi.set_clock_type("wall")
    def y_on():
        yappi.clear_stats(); yappi.start()
    def y_off():
        yappi.stop()
    rows["yappi"] = {"chosen_ns": chosen_ns(y_on, y_off), "unchosen_pct": unchosen_pct(y_on, y_off)}
    y_on(); y_off()
    rows["yappi"]["stopped_pct"] = unchosen_pct(nothing, nothing)
except ImportError:
    rows["yappi"] = None

try:
    from line_profiler import LineProfiler
    lp_hot = LineProfiler(hot)
    lp_cold = LineProfiler(cold)
    rows["line_profiler"] = {
        "chosen_ns": chosen_ns(lp_hot.enable_by_count, lp_hot.disable_by_count),
        "unchosen_pct": unchosen_pct(lp_cold.enable_by_count, lp_cold.disable_by_count)}
    rows["line_profiler"]["stopped_pct"] = unchosen_pct(nothing, nothing)
except ImportError:
    rows["line_profiler"] = None

out["rows"] = rows
print(json.dumps(out))
'''


def build_spyglass(python, build_root):
    env = dict(os.environ)
    if build_root:
        env["SPYGLASS_PYTHON_BUILD"] = build_root
    out = subprocess.run(["make", "-s", "--no-print-directory", "python", "PYTHON=" + python],
                         cwd=REPO, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit("make python failed for %s:\n%s" % (python, out.stderr[-2000:]))
    return out.stdout.strip().splitlines()[-1]


def private_venv(python, folder):
    """A venv with yappi and line_profiler for `python`, or `python` itself when it has none."""
    version = subprocess.check_output(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], text=True).strip()
    venv = os.path.join(folder, "venv-" + version)
    venv_python = os.path.join(venv, "bin", "python")
    if not os.path.exists(os.path.join(venv, ".ready")):
        made = subprocess.run([python, "-m", "venv", venv], capture_output=True, text=True)
        if made.returncode != 0:
            sys.stderr.write("no venv for %s (%s): comparing without yappi/line_profiler\n"
                             % (python, made.stderr.strip().splitlines()[-1:]))
            return python
        pip = subprocess.run([venv_python, "-m", "pip", "install", "-q",
                              "--disable-pip-version-check", "yappi", "line_profiler"],
                             capture_output=True, text=True)
        if pip.returncode != 0:
            sys.stderr.write("pip install yappi line_profiler failed for %s:\n%s\n"
                             % (python, pip.stderr[-1000:]))
        open(os.path.join(venv, ".ready"), "w").close()
    return venv_python


def fmt(value, unit):
    if value is None:
        return "-"
    return ("%.0f" % value if unit == "ns" else "%+.1f%%" % value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help="interpreter(s) (default: this one)")
    parser.add_argument("--json", help="output (default: overhead.json in the venv folder)")
    parser.add_argument("--quick", action="store_true", help="fewer calls and repetitions")
    parser.add_argument("--build-root", help="build folder for the extension and the venvs "
                        "(default: build-python/ and build-bench/)")
    parser.add_argument("--calls", type=int, help="calls per timed run of the chosen function "
                        "(default 300000, 200000 with --quick); fewer calls and more repeats "
                        "give a busy machine more chances of one undisturbed run")
    parser.add_argument("--repeat", type=int, help="interleaved runs with and without each tool "
                        "(default 31, 9 with --quick); the fastest of each is kept")
    args = parser.parse_args()
    build_root = os.path.abspath(args.build_root) if args.build_root else None
    bench_folder = build_root or os.path.join(REPO, "build-bench")
    args.json = args.json or os.path.join(bench_folder, "overhead.json")
    pythons = args.python or [sys.executable]
    n_calls, fib_n, repeat = (200000, 20, 9) if args.quick else (300000, 22, 31)
    n_calls = args.calls or n_calls
    repeat = args.repeat or repeat
    results = []
    for python in pythons:
        package = build_spyglass(python, build_root)
        runner = private_venv(python, bench_folder)
        env = dict(os.environ, PYTHONPATH=package)
        proc = subprocess.run([runner, "-c", CHILD, str(n_calls), str(fib_n), str(repeat)],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write("benchmark failed for %s:\n%s\n" % (python, proc.stderr[-3000:]))
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    print("%-8s %-19s %12s %14s %10s" % ("python", "tool", "chosen ns/call", "unchosen fib",
                                           "stopped"))
    for result in results:
        for tool, row in result["rows"].items():
            if row is None:
                print("%-8s %-19s %12s" % (result["python"], tool, "not installed"))
                continue
            print("%-8s %-19s %12s %14s %10s" % (
                result["python"], tool, fmt(row["chosen_ns"], "ns"),
                fmt(row["unchosen_pct"], "%"), fmt(row["stopped_pct"], "%")))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    print("JSON: %s" % args.json)


if __name__ == "__main__":
    main()
