#!/usr/bin/env python3
"""The floor under any in-context sampler on this machine: what the CPU-clock perf-event
interrupt costs the task it interrupts, BPF program included but doing nothing (pysample's
target is a sleeping process, so every run of the program only compares the tgid).

    bench/bpf/floor.py [--rates 1000,10000] [--pairs 5] [--iterations N]

A fixed C spin loop (spin.c) is timed alone and with `pysample SLEEPER --rate R` attached,
interleaved, each run after a quiet second (the machine is shared); other load only ever adds
time, so each arm's minimum over the runs is compared: the extra time ÷ (its duration × R) is
the cost of one interrupt (µs). Every run is printed.
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SPIN = os.path.join(HERE, "build", "spin")
PYSAMPLE = os.path.join(HERE, "build", "pysample")


def spin(n):
    return float(subprocess.run([SPIN, str(n)], capture_output=True, text=True,
                                check=True).stdout)


def cpu_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]


def wait_quiet(max_wait=120, idle_pct=90):
    began = time.monotonic()
    while time.monotonic() - began < max_wait:
        t0, i0 = cpu_times()
        time.sleep(1)
        t1, i1 = cpu_times()
        if 100 * (i1 - i0) / max(t1 - t0, 1) >= idle_pct:
            return


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="1000,10000")
    ap.add_argument("--pairs", type=int, default=9)
    ap.add_argument("--iterations", type=int, default=300_000_000)
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    subprocess.run(["cc", "-O2", "-o", SPIN, os.path.join(HERE, "spin.c")], check=True)
    sleeper = subprocess.Popen([args.python, "-c", "import time; time.sleep(1e6)"])
    time.sleep(0.3)
    try:
        for rate in [int(r) for r in args.rates.split(",")]:
            runs = {"alone": [], "perf": []}
            for i in range(args.pairs):
                for arm in (["alone", "perf"] if i % 2 == 0 else ["perf", "alone"]):
                    if arm == "perf":
                        p = subprocess.Popen([PYSAMPLE, str(sleeper.pid), "--rate", str(rate),
                                              "--duration", "60"], stdout=subprocess.DEVNULL)
                        time.sleep(0.3)
                        wait_quiet()
                        runs[arm].append(spin(args.iterations))
                        p.send_signal(2)
                        p.wait()
                    else:
                        wait_quiet()
                        runs[arm].append(spin(args.iterations))
                print("%5d Hz run %d: alone %.4f s, with perf event %.4f s"
                      % (rate, i + 1, runs["alone"][-1], runs["perf"][-1]), flush=True)
            a, p_ = min(runs["alone"]), min(runs["perf"])
            per = (p_ - a) / (p_ * rate) * 1e6
            print("%5d Hz: min alone %.4f s, min with perf event %.4f s (x%.4f): %.2f us per "
                  "interrupt = %.2f %% of the interrupted CPU"
                  % (rate, a, p_, p_ / a, per, per * rate / 1e4), flush=True)
    finally:
        sleeper.kill()
        sleeper.wait()


if __name__ == "__main__":
    main()
