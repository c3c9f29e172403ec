"""A pool of worker threads that wait most of the time, as a threaded server's or a
ThreadPoolExecutor's do: sixteen workers, each taking jobs from its own queue, doing a little
work, and now and then parking on an event for a while; the main thread computes and hands out
the jobs. Most samples find fifteen threads waiting and one running Python code.

spyglass does not read again the stack of a thread that has not taken the GIL since it was
last read (cpython/walker.cpp, reuse_unchanged_stack): this program checks that a worker's
stack is read anew once it moves on (from waiting for a job to doing it, to parking), and that
each function's time across the threads still agrees with the workers' own timing.

Timed functions (truth.py): `distribute` (the main thread's whole run), `compute` (its work
between hand-outs), and in the workers `take_job` (waiting on the queue), `do_job` and `park`.

    python thread_pool.py --truth truth.json [--scale 1] [--wait]
"""

import queue
import random
import sys
import threading

from truth import Truth, done

TRUTH = Truth("thread_pool")
FUNCTIONS = ("distribute", "compute", "take_job", "do_job", "park")
WORKERS = 16
ROUNDS = 8000  # at scale 1: about 3 s
STOP = None


def take_job(jobs: "queue.Queue"):
    began = TRUTH.begin()
    try:
        return jobs.get()
    finally:
        TRUTH.add("take_job", began)


def do_job(size: int) -> int:
    began = TRUTH.begin()
    try:
        total = 0
        for i in range(size):
            total += i * i % 11
        return total
    finally:
        TRUTH.add("do_job", began)


def park(event: threading.Event, seconds: float) -> None:
    began = TRUTH.begin()
    try:
        event.wait(seconds)
    finally:
        TRUTH.add("park", began)


def worker(jobs: "queue.Queue", parked: threading.Event) -> None:
    while True:
        job = take_job(jobs)
        if job is STOP:
            return
        size, park_for = job
        do_job(size)
        if park_for:
            park(parked, park_for)


def compute(rng: random.Random) -> int:
    began = TRUTH.begin()
    try:
        total = 0
        for i in range(rng.randint(2000, 8000)):
            total += i % 7
        return total
    finally:
        TRUTH.add("compute", began)


def distribute(queues, rounds: int) -> None:
    began = TRUTH.begin()
    try:
        rng = random.Random(12)
        for _ in range(rounds):
            compute(rng)
            jobs = queues[rng.randrange(len(queues))]
            jobs.put((rng.randint(500, 4000), rng.choice((0, 0, 0, 0, 0.001, 0.004))))
    finally:
        TRUTH.add("distribute", began)


def main() -> int:
    options = TRUTH.start()
    TRUTH.declare(*FUNCTIONS)
    queues = [queue.Queue() for _ in range(WORKERS)]
    parked = threading.Event()  # never set: a park lasts its whole timeout
    threads = [threading.Thread(target=worker, args=(jobs, parked), name="worker-%d" % n)
               for n, jobs in enumerate(queues)]
    TRUTH.ready()
    for thread in threads:  # after ready: every wait of theirs is seen
        thread.start()
    distribute(queues, max(1, round(ROUNDS * options.scale)))
    for jobs in queues:
        jobs.put(STOP)
    for thread in threads:
        thread.join()
    done(TRUTH)
    return 0


if __name__ == "__main__":
    sys.exit(main())
