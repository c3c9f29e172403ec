"""Target program: a known stack on two threads, blocked so that a dump is stable.

Main thread:   <module> -> outer() -> Outer.Inner.method() -> gen() (a generator being iterated)
               -> leaf(), blocked reading a pipe.
Second thread: named "second-thread" (threading name and, where ctypes allows, OS thread name):
               threading's bootstrap -> worker_loop() -> worker_wait(), blocked reading a pipe.

Prints one line `ready {json}`: the pid, the Python version and, per thread, the frames the
interpreter itself reports for the blocking point (see stackinfo.py). Runs on every supported CPython (3.8+).
"""

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stackinfo  # noqa: E402


def worker_wait():
    os.read(stackinfo.record_caller(), 1)


def worker_loop():
    stackinfo.set_native_thread_name(threading.current_thread().name)
    while True:
        worker_wait()


def leaf(other_threads):
    os.read(stackinfo.announce_and_block(other_threads), 1)


def gen(other_threads):
    yield leaf(other_threads)


class Outer:
    class Inner:
        def method(self, other_threads):
            for value in gen(other_threads):
                return value


def outer(other_threads):
    return Outer.Inner().method(other_threads)


if __name__ == "__main__":
    second = threading.Thread(target=worker_loop, name="second-thread", daemon=True)
    second.start()
    outer([second])
