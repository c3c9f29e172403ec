"""Target whose threads end under a `--blocking` sampler: argv[1] is
  main-exits - 4 daemon threads spin in `worker_spin` and 4 wait in os.read (`worker_blocked`)
                while the main thread spins in `spin` for argv[2] seconds, then exits with
                sys.exit(argv[3], default 0): the process ends with its worker threads alive
                (a threaded server's end). During finalization the daemon threads end one by
                one, then the rest of the process at once.
  churn      - 4 threads each start short-lived threads (`short_task`) as fast as they can, so
                threads are always starting and exiting; runs until killed.
Prints `ready {"pid": ...}` once every thread runs."""

import json
import os
import sys
import threading
import time


def spin(seconds):
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1
    return x


def worker_spin():
    while True:
        spin(0.01)


def worker_blocked(fd):
    os.read(fd, 1)


def short_task():
    return sum(range(50))


def churner():
    while True:
        thread = threading.Thread(target=short_task, daemon=True)
        thread.start()
        thread.join()


def main():
    mode = sys.argv[1]
    threading.stack_size(256 * 1024)
    if mode == "main-exits":
        seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 1.5
        status = int(sys.argv[3]) if len(sys.argv) > 3 else 0
        read_end, _write_end = os.pipe()
        for _ in range(4):
            threading.Thread(target=worker_spin, daemon=True).start()
        for _ in range(4):
            threading.Thread(target=worker_blocked, args=(read_end,), daemon=True).start()
        print("ready " + json.dumps({"pid": os.getpid(), "mode": mode}), flush=True)
        spin(seconds)
        sys.exit(status)
    if mode == "churn":
        for _ in range(4):
            threading.Thread(target=churner, daemon=True).start()
        print("ready " + json.dumps({"pid": os.getpid(), "mode": mode}), flush=True)
        while True:
            time.sleep(1)
    raise SystemExit("unknown mode %r" % mode)


if __name__ == "__main__":
    main()
