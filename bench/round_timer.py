"""The reference workload's rounds, each timed, for as long as it is left running.

    python bench/round_timer.py WORKLOAD [--threads N]

Runs WORKLOAD's own set-up and rounds (its echo server, its background threads, one_round
over and over: the same code and names as `WORKLOAD --seconds ...`), and prints "ready PID",
then "round START END" for each round, in time.monotonic() seconds: the system's monotonic
clock, the one the benchmark that started it reads. bench/run.py's slowdown windows attach each
tool to it for a while, detach, and compare the rounds run meanwhile with the rounds run alone
just before and after (see windows_section there). It stops when killed or when stdin closes.
"""

import argparse
import importlib.util
import os
import sys
import tempfile
import threading
import time


def load(path):
    spec = importlib.util.spec_from_file_location("workload", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["workload"] = module
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload")
    parser.add_argument("--threads", type=int, default=1,
                        help="background threads running Worker.process (as the workload's)")
    parser.add_argument("--scale", type=int, default=1)
    args = parser.parse_args()
    workload = load(args.workload)

    # Whoever started it is gone: stop, rather than run on unattended.
    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    port = workload._echo_server()
    stop = threading.Event()
    for i in range(args.threads):
        threading.Thread(target=workload.background_thread, args=(stop, args.scale),
                         name="worker-%d" % i, daemon=True).start()
    fd, path = tempfile.mkstemp(prefix="round-timer-")
    os.close(fd)
    print("ready %d" % os.getpid(), flush=True)
    try:
        while True:
            start = time.monotonic()
            workload.one_round(port, path, args.scale)
            print("round %.6f %.6f" % (start, time.monotonic()), flush=True)
    finally:
        stop.set()
        os.unlink(path)


if __name__ == "__main__":
    main()
