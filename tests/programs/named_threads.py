"""Target program: threads with Python names (one renamed after it started) waiting in a
function whose local variables are known, for `threads`, per-thread results and `dump --locals`.

Prints `ready {"pid": ...}` once every thread waits. Runs on CPython 3.8-3.14.
"""

import json
import os
import threading


class Payload(object):
    pass


def wait_here(event, number, text, ratio, nothing, flag, items, big, negative, blob, obj):
    event.wait()  # the locals above are what `dump --locals` must show


def worker(started, event, index):
    started.release()
    wait_here(event, 42 + index, "hello\n'quoted'", 2.5, None, True, {"a": 1, "b": 2},
              10 ** 40, -7, b"\x00bytes", Payload())


def main():
    event = threading.Event()
    started = threading.Semaphore(0)
    threads = [threading.Thread(target=worker, args=(started, event, i), name="worker-%d" % i,
                                daemon=True) for i in range(2)]
    for thread in threads:
        thread.start()
    for _ in threads:
        started.acquire()
    threads[1].name = "renamed-worker"
    print("ready " + json.dumps({"pid": os.getpid(),
                                 "names": sorted(t.name for t in threads)}), flush=True)
    event.wait(600)


if __name__ == "__main__":
    main()
