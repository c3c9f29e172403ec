"""A multiprocessing.Pool whose workers count their own calls: the truth for exact mode across
processes (`spyglass record -p PID --exact -s`).

    python pool_target.py fork|spawn|forkserver TASKS [--busy FLAG]

The program imports spyglass (with SPYGLASS_LISTEN=1 its control socket opens at import, in the
parent and in every worker: forked ones open their own at the fork, spawned ones import this
module). It starts a pool of 4 workers, prints `ready PID...` (the workers' pids), waits for a
line `go` on stdin, runs TASKS calls of `crunch` in the pool, prints the calls and seconds each
worker counted as JSON ({"calls": {pid: n}, "seconds": {pid: s}}), waits for `exit`, and ends.
Stdin closed ends it too.

With `--busy FLAG`, every worker runs Python code (`spin`) from `ready` until the file FLAG
exists, and `go` waits for that: a worker idle in C would take exact mode started from outside
only at its first call.
"""

import json
import multiprocessing
import os
import sys
import time

try:
    import spyglass  # noqa: F401  (SPYGLASS_LISTEN=1: the control socket opens here)
except ImportError:  # exact mode may be started from outside instead
    spyglass = None

WORK = 20_000  # iterations of a call: about 2-3 ms


def crunch(n):
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i * i % 7
    return os.getpid(), time.perf_counter() - start


def worker_pid(_):
    time.sleep(0.05)  # long enough that every worker takes one
    return os.getpid()


def spin(flag):
    while not os.path.exists(flag):
        time.sleep(0.001)
    return os.getpid()


def main():
    how, tasks = sys.argv[1], int(sys.argv[2])
    flag = sys.argv[sys.argv.index("--busy") + 1] if "--busy" in sys.argv else None
    with multiprocessing.get_context(how).Pool(4) as pool:
        pids = set()
        while len(pids) < 4:
            pids.update(pool.map(worker_pid, range(8), chunksize=1))
        # One spin per worker: a worker spinning takes no other task.
        spinning = pool.map_async(spin, [flag] * 4, chunksize=1) if flag else None
        print("ready " + " ".join(str(p) for p in sorted(pids)), flush=True)
        for line in sys.stdin:
            if line.strip() == "go":
                break
        else:
            return
        if spinning is not None:
            spinning.get()
        calls, seconds = {}, {}
        for pid, elapsed in pool.imap_unordered(crunch, [WORK] * tasks):
            calls[str(pid)] = calls.get(str(pid), 0) + 1
            seconds[str(pid)] = seconds.get(str(pid), 0.0) + elapsed
        print(json.dumps({"calls": calls, "seconds": seconds}), flush=True)
        for line in sys.stdin:
            if line.strip() == "exit":
                break


if __name__ == "__main__":
    main()
