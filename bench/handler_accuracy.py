#!/usr/bin/env python3
"""A request handler that frees a large result as it returns, timed by spyglass against its own
timing (issue 12, docs/accuracy.md: a returning function's locals are freed after it is unlinked
from the thread's chain; on 3.11+ spyglass reads it from the data stack).

gunicorn with one sync worker serves tests/realprograms/wsgi_workers.py (a 400-item JSON document
built and parsed per request) to client threads; `spyglass record -p WORKER -r RATE -f
wsgi_workers.handle_request` runs meanwhile, and the handler's measured time is printed beside
the worker's own total, with the bound and the samples caught returning.

    bench/handler_accuracy.py --python $(pyenv root)/versions/3.12.1/bin/python3.12
    bench/handler_accuracy.py --python P --python Q --rate 10000 --runs 3 --seconds 6

gunicorn comes from PyPI into the tests' per-interpreter environment.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "realprograms"))
sys.path.insert(0, str(REPO_ROOT / "tests" / "lib"))
import corpus  # noqa: E402
from servers import free_port, load, read_truth, wait_listening, workers_of  # noqa: E402

HANDLER = "wsgi_workers.handle_request"


def one_run(spyglass, python, rate, seconds, clients):
    version = subprocess.check_output(
        [python, "-c", "import platform; print(platform.python_version())"], text=True).strip()
    env = corpus.program_environment(python, version).env()
    with tempfile.TemporaryDirectory() as folder:
        truth_dir = os.path.join(folder, "truth")
        os.mkdir(truth_dir)
        env["TRUTH_DIR"] = truth_dir
        port = free_port()
        server = subprocess.Popen(
            [python, "-m", "gunicorn", "-w", "1", "-b", "127.0.0.1:%d" % port, "--chdir",
             str(REPO_ROOT / "tests" / "realprograms"), "wsgi_workers:app"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            worker = workers_of(server.pid, 1)[0]
            wait_listening(port)
            out = os.path.join(folder, "results.json")
            record = subprocess.Popen(
                [spyglass, "record", "-p", str(worker), "-r", str(rate), "-f", HANDLER,
                 "--format", "json", "-o", out], stderr=subprocess.PIPE, text=True)
            record.stderr.readline()  # recording ...
            before = read_truth(truth_dir, "handle_request").get(worker, 0.0)
            counts, failures = [0] * clients, []
            for thread in load(port, seconds, clients, failures, counts):
                thread.join()
            time.sleep(0.2)
            after = read_truth(truth_dir, "handle_request").get(worker, 0.0)
            record.send_signal(signal.SIGINT)
            record.communicate(timeout=60)
            with open(out) as f:
                document = json.load(f)
        finally:
            server.terminate()
            server.wait()
    row = [f for f in document["functions"] if f["name"] == HANDLER][0]
    truth = after - before
    return {"python": version, "rate": rate, "measured": row["seconds"], "truth": truth,
            "error": row["seconds"] / truth - 1 if truth else 0.0,
            "bound": row["error_seconds"], "returning_frames": document.get("returning_frames"),
            "samples": document["samples"], "requests": sum(counts)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", required=True)
    parser.add_argument("--spyglass", default=str(REPO_ROOT / "build" / "spyglass"))
    parser.add_argument("--rate", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--clients", type=int, default=3)
    args = parser.parse_args()
    print("%-8s %6s %9s %9s %7s %8s %10s %9s" % ("python", "rate", "measured", "truth", "error",
                                                 "bound", "returning", "samples"))
    for python in args.python:
        for _ in range(args.runs):
            r = one_run(args.spyglass, python, args.rate, args.seconds, args.clients)
            print("%-8s %6d %8.3fs %8.3fs %+6.1f%% %7.3fs %10s %9d" % (
                r["python"], r["rate"], r["measured"], r["truth"], 100 * r["error"], r["bound"],
                r["returning_frames"], r["samples"]))


if __name__ == "__main__":
    main()
