"""Helpers of the worker-pool tests (tests/integration/test_subprocesses.py sampling,
tests/exact/test_family.py exact mode): a free port, a process's children, waiting, HTTP load
from client threads, and the truth the WSGI application (tests/realprograms/wsgi_workers.py)
writes per worker."""

import http.client
import json
import os
import socket
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_of(pid):
    """Every thread's children (gunicorn 27 forks its workers from a thread of its own)."""
    out = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for task in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                out += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return out


def wait_for(predicate, timeout, what):
    """predicate()'s first true value, looked at every 50 ms; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)


def workers_of(master, count, timeout=60):
    """The first `count` or more children of a pre-fork server's master, once it has them."""
    return wait_for(lambda: len(children_of(master)) >= count and children_of(master), timeout,
                    "%d workers of process %d" % (count, master))


def wait_listening(port, timeout=30):
    """Returns once something accepts connections on 127.0.0.1:`port`."""

    def connects():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_for(connects, timeout, "a server to listen on port %d" % port)


def replacement_of(master, workers, timeout):
    """The first child of `master` not among `workers` (the one a server started for one that
    was killed)."""
    return wait_for(lambda: [p for p in children_of(master) if p not in workers], timeout,
                    "process %d to replace a killed worker" % master)[0]


def read_truth(folder, key):
    """{pid: figure `key`} of the files wsgi_workers.py writes per worker in `folder`."""
    out = {}
    for name in os.listdir(folder):
        if name.endswith(".json"):
            try:
                with open(os.path.join(folder, name)) as f:
                    out[int(name[:-5])] = json.load(f)[key]
            except (OSError, ValueError):
                pass
    return out


def load(port, seconds, clients, failures, counts):
    """`clients` threads sending GET / for `seconds`, each counting its answers in
    counts[index]; a failed request (the one a killed worker was serving) is appended to
    `failures`. Returns the started threads."""
    deadline = time.monotonic() + seconds

    def client(index):
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("GET", "/")
                connection.getresponse().read()
                connection.close()
                counts[index] += 1
            except (OSError, http.client.HTTPException) as error:
                failures.append(repr(error))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    return threads
