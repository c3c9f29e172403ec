#!/usr/bin/env python3
"""Soak test (not part of `make test`): `spyglass run` (record from the start) at 10 kHz for N minutes against the
reference workload, sampling spyglass's resident memory every 10 s; prints RSS at start and end
and each chosen function's result against the workload's own truth (with the error bound).

    bench/soak.py [--minutes 10] [--rate 10000] [--spyglass build/spyglass] [--python python3]
                  [--workload /work/shared/bench/workload.py]

Exit status 1 when RSS grew by more than --max-growth-mb after the first minute, or a function
is off by more than its error bound plus 5 % of its truth (--tolerance), or spyglass failed."""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def memory_kb(pid):
    """VmRSS, RssAnon and RssFile of a process in kB (None when it is gone): a growth of RssFile
    is pages of mapped files touched for the first time, not memory kept per sample."""
    found = {}
    try:
        with open("/proc/%d/status" % pid) as status:
            for line in status:
                key = line.split(":")[0]
                if key in ("VmRSS", "RssAnon", "RssFile"):
                    found[key] = int(line.split()[1])
    except OSError:
        return None
    return found if "VmRSS" in found else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=10000)
    parser.add_argument("--spyglass", default=str(REPO / "build" / "spyglass"))
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--workload", default="/work/shared/bench/workload.py")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between RSS reads")
    parser.add_argument("--max-growth-mb", type=float, default=8.0)
    parser.add_argument("--tolerance", type=float, default=0.05,
                        help="allowed error beyond the bound, as a share of the truth")
    args = parser.parse_args()

    args.spyglass = os.path.abspath(args.spyglass)  # it runs in a temporary folder
    functions = sorted(set(re.findall(r'(?:timed|_record)\("([\w.]+)"',
                                      Path(args.workload).read_text())))
    seconds = args.minutes * 60
    workdir = Path(tempfile.mkdtemp(prefix="spyglass-soak-"))
    truth_path = workdir / "truth.json"
    results_path = workdir / "results.json"
    # `run` starts the workload and samples it from its first milliseconds, so the recording
    # and the workload's own truth cover the same time.
    command = [args.spyglass, "run", "-f"] + functions + [
        "-r", str(args.rate), "--format", "json", "-o", str(results_path)]
    command += ["--", args.python, args.workload, "--seconds", str(seconds), "--truth",
                str(truth_path)]
    started = time.monotonic()
    spyglass = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, cwd=str(workdir))
    readings = []  # (seconds since start, RSS kB)
    time.sleep(1.0)  # past the exec of spyglass and its attach
    while spyglass.poll() is None:
        memory = memory_kb(spyglass.pid)
        if memory is not None:
            readings.append((time.monotonic() - started, memory["VmRSS"]))
            print("soak: %6.0f s  spyglass RSS %7.1f MB (anonymous %.1f MB, files %.1f MB)" % (
                readings[-1][0], memory["VmRSS"] / 1024, memory.get("RssAnon", 0) / 1024,
                memory.get("RssFile", 0) / 1024), flush=True)
        deadline = time.monotonic() + args.interval
        while spyglass.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    stdout, stderr = spyglass.communicate()
    print("soak: spyglass exited %d after %.0f s; stderr: %s" % (
        spyglass.returncode, time.monotonic() - started, stderr.decode().strip()))
    failed = spyglass.returncode != 0
    if not readings or not results_path.exists() or not truth_path.exists():
        print("soak: no results (output: %r)" % stdout.decode()[-2000:])
        return 1
    after_first_minute = [rss for t, rss in readings if t >= 60] or [readings[-1][1]]
    growth_mb = (readings[-1][1] - after_first_minute[0]) / 1024
    print("soak: RSS start %.1f MB, after 1 min %.1f MB, end %.1f MB, max %.1f MB "
          "(growth after the first minute %+.1f MB)" % (
              readings[0][1] / 1024, after_first_minute[0] / 1024, readings[-1][1] / 1024,
              max(r for _, r in readings) / 1024, growth_mb))
    if growth_mb > args.max_growth_mb:
        print("soak: FAIL resident memory grew")
        failed = True

    results = json.loads(results_path.read_text())
    truth = json.loads(truth_path.read_text())["functions"]
    # The truth covers the whole run, the recording only `seconds` of it: compare rates
    # (seconds inside the function per second of run).
    truth_elapsed = json.loads(truth_path.read_text()).get("elapsed") or seconds
    recorded = results.get("duration_seconds") or seconds
    print("soak: %d samples at %.0f Hz asked %d (late %s, missed %s)" % (
        results.get("samples", 0), results.get("achieved_rate_hz", 0), args.rate,
        results.get("late_samples"), results.get("missed_samples")))
    print("%-20s %12s %12s %9s %10s" % ("function", "spyglass", "truth", "error", "bound"))
    for item in results["functions"]:
        name = item["name"]
        if name not in truth:
            continue
        expected = truth[name]["seconds"] / truth_elapsed * recorded
        # A coroutine's truth is its wall time, suspensions included.
        measured = item.get("coroutine_wall_seconds", item["seconds"])
        error = measured - expected
        bound = item.get("error_seconds", 0) or 0
        if name == "gather_async" and "coroutine_wall_seconds" not in item:
            print("%-20s %10.2f s %10.2f s  (coroutine wall time not measured by sampling)" % (
                name, measured, expected))
            continue
        ok = abs(error) <= bound + args.tolerance * expected
        print("%-20s %10.2f s %10.2f s %+8.1f%% %8.2f s %s" % (
            name, measured, expected, 100 * error / expected if expected else 0,
            bound, "" if ok else "OUT OF BOUNDS"))
        failed |= not ok
    print("soak: files in %s" % workdir)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
