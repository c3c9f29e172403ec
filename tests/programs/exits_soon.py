"""Target program: busy threads with changing stacks, then a normal exit after a delay.

Usage: exits_soon.py DELAY_SECONDS. Prints `ready {json}` once its threads run, then exits
(through interpreter finalization, daemon threads still running) after DELAY_SECONDS. Used to
check that a dump of a process that vanishes mid-walk fails cleanly. Runs on every supported CPython (3.8+).
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stackinfo  # noqa: E402


def churn(depth):
    if depth > 0:
        return churn(depth - 1) + 1
    return sum(range(50))


def worker():
    depth = 0
    while True:
        churn(depth)
        depth = (depth + 7) % 60


if __name__ == "__main__":
    delay = float(sys.argv[1])
    for index in range(3):
        threading.Thread(target=worker, name="churn-%d" % index, daemon=True).start()
    stackinfo.announce_ready()
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        churn(30)
