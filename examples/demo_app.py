"""The bundled example program for `make demo`: a small "service" doing three kinds of work in a
loop, the way a real program mixes them:

  heavy_computation   pure-Python number crunching (CPU bound)
  disk_io             writes a temporary file, syncs it and reads it back (waits on the disk)
  network_request     a request/response round trip to a tiny echo server this program runs
                      on the loopback interface (waits on the network, then on a slow "remote")

It prints `ready PID` once it is running, then loops until killed, or for --seconds.

    python3 examples/demo_app.py            # then, in another terminal:
    spyglass attach PID -f heavy_computation disk_io network_request

Standard library only; runs on CPython 3.8 and later.
"""

import argparse
import os
import socket
import sys
import tempfile
import threading
import time


def heavy_computation(n):
    """Sums the primes below n with a deliberately naive sieve."""
    flags = [True] * n
    total = 0
    for i in range(2, n):
        if flags[i]:
            total += i
            for multiple in range(i * i, n, i):
                flags[multiple] = False
    return total


def disk_io(path, blocks):
    with open(path, "wb") as out:
        for _ in range(blocks):
            out.write(os.urandom(32 * 1024))
        out.flush()
        os.fsync(out.fileno())
    size = 0
    with open(path, "rb") as back:
        while True:
            chunk = back.read(32 * 1024)
            if not chunk:
                return size
            size += len(chunk)


def network_request(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(payload)
        received = 0
        while received < len(payload):
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += len(chunk)
    time.sleep(0.005)  # the "remote service" takes a moment to answer
    return received


def start_echo_server():
    """A loopback echo server on a free port, served by a daemon thread."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def serve():
        while True:
            connection, _ = server.accept()
            with connection:
                while True:
                    data = connection.recv(65536)
                    if not data:
                        break
                    connection.sendall(data)

    threading.Thread(target=serve, name="echo-server", daemon=True).start()
    return server.getsockname()[1]


def allow_readers():
    """Under Yama's ptrace_scope=1 (Ubuntu's default) only an ancestor may read a process's
    memory, and spyglass, started beside this program by examples/demo.py, is no ancestor: say
    that any process of ours may. Real programs need nothing of the kind when spyglass runs as
    root or starts them (`spyglass run`)."""
    if not os.path.exists("/proc/sys/kernel/yama/ptrace_scope"):
        return
    try:
        import ctypes
        pr_set_ptracer, pr_set_ptracer_any = 0x59616D61, ctypes.c_ulong(-1).value
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_ptracer, ctypes.c_ulong(pr_set_ptracer_any),
                                                0, 0, 0)
    except (OSError, AttributeError):
        pass  # spyglass will explain a refusal itself


def handle_one_job(port, path):
    heavy_computation(60000)
    disk_io(path, 8)
    network_request(port, b"spyglass" * 4096)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=None,
                        help="stop after this many seconds (default: run until killed)")
    args = parser.parse_args()

    allow_readers()
    port = start_echo_server()
    handle, path = tempfile.mkstemp(prefix="spyglass-demo-")
    os.close(handle)
    print("ready %d" % os.getpid(), flush=True)
    began = time.monotonic()
    jobs = 0
    try:
        while args.seconds is None or time.monotonic() - began < args.seconds:
            handle_one_job(port, path)
            jobs += 1
    except KeyboardInterrupt:
        pass
    finally:
        os.unlink(path)
    print("done: %d jobs in %.1f s" % (jobs, time.monotonic() - began), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
