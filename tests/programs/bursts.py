"""Target program: one thread that computes in bursts of ~15 ms between sleeps of 25 ms, for
cpu mode's accuracy on a thread that wakes, runs briefly and sleeps again (a request handler's
life). Its own truth is its thread's CPU time (time.thread_time, nearly all of it in `burst`),
kept in a file as "cpu_seconds wall_seconds" (both since it started), rewritten after every
burst. The clock is read only as a burst ends: reading it brings the thread's run time up to
date in the kernel, and read as a burst starts it would hide what cpu mode must get right on its
own (a thread's run time otherwise moves only at scheduler ticks).

    bursts.py TRUTH_FILE

Prints `ready {json}` first. Runs on every supported CPython (3.8+).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stackinfo  # noqa: E402


def burst(seconds):
    total = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for i in range(200):
            total += (i * i) % 7
    return total


def main(truth_path):
    began = time.monotonic()
    stackinfo.announce_ready()
    while True:
        time.sleep(0.025)
        burst(0.015)
        cpu = time.thread_time()
        scratch = truth_path + ".new"
        with open(scratch, "w") as f:
            f.write("%.6f %.6f\n" % (cpu, time.monotonic() - began))
        os.replace(scratch, truth_path)


if __name__ == "__main__":
    main(sys.argv[1])
