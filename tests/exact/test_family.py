"""Exact mode across a process and its subprocesses: `spyglass record -p PID --exact -s`
reaches every Python process of the family through its own control socket (a worker forked from
a process with one opens its own at the fork; a spawned one when it imports spyglass), or starts
exact mode in it from outside (3.14+: PEP 768; before: the pending-call queue), and adds the
figures up. The workers count their own
calls: the counts must be equal, per process and in all.

- multiprocessing.Pool under fork, spawn and forkserver, the program importing spyglass
  (SPYGLASS_LISTEN=1), on every interpreter;
- gunicorn from PyPI (--preload: the master imports the application) with 4 sync workers under
  load from client threads; one worker killed mid-run, gunicorn's replacement picked up;
- the same pool in a program that never imports spyglass, on every interpreter;
- bad cases: attach --exact -s, a family with no Python in it.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import HERE, REPO, build_package, child_env, interpreters
from servers import (free_port, load, read_truth, replacement_of, wait_for, wait_listening,
                     workers_of)

REALPROGRAMS = os.path.join(REPO, "tests", "realprograms")
POOL = os.path.join(HERE, "pool_target.py")
INJECTABLE = ["3.%d" % minor for minor in interpreters.SUPPORTED_MINORS]


def spyglass_bin():
    path = os.environ.get("SPYGLASS_BIN") or os.path.join(REPO, "build", "spyglass")
    if not os.path.exists(path):
        pytest.skip("the spyglass command is not built (%s): run make build" % path)
    return os.path.abspath(path)


class Record(object):
    """`spyglass record -p PID --exact -s -f FUNCTIONS --format json -o FILE` in the background,
    its stderr read line by line (which processes it times)."""

    def __init__(self, pid, functions, out_file):
        self.out_file = out_file
        self.process = subprocess.Popen(
            [spyglass_bin(), "record", "-p", str(pid), "--exact", "-s", "-f"] + list(functions) +
            ["--format", "json", "-o", str(out_file)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def timed(self):
        """The pids it has said it times."""
        out = set()
        for line in list(self.lines):
            if line.startswith("spyglass: timing process "):
                out.add(int(line.split()[3]))
        return out

    def wait_timing(self, pids, timeout=30):
        wait_for(lambda: set(pids) <= self.timed() or self.process.poll() is not None, timeout,
                 "spyglass to time processes %s" % sorted(pids))
        assert set(pids) <= self.timed(), "\n".join(self.lines)

    def finish(self):
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        self.reader.join(5)
        assert self.process.returncode == 0, "\n".join(self.lines)
        with open(self.out_file) as f:
            return json.load(f)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def processes_by_pid(document):
    return {entry["pid"]: entry for entry in document["processes"]}


def calls_of(functions, name):
    for item in functions:
        if item["name"] == name:
            return item.get("calls") or 0
    return 0


def run_pool(python, env, how, tasks, tmp_path, busy=False):
    """The pool program under `record --exact -s`: (its own counts, spyglass's document)."""
    flag = tmp_path / "spin-no-more"
    args = [python, POOL, how, str(tasks)] + (["--busy", str(flag)] if busy else [])
    target = subprocess.Popen(args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    record = None
    try:
        ready = target.stdout.readline().split()
        assert ready and ready[0] == "ready", (ready, target.stderr.read())
        workers = [int(p) for p in ready[1:]]
        record = Record(target.pid, ["crunch"], tmp_path / "exact.json")
        record.wait_timing(workers)
        flag.write_text("")
        target.stdin.write("go\n")
        target.stdin.flush()
        truth = json.loads(target.stdout.readline())
        # The last calls' figures reach spyglass on its next read.
        document = record.finish()
        record = None
        target.stdin.write("exit\n")
        target.stdin.flush()
        target.wait(timeout=60)
    finally:
        if record is not None:
            record.kill()
        if target.poll() is None:
            target.kill()
            target.wait()
    return {int(pid): n for pid, n in truth["calls"].items()}, workers, document


def check_counts(truth, document):
    by_pid = processes_by_pid(document)
    problems = []
    for pid, calls in sorted(truth.items()):
        entry = by_pid.get(pid)
        measured = calls_of(entry["functions"], "crunch") if entry else None
        if measured != calls:
            problems.append("process %d: crunch counted %s times, it counted %d itself (%s)" % (
                pid, measured, calls, entry and entry["state"]))
    total = calls_of(document["functions"], "crunch")
    if total != sum(truth.values()):
        problems.append("all processes: %s calls, truth %d" % (total, sum(truth.values())))
    assert not problems, "\n".join(problems) + "\n" + json.dumps(document["notes"], indent=1)


@pytest.mark.parametrize("how", ["fork", "spawn", "forkserver"])
def test_pool_workers_counted_exactly(interpreter, how, tmp_path):
    python, package = interpreter
    env = child_env(package, SPYGLASS_LISTEN="1")
    truth, workers, document = run_pool(python, env, how, 120, tmp_path)
    check_counts(truth, document)
    assert set(workers) <= set(truth) | {p for p in workers}, truth
    # Percentiles over every process's calls: within the slowest and the fastest call.
    latency = [f for f in document["functions"] if f["name"] == "crunch"][0]["latency"]
    assert latency["min"] <= latency["p50"] <= latency["p99"] <= latency["max"], latency


@pytest.fixture(params=INJECTABLE)
def injectable(request):
    return build_package(request.param)


def test_pool_never_importing_spyglass_counted_exactly(injectable, tmp_path):
    """Exact mode started from outside in each worker (3.14+: PEP 768; before: the pending-call
    queue, which each worker's main thread runs), the workers running Python code meanwhile;
    then every call counted."""
    python, _package = injectable
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SPYGLASS_LISTEN")}
    truth, workers, document = run_pool(python, env, "forkserver", 120, tmp_path, busy=True)
    check_counts(truth, document)
    by_pid = processes_by_pid(document)
    for pid in workers:
        assert by_pid[pid]["exact_mode_started_by_spyglass"], by_pid[pid]
    # Nothing of it is left in the workers' folder of sockets.
    leftovers = [name for name in os.listdir(os.environ.get("SPYGLASS_SOCKET_DIR") or
                                             "/tmp/spyglass-%d" % os.getuid())
                 if any(name.startswith("%d." % pid) for pid in workers)]
    assert not leftovers, leftovers


# --- gunicorn -----------------------------------------------------------------------------------

def gunicorn_environment(python, package):
    if REALPROGRAMS not in sys.path:
        sys.path.insert(0, REALPROGRAMS)
    import corpus

    version = subprocess.check_output(
        [python, "-c", "import platform; print(platform.python_version())"], text=True).strip()
    try:
        site = corpus.program_environment(python, version).site
    except corpus.venvs.Unavailable as error:
        pytest.skip("gunicorn from PyPI for %s: %s" % (python, error))
    env = child_env(package, SPYGLASS_LISTEN="1", PYTHONNOUSERSITE="1")
    env["PYTHONPATH"] = os.pathsep.join([package, str(site), REALPROGRAMS])
    return env


HANDLER = "wsgi_workers.handle_request"


def test_gunicorn_workers_counted_exactly(interpreter, tmp_path):
    python, package = interpreter
    env = gunicorn_environment(python, package)
    truth_dir = tmp_path / "truth"
    truth_dir.mkdir()
    env["TRUTH_DIR"] = str(truth_dir)
    port = free_port()
    server = subprocess.Popen(
        [python, "-m", "gunicorn", "--preload", "-w", "4", "-b", "127.0.0.1:%d" % port,
         "--chdir", HERE, "--graceful-timeout", "2", "wsgi_exact:app"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    record = None
    try:
        workers = workers_of(server.pid, 4)
        wait_listening(port)
        record = Record(server.pid, [HANDLER], tmp_path / "exact.json")
        record.wait_timing([server.pid] + workers)
        before = read_truth(truth_dir, "calls")
        counts, failures = [0] * 6, []
        threads = load(port, 4.0, 6, failures, counts)
        time.sleep(1.5)
        killed = workers[0]
        os.kill(killed, signal.SIGKILL)
        replacement = replacement_of(server.pid, workers, 15)
        for thread in threads:
            thread.join()
        record.wait_timing([replacement])
        after = read_truth(truth_dir, "calls")
        document = record.finish()
        record = None
    finally:
        if record is not None:
            record.kill()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    truth = {pid: n - before.get(pid, 0) for pid, n in after.items() if n - before.get(pid, 0)}
    by_pid = processes_by_pid(document)
    print("\n%s gunicorn --exact -s: %d requests; truth %s; counted %s" % (
        python, sum(counts), truth,
        {pid: calls_of(e["functions"], HANDLER) for pid, e in by_pid.items()}))
    assert replacement in truth, "the replacement served nothing: %s" % truth
    assert by_pid[killed]["state"] == "exited", by_pid[killed]
    problems = []
    for pid, calls in sorted(truth.items()):
        measured = calls_of(by_pid[pid]["functions"], HANDLER) if pid in by_pid else None
        if pid == killed:
            # Its figures as last read, at most 250 ms before it was killed; one more than it
            # wrote down when killed between a call's end and the writing of its count.
            if not (measured and measured <= calls + 1):
                problems.append("killed worker %d: %s calls counted, %d served" % (
                    pid, measured, calls))
        elif measured != calls:
            problems.append("worker %d: %s calls counted, %d served" % (pid, measured, calls))
    survivors = sum(n for pid, n in truth.items() if pid != killed)
    total = calls_of(document["functions"], HANDLER)
    if not survivors < total <= sum(truth.values()) + 1:
        problems.append("all: %d calls counted, %d served" % (total, sum(truth.values())))
    assert not problems, "\n".join(problems) + "\n" + json.dumps(document["notes"], indent=1)
    assert len(failures) <= 6, failures[:3]


# --- Bad cases ----------------------------------------------------------------------------------

def test_attach_exact_with_subprocesses_says_what_to_use():
    result = subprocess.run([spyglass_bin(), "attach", str(os.getpid()), "--exact", "-s"],
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert "record -p PID --exact -s" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_family_without_python_is_one_line_and_an_error():
    sleeper = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30; wait"])
    try:
        time.sleep(0.2)
        result = subprocess.run(
            [spyglass_bin(), "record", "-p", str(sleeper.pid), "--exact", "-s", "-f", "f",
             "-d", "1"], capture_output=True, text=True, timeout=60)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert result.returncode != 0, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower() or
              "could be timed" in line]
    assert len(errors) == 1 and "none is Python" in errors[0], result.stderr
