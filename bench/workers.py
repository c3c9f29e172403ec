#!/usr/bin/env python3
"""What following worker processes costs (issue 16's closing note): gunicorn with 1, 4 and 16
sync workers, `spyglass record -p MASTER -s` at 1 kHz, one sampling thread for all of them.

For each number of workers and each load, prints the rate achieved, the walk time per process
and per round, the sampling thread's CPU per process and in all, and spyglass's whole CPU time
(the thread that looks for new processes and the start included), as a share of one core.

    bench/workers.py                              # build/spyglass, 3.12, idle and busy
    bench/workers.py --interpreters 3.8,3.12,3.15 --workers 1,4,16 --seconds 5

Loads: `idle` (the workers wait in accept), `busy` (8 client threads send requests back to back;
each request is a few milliseconds of JSON in wsgi_workers.handle_request). gunicorn comes from
PyPI into the tests' per-interpreter environment (tests/realprograms/requirements.txt).
"""

import argparse
import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "lib"))
sys.path.insert(0, str(REPO_ROOT / "tests" / "realprograms"))
sys.path.insert(0, str(REPO_ROOT / "bench"))
import corpus  # noqa: E402
from async_tasks import find_interpreter  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int):
    """Every thread's children (gunicorn 27 forks its workers from a thread of its own)."""
    out = []
    for task in os.listdir("/proc/%d/task" % pid) if os.path.isdir("/proc/%d" % pid) else []:
        try:
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                out += f.read().split()
        except OSError:
            pass
    return out


def start_server(python: str, env: dict, workers: int, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [python, "-m", "gunicorn", "-w", str(workers), "-b", "127.0.0.1:%d" % port,
         "--chdir", str(REPO_ROOT / "tests" / "realprograms"), "wsgi_workers:app"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(children(server.pid)) >= workers:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return server
            except OSError:
                pass
        time.sleep(0.1)
    server.kill()
    raise SystemExit("gunicorn did not start %d workers" % workers)


def busy_load(port: int, stop: threading.Event, clients: int = 8):
    def client():
        while not stop.is_set():
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("GET", "/")
                connection.getresponse().read()
                connection.close()
            except (OSError, http.client.HTTPException):
                pass

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    return threads


def measure(binary: str, pid: int, seconds: float, rate: float) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "results.json"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([binary, "record", "-p", str(pid), "-s", "-r", str(rate), "-d",
                        str(seconds), "-f", "wsgi_workers.handle_request", "--format", "json",
                        "-o", str(out)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        document = json.loads(out.read_text())
    document["spyglass_cpu_seconds"] = (after.ru_utime - before.ru_utime) + (
        after.ru_stime - before.ru_stime)
    return document


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default=str(REPO_ROOT / "build" / "spyglass"))
    parser.add_argument("--interpreters", default="3.12")
    parser.add_argument("--workers", default="1,4,16")
    parser.add_argument("--load", default="idle,busy")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    options = parser.parse_args()
    print("| Python | workers | load | rate achieved | walk per process | walk per round | "
          "sampling thread, per process | sampling thread | spyglass in all |")
    print("|---|---|---|---|---|---|---|---|---|")
    for minor_text in options.interpreters.split(","):
        python = find_interpreter(minor_text)
        version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                                 check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
        env = corpus.program_environment(python, version).env()
        for workers in (int(n) for n in options.workers.split(",")):
            for load in options.load.split(","):
                port = free_port()
                server = start_server(python, env, workers, port)
                stop = threading.Event()
                threads = busy_load(port, stop) if load == "busy" else []
                try:
                    time.sleep(0.5)
                    doc = measure(options.bin, server.pid, options.seconds, options.rate)
                finally:
                    stop.set()
                    for thread in threads:
                        thread.join()
                    server.terminate()
                    server.wait()
                read = [p for p in doc["processes"] if p["samples"] > 0]
                duration = doc["duration_seconds"] or options.seconds
                walks = [p["mean_walk_us"] for p in read]
                cpu = [p["sampler_cpu_seconds"] / duration * 100 for p in read]
                print("| %s | %d | %s | %.0f Hz | %.1f µs (%.1f-%.1f) | %.0f µs | %.2f %% | "
                      "%.1f %% | %.1f %% |" % (
                          minor_text, workers, load, doc["achieved_rate_hz"],
                          sum(walks) / len(walks), min(walks), max(walks), doc["mean_walk_us"],
                          sum(cpu) / len(cpu), doc["sampler_cpu_seconds"] / duration * 100,
                          doc["spyglass_cpu_seconds"] / options.seconds * 100), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
