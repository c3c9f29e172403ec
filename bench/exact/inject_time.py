"""Time from `spyglass attach PID --exact` to its first result, on a program that never imported
spyglass (spyglass starts exact mode in it: 3.14+ through PEP 768, 3.8-3.13 through its
pending-call queue).

    python3 bench/exact/inject_time.py --python /path/to/python3.14 [--python ...] [--runs 10]

For each interpreter: a fresh target (tests/exact/inject_target.py, its load thread running;
before 3.12, whose main thread alone runs the queue, that waits for its commands in a 10 ms
select() loop, --poll),
then `runs` times: the command is started with `start spin`, `results`, `exit` on its stdin and
timed until it has printed the first results table (wall clock, spyglass started to table
read). The first run pays the import of spyglass in the target; later runs find it imported.
The extension comes from `make python PYTHON=...` (run first, not timed)."""

import argparse
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def first_result(spyglass, pid, env):
    started = time.perf_counter()
    attach = subprocess.Popen([spyglass, "attach", str(pid), "--exact"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    attach.stdin.write(b"start spin\nresults\n")
    attach.stdin.flush()
    seen = b""
    while b"\xe2\x94\x94" not in seen and b"+--" not in seen.split(b"Calls", 1)[-1]:
        chunk = os.read(attach.stdout.fileno(), 65536)
        if not chunk:
            raise RuntimeError("no result: %s" % attach.stderr.read().decode())
        seen += chunk
    elapsed = time.perf_counter() - started
    attach.stdin.write(b"exit\n")
    attach.stdin.close()
    attach.stdout.read()
    if attach.wait(30) != 0:
        raise RuntimeError(attach.stderr.read().decode())
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", required=True)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--spyglass", default=os.path.join(REPO, "build", "spyglass"))
    args = parser.parse_args()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    for python in args.python:
        subprocess.run(["make", "-s", "--no-print-directory", "python", "PYTHON=" + python],
                       cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        minor = int(subprocess.check_output(
            [python, "-c", "import sys; print(sys.version_info[1])"], text=True))
        target = subprocess.Popen([python, os.path.join(REPO, "tests", "exact",
                                                        "inject_target.py")] +
                                  (["--poll"] if minor < 12 else []),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        try:
            assert target.stdout.readline().strip() == b"ready"
            times = [first_result(args.spyglass, target.pid, env) for _ in range(args.runs)]
        finally:
            target.kill()
            target.wait()
        version = subprocess.check_output(
            [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"], text=True)
        print("CPython %s: first attach %.0f ms, later attaches median %.0f ms (min %.0f, max "
              "%.0f, %d runs)" % (version.strip(), 1000 * times[0],
                                  1000 * statistics.median(times[1:]), 1000 * min(times[1:]),
                                  1000 * max(times[1:]), len(times) - 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
