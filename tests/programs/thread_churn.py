"""Target program: threads created and destroyed as fast as possible, forever.

Keeps up to 8 short-lived threads alive at a time, each recursing a little and exiting, so thread
states appear and vanish while a dump walks them. Prints `ready {json}` once the churn runs.
Runs on every supported CPython (3.8+).
"""

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stackinfo  # noqa: E402

MAX_LIVE_THREADS = 8


def short_task(depth):
    if depth > 0:
        return short_task(depth - 1)
    return sum(range(100))


def churn_forever():
    live = []
    started = 0
    while True:
        live = [thread for thread in live if thread.is_alive()]
        while len(live) < MAX_LIVE_THREADS:
            thread = threading.Thread(target=short_task, args=(started % 40,), daemon=True)
            thread.start()
            live.append(thread)
            started += 1
            if started == MAX_LIVE_THREADS * 4:
                stackinfo.announce_ready()


if __name__ == "__main__":
    churn_forever()
