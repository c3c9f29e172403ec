"""Worker processes doing CPU work, each timing its own calls: the truth for --subprocesses.

    python pool_work.py fork|spawn|forkserver [TASKS]   a multiprocessing.Pool of 4 workers
    python pool_work.py shell [TASKS]                   one worker started through a shell

`crunch` is the function timed. The last line printed is JSON: {"crunch": {pid: seconds}},
the wall time of every call, summed per worker process. The shell form starts `sh -c`, which
stays between this process and the worker (it is not exec'd away), so the worker is a
grandchild whose parent is not Python.
"""

import json
import multiprocessing
import os
import subprocess
import sys
import time

WORK = 60_000  # iterations of a call: about 5-10 ms


def crunch(n):
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i * i % 7
    return os.getpid(), time.perf_counter() - start


def work_alone(tasks):
    totals = {}
    for _ in range(tasks):
        pid, seconds = crunch(WORK)
        totals[str(pid)] = totals.get(str(pid), 0.0) + seconds
    return totals


def main():
    how = sys.argv[1]
    tasks = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    if how == "worker":
        print(json.dumps(work_alone(tasks)))
        return
    if how == "shell":
        command = '"$0" "$1" worker %d; status=$?; exit $status' % tasks
        out = subprocess.run(["sh", "-c", command, sys.executable, os.path.abspath(__file__)],
                             check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout
        totals = json.loads(out.strip().splitlines()[-1])
    else:
        totals = {}
        with multiprocessing.get_context(how).Pool(4) as pool:
            for pid, seconds in pool.imap_unordered(crunch, [WORK] * tasks):
                totals[str(pid)] = totals.get(str(pid), 0.0) + seconds
    print(json.dumps({"crunch": totals}))


if __name__ == "__main__":
    main()
