#!/usr/bin/env python3
"""Memory growth (not part of `make test`): how spyglass's resident memory grows with run length,
with the number of distinct stacks, and with the timeline the Chrome/speedscope formats need.

    bench/memory_growth.py            # the full run, about 14 minutes
    bench/memory_growth.py --quick    # a short version, about 2 minutes
    bench/memory_growth.py [--spyglass build/spyglass] [--python python3.12] [--rate 10000]

Each experiment starts a generated Python program, runs `spyglass record -p PID -r RATE -d S -o
FILE` against it, reads spyglass's VmRSS from /proc every few seconds while it samples, and its
peak (ru_maxrss from wait4, which includes writing the output) when it ends:

  (a) run length: a 64-deep program with 256 paths, sampled at 10 kHz for 6 minutes (3.6 M
      samples, as many as an hour at 1 kHz); the slope of RSS against samples after warm-up;
  (b) distinct stacks: N = 1k, 10k, 100k distinct call paths through one recursive function
      (10 call sites a level: shared frames), and N distinct functions (own code objects and
      frames); the RSS per distinct stack (slope over N);
  (c) the timeline: a program whose stack changes at nearly every sample (one span a sample),
      written as collapsed stacks (no timeline kept), speedscope and Chrome trace (timeline
      kept, bounded at 200,000 spans; the shorter runs keep it complete, the costliest case
      for writing the output);
  (d) thread churn and code churn: a program that keeps starting short-lived threads, and one
      that keeps compiling fresh code objects (exec), as a server or namedtuple factory does.

Distinct stacks, trie nodes and frames are counted in the collapsed output. See docs/memory.md.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def status_kb(pid):
    """VmRSS and VmHWM of `pid` in kB, or None when it is gone."""
    values = {}
    try:
        with open("/proc/%d/status" % pid) as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0])
    except OSError:
        return None
    return values if len(values) == 2 else None


def default_python():
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
        candidate = Path(root) / "versions" / "3.12.1" / "bin" / "python3"
        if candidate.exists():
            return str(candidate)
    except OSError:
        pass
    return sys.executable


# ---- target programs -------------------------------------------------------------------------

LEAF = """def leaf(n):
    x = 0
    for i in range(n):
        x += i
    return x
"""

READY = "print('ready', flush=True)\n"


def deep_program(depth=64, branch_levels=range(40, 48), leaf_iterations=2000):
    """`depth` nested functions; at each branch level the call goes through one of two lines, so
    2**len(branch_levels) paths (256) of `depth` frames, chosen at random each round."""
    src = [LEAF]
    first_branch = min(branch_levels)
    for level in range(depth):
        callee = "f%d(p)" % (level + 1) if level + 1 < depth else "leaf(%d)" % leaf_iterations
        src.append("def f%d(p):\n" % level)
        if level in branch_levels:
            src.append("    if p >> %d & 1:\n        return %s\n" % (level - first_branch, callee))
        src.append("    return %s\n" % callee)
    src.append(READY)
    src.append("s = 1\nwhile True:\n    s = (s * 1103515245 + 12345) & 0x7fffffff\n"
               "    f0(s >> 8)\n")
    return "".join(src)


def changing_program(depth=16, leaves=16):
    """A stack that changes at nearly every sample (one of `leaves` short functions under a
    `depth`-deep chain, chosen at random each round) but few distinct stacks: the timeline grows
    by about a span a sample while the rest stays still."""
    src = []
    for k in range(leaves):
        src.append("def leaf%d():\n    x = 0\n    for i in range(30):\n        x += i\n"
                   "    return x\n" % k)
    src.append("LEAVES = [%s]\n" % ", ".join("leaf%d" % k for k in range(leaves)))
    for level in range(depth):
        callee = "f%d(p)" % (level + 1) if level + 1 < depth else "LEAVES[p %% %d]()" % leaves
        src.append("def f%d(p):\n    return %s\n" % (level, callee))
    src.append(READY)
    src.append("s = 1\nwhile True:\n    s = (s * 1103515245 + 12345) & 0x7fffffff\n"
               "    f0(s >> 8)\n")
    return "".join(src)


def paths_program(digits):
    """10**digits distinct call paths through one function: each level calls on from one of ten
    lines (a decimal digit of the path's number). The frames are shared; the stacks are not."""
    src = [LEAF, "def node(i, depth):\n    if depth == 0:\n        return leaf(30)\n"
                 "    d = i % 10\n    i //= 10\n"]
    for d in range(10):
        src.append("    if d == %d:\n        return node(i, depth - 1)\n" % d)
    src.append("import random\norder = list(range(10 ** %d))\nrandom.Random(1).shuffle(order)\n"
               % digits)
    src.append(READY)
    src.append("while True:\n    for i in order:\n        node(i, %d)\n" % digits)
    return "".join(src)


def functions_program(count):
    """`count` distinct functions called in a shuffled order: each brings its own code object,
    frames and stacks."""
    src = []
    for k in range(count):
        src.append("def g%d():\n    x = 0\n    for i in range(30):\n        x += i\n    return x\n"
                   % k)
    src.append("import random\nfunctions = [%s]\nrandom.Random(1).shuffle(functions)\n"
               % ", ".join("g%d" % k for k in range(count)))
    src.append(READY)
    src.append("while True:\n    for f in functions:\n        f()\n")
    return "".join(src)


def threads_program():
    """A new short-lived thread at a time, as a thread-per-request server does."""
    return ("import threading\n" + LEAF + READY +
            "while True:\n    t = threading.Thread(target=leaf, args=(3000,))\n"
            "    t.start()\n    t.join()\n")


def code_churn_program():
    """Fresh code objects all the time (exec of generated source, as namedtuple and dataclass
    factories do): each has a new address or identity for the reader, same name, file and lines."""
    return (READY + "SOURCE = 'def made(n):\\n    x = 0\\n    for i in range(n):\\n"
            "        x += i\\n    return x\\n'\n"
            "while True:\n    namespace = {}\n"
            "    exec(compile(SOURCE, '<generated>', 'exec'), namespace)\n"
            "    namespace['made'](300)\n")


# ---- running one measurement -------------------------------------------------------------------

class Run:
    """One `spyglass record` against one target: RSS readings while sampling, the peak, outputs."""

    def __init__(self, label):
        self.label = label
        self.readings = []  # (seconds since spyglass started, VmRSS kB), while sampling
        self.sampling_hwm_kb = 0  # VmHWM at the last reading: attach and sampling, no output
        self.peak_kb = 0  # ru_maxrss: sampling and writing the output
        self.output = None
        self.output_bytes = 0
        self.samples = None
        self.seconds = 0.0
        self.stacks = self.nodes = self.frames = None
        self.extra = {}

    def sampling_kb(self):
        return self.readings[-1][1] if self.readings else 0

    def first_kb(self):
        return self.readings[0][1] if self.readings else 0


def start_target(python, source, workdir, name):
    path = workdir / (name + ".py")
    path.write_text(source)
    target = subprocess.Popen([python, str(path)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, cwd=workdir)
    line = target.stdout.readline()  # compiling 100k functions takes a few seconds
    if b"ready" not in line:
        target.kill()
        raise RuntimeError("target %s did not start" % name)
    time.sleep(0.5)  # into its loop
    return target


def record(args, target_pid, seconds, output, label, extra_args=(), interval=None):
    """Runs spyglass record for `seconds` and polls its RSS every `interval` seconds while it
    samples."""
    interval = interval or args.interval
    run = Run(label)
    run.output = output
    if output.exists():
        output.unlink()
    command = [args.spyglass, "record", "-p", str(target_pid), "-r", str(args.rate), "-d",
               str(seconds), "-o", str(output)] + list(extra_args)
    with open(output.with_suffix(".stderr"), "wb") as err:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err,
                                stdin=subprocess.DEVNULL)
    started = time.monotonic()
    next_read = started + min(1.0, interval)
    while True:
        done, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if done:
            break
        now = time.monotonic()
        # Past `seconds` (or once the output file exists) spyglass may be rendering the output:
        # that shows in the peak only.
        if now >= next_read and now - started < seconds and not output.exists():
            values = status_kb(proc.pid)
            if values:
                run.readings.append((now - started, values["VmRSS"]))
                run.sampling_hwm_kb = values["VmHWM"]
            next_read += interval
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    run.peak_kb = usage.ru_maxrss
    run.seconds = time.monotonic() - started
    if proc.returncode != 0 or not output.exists():
        raise RuntimeError("%s: spyglass exited %d: %s" % (
            label, proc.returncode, output.with_suffix(".stderr").read_text().strip()))
    run.output_bytes = output.stat().st_size
    return run


def count_collapsed(run):
    """Samples, distinct stacks, trie nodes (distinct prefixes) and distinct frames."""
    samples = 0
    stacks = 0
    prefixes = set()
    frames = set()
    with open(run.output, encoding="utf-8", errors="replace") as folded:
        for line in folded:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            samples += int(count)
            stacks += 1
            parts = stack.split(";")
            frames.update(parts)
            prefix_hash = 0
            for part in parts:  # the prefixes are identified by a chain of hashes (memory)
                prefix_hash = hash((prefix_hash, part))
                prefixes.add(prefix_hash)
    run.samples, run.stacks, run.nodes, run.frames = samples, stacks, len(prefixes), len(frames)


def slope(points):
    """Least-squares slope of y over x."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return float("nan")
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def mib(kb):
    return "%.1f" % (kb / 1024)


def print_table(title, header, rows):
    print("\n" + title)
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(str(h).rjust(w) if i else str(h).ljust(w)
                     for i, (h, w) in enumerate(zip(header, widths)))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                        for i, (c, w) in enumerate(zip(r, widths))), flush=True)


# ---- the experiments -------------------------------------------------------------------------

def run_length(args, workdir, results):
    target = start_target(args.python, deep_program(), workdir, "deep")
    try:
        run = record(args, target.pid, args.long_seconds, workdir / "deep.folded", "deep, 64 frames")
    finally:
        target.kill()
        target.wait()
    count_collapsed(run)
    rate = run.samples / args.long_seconds
    warm = [(t, kb * 1024) for t, kb in run.readings if t >= args.long_seconds * 0.1]
    bytes_per_second = slope(warm)
    bytes_per_sample = bytes_per_second / rate if rate else float("nan")
    hour = 3_600_000
    end_kb = run.sampling_kb()
    extrapolated_kb = end_kb + max(0, hour - run.samples) * bytes_per_sample / 1024
    results["run_length"] = {
        "seconds": args.long_seconds, "rate_hz": args.rate, "samples": run.samples,
        "achieved_hz": rate, "stacks": run.stacks, "trie_nodes": run.nodes, "frames": run.frames,
        "rss_first_kb": run.first_kb(), "rss_warm_kb": warm[0][1] / 1024 if warm else None,
        "rss_end_kb": end_kb, "hwm_sampling_kb": run.sampling_hwm_kb, "peak_kb": run.peak_kb, "bytes_per_sample": bytes_per_sample,
        "output_bytes": run.output_bytes, "one_hour_1khz_kb": extrapolated_kb,
        "readings": run.readings}
    rows = []
    step = max(1, len(run.readings) // 12)
    for t, kb in run.readings[::step] + ([run.readings[-1]] if run.readings else []):
        rows.append(["%.0f s" % t, "{:,}".format(int(t * rate)), mib(kb)])
    print_table("(a) run length: 64-deep program, %d Hz asked, %.0f Hz achieved, %s samples, "
                "%d distinct stacks, %d trie nodes, %d frames" % (
                    args.rate, rate, "{:,}".format(run.samples), run.stacks, run.nodes,
                    run.frames), ["time", "samples (about)", "RSS MiB"], rows)
    print("slope after warm-up (from %.0f s): %.4f bytes per sample (%.1f bytes/s); "
          "RSS %s MiB at the end of sampling (peak %s MiB before the output, %s MiB with "
          "its %.1f MiB written); one hour at 1 kHz (3.6 M samples): %s MiB" % (
              args.long_seconds * 0.1, bytes_per_sample, bytes_per_second, mib(end_kb),
              mib(run.sampling_hwm_kb), mib(run.peak_kb), run.output_bytes / 2**20,
              mib(extrapolated_kb)))


def distinct_stacks(args, workdir, results):
    rows = []
    results["distinct"] = {}
    for kind, sizes, make in (("paths", args.path_digits, paths_program),
                              ("functions", args.function_counts, functions_program)):
        runs = []
        for size in sizes:
            n = 10 ** size if kind == "paths" else size
            seconds = args.distinct_seconds(n)
            target = start_target(args.python, make(size), workdir, "%s%d" % (kind, n))
            try:
                run = record(args, target.pid, seconds, workdir / ("%s%d.folded" % (kind, n)),
                             "%s %d" % (kind, n), interval=1.0)
            finally:
                target.kill()
                target.wait()
            count_collapsed(run)
            run.extra["n"] = n
            runs.append(run)
            grown = run.sampling_kb() - run.first_kb()
            rows.append([kind, "{:,}".format(n), "%.0f" % seconds, "{:,}".format(run.samples),
                         "{:,}".format(run.stacks), "{:,}".format(run.nodes),
                         "{:,}".format(run.frames), mib(run.first_kb()), mib(run.sampling_kb()),
                         mib(run.sampling_hwm_kb), mib(run.peak_kb),
                         "%.1f" % (run.output_bytes / 2**20),
                         "%.0f" % (grown * 1024 / run.nodes)])
        per_node = slope([(r.nodes, r.sampling_kb() * 1024) for r in runs])
        per_stack = slope([(r.stacks, r.sampling_kb() * 1024) for r in runs])
        per_n = slope([(r.extra["n"], r.sampling_kb() * 1024) for r in runs])
        results["distinct"][kind] = {
            "runs": [{"n": r.extra["n"], "samples": r.samples, "stacks": r.stacks,
                      "trie_nodes": r.nodes, "frames": r.frames, "rss_first_kb": r.first_kb(),
                      "rss_end_kb": r.sampling_kb(), "hwm_sampling_kb": r.sampling_hwm_kb,
                      "peak_kb": r.peak_kb,
                      "output_bytes": r.output_bytes} for r in runs],
            "bytes_per_trie_node": per_node, "bytes_per_stack": per_stack, "bytes_per_n": per_n}
        results["distinct"][kind]["summary"] = (
            "%s: %.0f bytes per trie node, %.0f per distinct stack (slope of RSS at the end of "
            "sampling over the runs)" % (kind, per_node, per_stack))
    print_table("(b) distinct stacks, %d Hz asked (RSS0: first reading; RSS: end of sampling; "
                "HWM: peak before the output; peak: with the output written)" % args.rate,
                ["target", "N", "s", "samples", "stacks", "trie nodes", "frames", "RSS0 MiB",
                 "RSS MiB", "HWM MiB", "peak MiB", "out MiB", "B/node"], rows)
    for kind in results["distinct"]:
        print(results["distinct"][kind]["summary"])


def timeline(args, workdir, results):
    """A program whose stack changes at nearly every sample, so that nearly every sample starts
    a new span, with and without an output that needs the timeline."""
    rows = []
    results["timeline"] = []
    variants = [("collapsed (no timeline)", "c.folded", args.timeline_seconds),
                ("speedscope", "c.speedscope.json", args.timeline_seconds),
                ("speedscope, shorter", "short.speedscope.json", args.short_seconds),
                ("chrome, shorter", "short.trace.json", args.short_seconds)]
    target = start_target(args.python, changing_program(), workdir, "changing")
    try:
        for label, name, seconds in variants:
            run = record(args, target.pid, seconds, workdir / name, label, interval=1.0)
            note = ""
            if name.endswith(".trace.json"):
                with open(run.output) as f:
                    head = f.read(4096).replace(" ", "")
                note = "timeline %s" % ("complete" if '"timeline_complete":true' in head else
                                        "cut at its bound")
            elif name.endswith(".speedscope.json"):
                with open(run.output) as f:
                    doc = json.load(f)
                samples = sum(len(p["samples"]) for p in doc["profiles"])
                note = "%s samples in the file" % "{:,}".format(samples)
            quarters = [run.readings[min(len(run.readings) - 1, len(run.readings) * q // 4)][1]
                        for q in (1, 2, 3)]
            rows.append([label, "%.0f" % seconds] + [mib(kb) for kb in quarters] + [
                mib(run.sampling_kb()), mib(run.sampling_hwm_kb), mib(run.peak_kb),
                "%.1f" % (run.output_bytes / 2**20), note])
            results["timeline"].append({"label": label, "seconds": seconds,
                                        "rss_end_kb": run.sampling_kb(),
                                        "hwm_sampling_kb": run.sampling_hwm_kb,
                                        "peak_kb": run.peak_kb,
                                        "output_bytes": run.output_bytes, "note": note,
                                        "readings": run.readings})
    finally:
        target.kill()
        target.wait()
    print_table("(c) timeline: 17-deep program whose stack changes at nearly every sample, %d Hz "
                "asked; the timeline stops at 200,000 spans. RSS at 1/4, 1/2, 3/4 and the end "
                "of sampling; HWM: peak before the output; peak: with the output written"
                % args.rate, ["output", "s", "RSS 1/4", "1/2", "3/4", "end", "HWM", "peak",
                              "out MiB", ""], rows)


def churn(args, workdir, results):
    rows = []
    results["churn"] = []
    for label, source, name in (("thread churn", threads_program(), "threads"),
                                ("code churn (exec)", code_churn_program(), "codes")):
        target = start_target(args.python, source, workdir, name)
        try:
            output = workdir / (name + ".json")
            extra = ["-f", "leaf", "--per-thread", "--format", "json"] if name == "threads" else [
                "--format", "json"]
            run = record(args, target.pid, args.churn_seconds, output, label, extra, interval=1.0)
        finally:
            target.kill()
            target.wait()
        doc = json.loads(run.output.read_text())
        threads = len(doc["functions"][0].get("threads", [])) if name == "threads" else 1
        warm = [(t, kb * 1024) for t, kb in run.readings if t >= 2]
        per_second = slope(warm)
        per_sample = per_second / doc["achieved_rate_hz"] if doc["achieved_rate_hz"] else 0
        grown = run.sampling_kb() - run.first_kb()
        rows.append([label, "%.0f" % args.churn_seconds, "{:,}".format(doc["samples"]),
                     "{:,}".format(threads), mib(run.first_kb()), mib(run.sampling_kb()),
                     "%.1f" % per_sample,
                     "%.0f" % (grown * 1024 / threads) if name == "threads" else ""])
        results["churn"].append({"label": label, "samples": doc["samples"], "threads": threads,
                                 "rss_first_kb": run.first_kb(), "rss_end_kb": run.sampling_kb(),
                                 "bytes_per_sample": per_sample, "readings": run.readings})
    print_table("(d) churn, %d Hz asked" % args.rate,
                ["target", "s", "samples", "threads seen", "RSS0 MiB", "RSS MiB",
                 "B/sample", "B/thread"], rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short version (about 2 minutes)")
    parser.add_argument("--spyglass", default=str(REPO / "build" / "spyglass"))
    parser.add_argument("--python", default=default_python())
    parser.add_argument("--rate", type=int, default=10000)
    parser.add_argument("--interval", type=float, default=5.0,
                        help="seconds between RSS reads in the run-length experiment")
    parser.add_argument("--only", default="a,b,c,d", help="experiments to run: a,b,c,d")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    args.spyglass = os.path.abspath(args.spyglass)
    if args.quick:
        args.long_seconds, args.timeline_seconds, args.short_seconds = 30, 10, 5
        args.churn_seconds = 10
        args.path_digits, args.function_counts = [3, 4], [1000, 10000]
        args.interval = min(args.interval, 2.0)
    else:
        # 3.6 M samples at 10 kHz: as many as an hour at 1 kHz.
        args.long_seconds, args.timeline_seconds, args.short_seconds = 360, 80, 10
        args.churn_seconds = 30
        args.path_digits, args.function_counts = [3, 4, 5], [1000, 10000, 100000]
    # Enough samples to catch most of N paths visited in a shuffled order (about 3 N).
    args.distinct_seconds = lambda n: max(5.0, min(45.0, 3.0 * n / args.rate))

    workdir = Path(tempfile.mkdtemp(prefix="sgmem-", dir="/tmp"))
    print("spyglass %s, target %s, work in %s" % (args.spyglass, args.python, workdir), flush=True)
    results = {"rate_hz": args.rate, "quick": args.quick, "python": args.python}
    started = time.monotonic()
    try:
        chosen = args.only.split(",")
        if "a" in chosen:
            run_length(args, workdir, results)
        if "b" in chosen:
            distinct_stacks(args, workdir, results)
        if "c" in chosen:
            timeline(args, workdir, results)
        if "d" in chosen:
            churn(args, workdir, results)
    finally:
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
        shutil.rmtree(workdir, ignore_errors=True)
    print("\ntotal %.0f s" % (time.monotonic() - started))


if __name__ == "__main__":
    main()
