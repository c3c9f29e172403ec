"""A multi-threaded program that never imports spyglass, for `spyglass attach PID --exact` by
injection (test_inject.py). It counts its own calls of `work`.

stdin, one command a line:  `burst N`  each of the worker threads calls work() N times, then
the program prints `done TOTAL` (the calls of this burst);  `quit`  ends it (prints `bye`).
A load thread calls spin() all along (unchosen code, and a thread that runs Python code while
the main thread waits in readline). With `--poll` the main thread waits for its commands in a
loop of 10 ms select() calls, as a server's does (before 3.12 only the main thread takes
spyglass's request)."""

import select
import sys
import threading

WORKERS = 3
go = [threading.Event() for _ in range(WORKERS)]
finished = [threading.Event() for _ in range(WORKERS)]
burst = [0]
counts = [0] * WORKERS
stopping = threading.Event()


def work(x):
    return x * 2 + 1


def spin(x):
    return x + 1


def worker(index):
    while True:
        go[index].wait()
        go[index].clear()
        if stopping.is_set():
            return
        n = 0
        for i in range(burst[0]):
            work(i)
            n += 1
        counts[index] = n
        finished[index].set()


def load():
    x = 0
    while not stopping.is_set():
        for _ in range(200):
            x = spin(x)


threads = [threading.Thread(target=worker, args=(i,), name="worker-%d" % i)
           for i in range(WORKERS)]
threads.append(threading.Thread(target=load, name="load"))
for t in threads:
    t.start()
print("ready", flush=True)


def commands():
    if "--poll" not in sys.argv[1:]:
        yield from sys.stdin
        return
    while True:
        if select.select([sys.stdin], [], [], 0.01)[0]:
            line = sys.stdin.readline()
            if not line:
                return
            yield line


for line in commands():
    words = line.split()
    if not words:
        continue
    if words[0] == "burst":
        burst[0] = int(words[1])
        for e in finished:
            e.clear()
        for e in go:
            e.set()
        for e in finished:
            e.wait()
        print("done %d" % sum(counts), flush=True)
    elif words[0] == "quit":
        break
stopping.set()
for e in go:
    e.set()
for t in threads:
    t.join()
print("bye", flush=True)
