#!/usr/bin/env python3
"""What async-aware wall mode costs with many asyncio tasks (issue 15's closing note).

A target program holds N tasks, each suspended two coroutines deep (outer -> leaf ->
asyncio.sleep); `spyglass record -p PID -d SECONDS -r RATE --format json` is attached to it and
the JSON's mean_walk_us (walk time per sample, task reading included), achieved_rate_hz and the
task counters are printed, for N = 10, 100, 1,000 and each interpreter asked for.

    bench/async_tasks.py                                   # build/spyglass; 3.8, 3.12, 3.15
    bench/async_tasks.py --bin new=build/spyglass --bin old=/tmp/spyglass-base --repeat 3
    bench/async_tasks.py --interpreters 3.8,3.12 --tasks 1000 --load busy

Two loads: `idle` (every task sleeps for an hour: the chains never change) and `busy` (every
task wakes every 50-150 ms, so a thousand tasks wake ten thousand times a second and their
chains change under the reader). Several binaries are measured in the same run, alternating
(the machine's noise falls on both alike); --repeat gives each cell several runs, and the
median is printed with the range.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "lib"))
import interpreters  # noqa: E402  (tests/lib: the tests' discovery of CPython builds)

TARGET = r'''
import asyncio, os, sys

N = int(sys.argv[1])
BUSY = sys.argv[2] == "busy"

async def leaf(i):
    if BUSY:
        while True:
            await asyncio.sleep(0.05 + 0.1 * (i % 97) / 97)
            sum(range(50))
    else:
        await asyncio.sleep(3600)

async def outer(i):
    await leaf(i)

async def main():
    tasks = [asyncio.ensure_future(outer(i)) for i in range(N)]
    await asyncio.sleep(0.2)  # every task started, and suspended
    print("ready %d" % os.getpid(), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
'''


def find_interpreter(minor_text: str) -> str:
    for interpreter in interpreters.discover_pyenv() + interpreters.discover_system():
        if interpreter.minor_text == minor_text and interpreter.supported:
            return interpreter.path
    minor = tuple(int(part) for part in minor_text.split("."))
    wrapper = REPO_ROOT / ".cache" / ("debian-python%s" % minor_text) / ("python%s" % minor_text)
    if wrapper.is_file():
        return str(wrapper)
    result = interpreters.fetch_debian_unstable([minor]).get(minor)
    if result and result.interpreter:
        return result.interpreter.path
    raise SystemExit("no CPython %s on this machine" % minor_text)


def start_target(python: str, script: Path, tasks: int, load: str) -> subprocess.Popen:
    process = subprocess.Popen([python, str(script), str(tasks), load], stdout=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, env=interpreters.clean_environment(),
                               text=True)
    line = process.stdout.readline()
    if not line.startswith("ready"):
        process.kill()
        raise SystemExit("the target did not start: %r" % line)
    return process


def measure(binary: str, pid: int, seconds: float, rate: float, out: Path) -> dict:
    completed = subprocess.run([binary, "record", "-p", str(pid), "-d", str(seconds), "-r",
                                str(rate), "--format", "json", "-o", str(out)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, timeout=seconds + 60)
    if completed.returncode != 0:
        raise SystemExit("%s failed: %s" % (binary, completed.stderr.strip()[-500:]))
    return json.loads(out.read_text())


def cell(values):
    if not values:
        return "-"
    median = statistics.median(values)
    if len(values) == 1:
        return "%.0f" % median
    return "%.0f (%.0f-%.0f)" % (median, min(values), max(values))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", action="append", default=[],
                        help="NAME=PATH of a spyglass binary (repeatable; default build/spyglass)")
    parser.add_argument("--interpreters", default="3.8,3.12,3.15")
    parser.add_argument("--tasks", default="10,100,1000")
    parser.add_argument("--load", default="idle,busy")
    parser.add_argument("--rate", type=float, default=10000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", help="also write every measurement here")
    options = parser.parse_args()
    binaries = []
    for item in options.bin or ["new=%s" % (REPO_ROOT / "build" / "spyglass")]:
        name, _, path = item.partition("=")
        binaries.append((name, path) if path else (Path(name).name, name))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "tasks.py"
        script.write_text(TARGET)
        out = Path(folder) / "out.json"
        for minor_text in options.interpreters.split(","):
            python = find_interpreter(minor_text)
            for load in options.load.split(","):
                for count in (int(text) for text in options.tasks.split(",")):
                    target = start_target(python, script, count, load)
                    try:
                        runs = {name: [] for name, _ in binaries}
                        for _ in range(options.repeat):
                            for name, binary in binaries:
                                runs[name].append(measure(binary, target.pid, options.seconds,
                                                          options.rate, out))
                                time.sleep(0.2)
                    finally:
                        target.kill()
                        target.wait()
                    for name, documents in runs.items():
                        tasks = [d.get("tasks", {}) for d in documents]
                        row = {
                            "python": minor_text, "load": load, "tasks": count, "binary": name,
                            "walk_us": [d["mean_walk_us"] for d in documents],
                            "achieved_hz": [d["achieved_rate_hz"] for d in documents],
                            "tasks_per_sample": [t.get("samples", 0) / max(1, d["samples"])
                                                 for t, d in zip(tasks, documents)],
                            "cut_chains": [t.get("cut_chains", 0) for t in tasks],
                            "unreadable": [t.get("unreadable", 0) for t in tasks],
                            "cut_lists": [t.get("cut_lists", 0) for t in tasks],
                        }
                        rows.append(row)
                        print("%-5s %-4s %5d tasks  %-8s walk %16s us/sample  achieved %18s Hz"
                              "  tasks/sample %6.1f  cut %d unreadable %d" % (
                                  minor_text, load, count, name, cell(row["walk_us"]),
                                  cell(row["achieved_hz"]),
                                  statistics.median(row["tasks_per_sample"]),
                                  sum(row["cut_chains"]), sum(row["unreadable"])), flush=True)
    if options.json:
        Path(options.json).write_text(json.dumps({"rate_hz": options.rate, "rows": rows},
                                                 indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
