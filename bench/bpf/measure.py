#!/usr/bin/env python3
"""Measures the in-kernel sampler prototype (bench/bpf/build/pysample) beside spyglass on the
reference workload: the BPF program's own cost (bpf_stats), the loader's and spyglass's CPU,
the target's slowdown in interleaved A/B runs, the counters, and per-function CPU seconds
against the workload's truth.

    bench/bpf/measure.py --python PY [--rates 1000,10000] [--pairs 3] [--iterations 40]
                         [--spyglass PATH] [--out FILE]

Each run starts the workload held (bench/hold.py), attaches the tool, waits 0.7 s, releases it;
the tools stop by themselves when the target exits. Per pair and rate: alone, pysample,
spyglass (`record --mode cpu`), the order reversed every other pair. Then one accuracy run per
rate with --threads 0 (no second Python thread, so no GIL waits: the CPU-bound functions'
wall-time truth is their on-CPU time), both tools attached to the same run. Needs root and
`sysctl kernel.bpf_stats_enabled=1` (set here, restored at the end).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# The shared reference workload where there is one, else the repository's copy (as bench/run.py).
_SHARED = "/work/shared/bench/workload.py"
WORKLOAD = os.environ.get("SPYGLASS_WORKLOAD") or (
    _SHARED if os.path.isfile(_SHARED) else
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "workload.py"))
HOLD = os.path.join(REPO, "bench", "hold.py")
PYSAMPLE = os.path.join(HERE, "build", "pysample")
FUNCS = ["heavy_computation", "many_tiny_calls", "recurse", "consume_generator",
         "Worker.process", "disk_io", "network_request", "run_async", "idle_wait"]
CPU_BOUND = ["heavy_computation", "many_tiny_calls", "recurse", "consume_generator"]
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """utime + stime of a live process, seconds (/proc/PID/stat)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except OSError:
        return None


def cpu_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]  # total, idle + iowait


def wait_quiet(max_wait=180, idle_pct=90):
    """The machine is shared: waits until a second passes with the CPUs >= idle_pct idle (others'
    benchmarks running meanwhile would make every ratio noise). Returns the seconds waited."""
    began = time.monotonic()
    while True:
        t0, i0 = cpu_times()
        time.sleep(1)
        t1, i1 = cpu_times()
        if 100 * (i1 - i0) / max(t1 - t0, 1) >= idle_pct or time.monotonic() - began > max_wait:
            return time.monotonic() - began


def start_workload(python, iterations, threads, truth):
    p = subprocess.Popen([python, HOLD, WORKLOAD, "--iterations", str(iterations),
                          "--threads", str(threads), "--truth", truth],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().split()
    assert line and line[0] == "waiting", line
    return p, int(line[1])


def finish_workload(p):
    p.stdin.write("go\n")
    p.stdin.flush()
    out = p.stdout.read()
    p.wait()
    for line in out.splitlines():
        if line.startswith("done"):
            return float(line.split("elapsed=")[1])
    raise RuntimeError("workload output: %r" % out)


def tool_command(tool, pid, rate, out, spyglass):
    if tool == "pysample":
        return [PYSAMPLE, str(pid), "--rate", str(rate), "--json", out]
    return [spyglass, "record", str(pid), "--mode", "cpu", "--rate", str(rate), "--format",
            "json", "-o", out, "-f"] + FUNCS


def run(python, tools, rate, iterations, threads, spyglass, tmp):
    """One workload run with `tools` attached (none: alone). Returns a dict of figures."""
    truth = os.path.join(tmp, "truth.json")
    waited = wait_quiet()
    busy0 = cpu_times()
    p, pid = start_workload(python, iterations, threads, truth)
    procs = {}
    for tool in tools:
        out = os.path.join(tmp, tool + ".json")
        if os.path.exists(out):
            os.unlink(out)
        procs[tool] = (subprocess.Popen(tool_command(tool, pid, rate, out, spyglass),
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True), out, time.monotonic())
    time.sleep(0.7)
    elapsed = finish_workload(p)
    busy1 = cpu_times()
    # The whole machine's busy share during the run (2 CPUs: 50 % = one core busy).
    machine_busy = 100 * (1 - (busy1[1] - busy0[1]) / max(busy1[0] - busy0[0], 1))
    result = {"elapsed": elapsed, "tools": {}, "waited_quiet": waited,
              "machine_busy_pct": machine_busy}
    with open(truth) as f:
        result["truth"] = json.load(f)["functions"]
    for tool, (tp, out, began) in procs.items():
        _, status, ru = os.wait4(tp.pid, 0)
        wall = time.monotonic() - began
        text = tp.stdout.read()
        tp.returncode = os.waitstatus_to_exitcode(status)
        if tp.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (tool, tp.returncode, text))
        with open(out) as f:
            data = json.load(f)
        cpu = ru.ru_utime + ru.ru_stime
        fig = {"cpu_seconds": cpu, "wall_seconds": wall, "cpu_pct": 100 * cpu / wall,
               "json": data}
        if tool == "pysample":
            fig["text"] = text
        result["tools"][tool] = fig
    return result


def pysample_figures(fig, rate):
    d = fig["json"]
    c = d["counters"]
    b = d["bpf"]
    out = {
        "bpf_us_per_run": b["run_time_ns"] / 1e3 / b["run_cnt"] if b["run_cnt"] else None,
        "bpf_core_pct": 100 * b["run_time_ns"] / 1e9 / d["wall_seconds"],
        "loader_cpu_pct": fig["cpu_pct"],
        "loader_sampling_cpu_pct": 100 * d["loader_cpu_seconds"] / d["wall_seconds"],
        "counters": c,
        "run_cnt": b["run_cnt"],
        "run_time_ns": b["run_time_ns"],
        "wall": d["wall_seconds"],
    }
    return out


def spyglass_figures(fig):
    d = fig["json"]
    out = {"cpu_pct": fig["cpu_pct"]}
    for key in ("sampler_cpu_seconds", "samples", "late_samples", "missed_samples",
                "duration_seconds", "achieved_rate_hz"):
        if key in d:
            out[key] = d[key]
    if "sampler_cpu_seconds" in d and d.get("duration_seconds"):
        out["sampler_cpu_pct"] = 100 * d["sampler_cpu_seconds"] / d["duration_seconds"]
    return out


def spyglass_seconds(data):
    res = {}
    for f in data.get("functions", []):
        name = f.get("pattern") or f.get("name")
        if f.get("seconds") is not None:
            res[name] = f["seconds"]
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", required=True)
    ap.add_argument("--rates", default="1000,10000")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--spyglass", default=os.path.join(HERE, "build", "spyglass-snapshot"))
    ap.add_argument("--calibrate-seconds", type=float, default=5)
    ap.add_argument("--out")
    args = ap.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    with open("/proc/sys/kernel/bpf_stats_enabled") as f:
        stats_before = f.read().strip()
    with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
        f.write("1")
    report = {"python": args.python, "rates": rates, "pairs": [], "accuracy": [],
              "calibration": []}
    tmp = tempfile.mkdtemp(prefix="pysample-bench-")
    try:
        # The program's cost on events that are not the target's (filter only): a target that
        # sleeps, so every event is some other task's.
        for rate in rates:
            sleeper = subprocess.Popen([args.python, "-c", "import time; time.sleep(1e6)"])
            time.sleep(0.5)
            out = os.path.join(tmp, "cal.json")
            subprocess.run([PYSAMPLE, str(sleeper.pid), "--rate", str(rate), "--duration",
                            str(args.calibrate_seconds), "--json", out],
                           stdout=subprocess.DEVNULL, check=True)
            sleeper.kill()
            sleeper.wait()
            with open(out) as f:
                d = json.load(f)
            b = d["bpf"]
            cal = {"rate": rate, "runs": b["run_cnt"], "run_time_ns": b["run_time_ns"],
                   "us_per_run": b["run_time_ns"] / 1e3 / max(b["run_cnt"], 1),
                   "core_pct": 100 * b["run_time_ns"] / 1e9 / d["wall_seconds"],
                   "in_target": d["counters"]["in_target"]}
            report["calibration"].append(cal)
            print("calibration %d Hz: %d runs, %.3f us per run (filter only), %.3f %% of a core"
                  % (rate, cal["runs"], cal["us_per_run"], cal["core_pct"]), flush=True)
        filter_us = {c["rate"]: c["us_per_run"] for c in report["calibration"]}

        for rate in rates:
            for i in range(args.pairs):
                order = ["alone", "pysample", "spyglass"]
                if i % 2:
                    order = ["spyglass", "pysample", "alone"]
                row = {"rate": rate, "pair": i + 1, "order": order}
                for arm in order:
                    r = run(args.python, [] if arm == "alone" else [arm], rate,
                            args.iterations, 1, args.spyglass, tmp)
                    row[arm] = {"elapsed": r["elapsed"], "machine_busy_pct":
                                r["machine_busy_pct"], "waited_quiet": r["waited_quiet"]}
                    if arm == "pysample":
                        f = pysample_figures(r["tools"]["pysample"], rate)
                        c = f["counters"]
                        other = c["events"] - c["in_target"]
                        walk = (f["run_time_ns"] / 1e3 - filter_us[rate] * other)
                        f["bpf_us_per_target_sample_est"] = walk / max(c["in_target"], 1)
                        row[arm].update(f)
                    elif arm == "spyglass":
                        row[arm].update(spyglass_figures(r["tools"]["spyglass"]))
                row["slowdown_pysample"] = row["pysample"]["elapsed"] / row["alone"]["elapsed"]
                row["slowdown_spyglass"] = row["spyglass"]["elapsed"] / row["alone"]["elapsed"]
                report["pairs"].append(row)
                ps, sg = row["pysample"], row["spyglass"]
                c = ps["counters"]
                print("%5d Hz pair %d: busy%% alone/ps/sg %.0f/%.0f/%.0f | alone %.3f s | pysample %.3f s (x%.4f) bpf %.3f us/run, "
                      "~%.2f us/target sample, %.3f %% core; loader %.3f %% | spyglass %.3f s "
                      "(x%.4f) cpu %.2f %% (sampler %s %%) | counters %s"
                      % (rate, i + 1, row["alone"]["machine_busy_pct"], ps["machine_busy_pct"],
                         sg["machine_busy_pct"], row["alone"]["elapsed"], ps["elapsed"],
                         row["slowdown_pysample"], ps["bpf_us_per_run"],
                         ps["bpf_us_per_target_sample_est"], ps["bpf_core_pct"],
                         ps["loader_cpu_pct"], sg["elapsed"], row["slowdown_spyglass"],
                         sg["cpu_pct"], "%.2f" % sg["sampler_cpu_pct"]
                         if "sampler_cpu_pct" in sg else "?", json.dumps(c)), flush=True)

        for rate in rates:
            r = run(args.python, ["pysample", "spyglass"], rate, args.iterations, 0,
                    args.spyglass, tmp)
            ps = r["tools"]["pysample"]["json"]
            sg = spyglass_seconds(r["tools"]["spyglass"]["json"])
            rows = []
            total = ps["drained"]["complete"] + ps["drained"]["cut"]
            for name in FUNCS:
                truth = r["truth"].get(name, {}).get("seconds")
                n = ps.get("functions", {}).get(name, {}).get("inclusive", 0)
                rows.append({"function": name, "truth_wall_s": truth,
                             "pysample_samples": n, "pysample_cpu_s": n / rate,
                             "pysample_share": n / total if total else None,
                             "spyglass_cpu_s": sg.get(name)})
            report["accuracy"].append({"rate": rate, "elapsed": r["elapsed"], "rows": rows,
                                       "pysample_counters": ps["counters"],
                                       "pysample_text": r["tools"]["pysample"]["text"]})
            print("\naccuracy %d Hz (--threads 0, both tools on one run, elapsed %.3f s):"
                  % (rate, r["elapsed"]))
            print("  %-18s %10s %12s %12s %9s %9s" % ("function", "truth wall", "pysample cpu",
                                                    "spyglass cpu", "ps err", "sg err"))
            for row in rows:
                t, p, s = row["truth_wall_s"], row["pysample_cpu_s"], row["spyglass_cpu_s"]
                pe = "%+.1f%%" % (100 * (p - t) / t) if t else "-"
                se = "%+.1f%%" % (100 * (s - t) / t) if t and s is not None else "-"
                print("  %-18s %10s %12.3f %12s %9s %9s%s"
                      % (row["function"], "%.3f" % t if t else "-", p,
                         "%.3f" % s if s is not None else "-", pe, se,
                         "" if row["function"] in CPU_BOUND else "  (not CPU-bound)"))
            print("  counters: %s" % json.dumps(ps["counters"]), flush=True)
    finally:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write(stats_before)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
