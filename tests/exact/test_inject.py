"""`spyglass attach PID --exact` on a program that never imported spyglass, on every supported
interpreter (PEP 768 on 3.14+, the interpreter's pending-call queue on 3.8-3.13): spyglass makes
it load exact mode and open its control socket at a safe point, and turns it all off again on
leaving (docs/exact.md, "Starting exact mode in a running program"). Before 3.12 only the main
thread runs the queue: the target's main thread then waits for its commands in a polling loop,
as a server's does, and a main thread blocked in C is a case of its own.

The attach/detach cycle test runs $SPYGLASS_INJECT_CYCLES cycles, 25 by default (about 3 s an
interpreter: after the first, a cycle takes some 30 ms)."""

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import HERE, build_package, interpreters

INJECTABLE = ["3.%d" % minor for minor in interpreters.SUPPORTED_MINORS]
PEP768 = ["3.%d" % minor for minor in interpreters.SUPPORTED_MINORS if minor >= 14]
TARGET = os.path.join(HERE, "inject_target.py")


def spyglass_bin():
    path = os.environ.get("SPYGLASS_BIN") or os.path.join(HERE, "..", "..", "build", "spyglass")
    if not os.path.exists(path):
        pytest.skip("the spyglass command is not built (%s): run make build" % path)
    return os.path.abspath(path)


class Injectable(object):
    """An interpreter with its `make python` build (the build spyglass finds)."""

    def __init__(self, version):
        self.version = version
        self.minor = int(version.split(".")[1])
        self.python, self.package = build_package(version)
        # Before 3.12 the pending-call queue is the main thread's alone.
        self.main_thread_only = self.minor < 12
        self.how = "PEP 768" if self.minor >= 14 else "its pending-call queue"

    def __iter__(self):  # python, package = injectable
        return iter((self.python, self.package))


@pytest.fixture(params=INJECTABLE)
def injectable(request):
    return Injectable(request.param)


@pytest.fixture(params=PEP768 or ["none"])
def python314(request):
    if request.param == "none":
        pytest.skip("no CPython 3.14+ in the supported range")
    return Injectable(request.param)


def clean_env(**extra):
    """The target's environment: no PYTHONPATH to spyglass, no SPYGLASS_LISTEN."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "SPYGLASS_LISTEN"):
        env.pop(name, None)
    env.update(extra)
    return env


class Lines(object):
    """Reads a pipe line by line with a timeout."""

    def __init__(self, stream):
        self.stream = stream
        self.buffer = b""
        self.seen = []

    def until(self, predicate, timeout=30):
        deadline = time.time() + timeout
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                text = line.decode("utf-8", "replace")
                self.seen.append(text)
                if predicate(text):
                    return text
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("timed out; seen: %r" % self.seen[-20:])
            ready, _, _ = select.select([self.stream], [], [], left)
            if ready:
                chunk = os.read(self.stream.fileno(), 65536)
                if not chunk:
                    raise AssertionError("stream ended; seen: %r" % self.seen[-20:])
                self.buffer += chunk


def start_target(python, *args, poll=False, **env):
    """The target; `python` an Injectable (its main thread polls when it alone takes the
    request) or a path."""
    if isinstance(python, Injectable):
        poll = python.main_thread_only
        python = python.python
    extra = ["--poll"] if poll else []
    target = subprocess.Popen([python] + list(args) + [TARGET] + extra, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=clean_env(**env))
    out = Lines(target.stdout)
    out.until(lambda line: line == "ready")
    return target, out


def target_command(target, out, text):
    target.stdin.write((text + "\n").encode())
    target.stdin.flush()
    return out.until(lambda line: line.startswith("done") or line == "bye")


def fds(pid):
    return sorted(os.listdir("/proc/%d/fd" % pid))


def tasks(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def socket_dir(tmp_path):
    folder = tmp_path / "sockets"
    return str(folder)


def one_cycle(target, out, env, calls, how):
    """Attach (injecting), time `work` over one burst, check the counts, leave."""
    started = time.time()
    attach = subprocess.Popen([spyglass_bin(), "attach", str(target.pid), "--exact"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env)
    reply = Lines(attach.stdout)
    try:
        attach.stdin.write(b"start work\n")
        attach.stdin.flush()
        reply.until(lambda line: line.startswith("start: chosen"), timeout=30)
        first = time.time() - started
        done = target_command(target, out, "burst %d" % calls)
        attach.stdin.write(b"results --json\nexit\n")
        attach.stdin.close()
        rest = attach.stdout.read().decode()
        assert attach.wait(30) == 0, attach.stderr.read().decode()
    finally:
        if attach.poll() is None:
            attach.kill()
            attach.wait()
    text = "\n".join(reply.seen) + "\n" + reply.buffer.decode() + rest
    assert "through %s" % how in text, text
    results = json.loads(text[text.index("\n{", text.index("start: chosen")) + 1:
                              text.rindex("}") + 1])
    work = [f for f in results["functions"] if f["name"] == "work"]
    assert work and work[0]["calls"] == int(done.split()[1]), (work, done)
    assert attach.stderr.read() == b""
    return first


def check_nothing_left(pid, sockets, before_fds, before_tasks):
    deadline = time.time() + 5
    while time.time() < deadline:
        if fds(pid) == before_fds and tasks(pid) == before_tasks:
            break
        time.sleep(0.05)
    assert fds(pid) == before_fds
    assert tasks(pid) == before_tasks
    left = os.listdir(sockets) if os.path.isdir(sockets) else []
    assert left == [], left  # socket, script, claim, result: all removed


def test_attach_detach_cycles(injectable, tmp_path):
    sockets = socket_dir(tmp_path)
    env = dict(os.environ, SPYGLASS_SOCKET_DIR=sockets)
    target, out = start_target(injectable)
    try:
        before_fds, before_tasks = fds(target.pid), tasks(target.pid)
        cycles = int(os.environ.get("SPYGLASS_INJECT_CYCLES", "25"))
        firsts = []
        for cycle in range(cycles):
            firsts.append(one_cycle(target, out, env, 2000 + cycle, injectable.how))
            check_nothing_left(target.pid, sockets, before_fds, before_tasks)
        sys.stderr.write("attach --exact by injection on %s, command to first result: %s\n" % (
            injectable.version, ", ".join("%.3f s" % f for f in firsts[:5])))
        assert target_command(target, out, "quit") == "bye"
        assert target.wait(30) == 0
        assert target.stderr.read() == b""  # the program's own output is its own
        own = [line for line in out.seen if line != "ready"]
        assert own == ["done %d" % (3 * (2000 + c)) for c in range(cycles)] + ["bye"]
    finally:
        if target.poll() is None:
            target.kill()
            target.wait()


def attach_once(pid, **env):
    return subprocess.run([spyglass_bin(), "attach", str(pid), "--exact"], input="exit\n",
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **env))


def one_line(out):
    assert out.returncode != 0, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spyglass: "), out.stderr
    return lines[0]


def test_opt_out_is_honoured(python314, tmp_path):
    python = python314.python
    sockets = socket_dir(tmp_path)
    for args, env in ((["-X", "disable-remote-debug"], {}),
                      ([], {"PYTHON_DISABLE_REMOTE_DEBUG": "1"})):
        target, out = start_target(python, *args, **env)
        try:
            line = one_line(attach_once(target.pid, SPYGLASS_SOCKET_DIR=sockets))
            assert "remote debugging turned off" in line
            assert not os.path.exists(sockets) or os.listdir(sockets) == []
            assert target_command(target, out, "burst 10") == "done 30"  # still running
        finally:
            target.kill()
            target.wait()


def test_no_matching_build(injectable, tmp_path):
    target, out = start_target(injectable)
    try:
        line = one_line(attach_once(target.pid, SPYGLASS_SOCKET_DIR=socket_dir(tmp_path),
                                    SPYGLASS_PYTHON_BUILD=str(tmp_path / "no-builds"),
                                    HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path)))
        assert "no spyglass extension built for" in line and "make " in line
        assert "python PYTHON=" in line and "cpython-3" in line
        assert target_command(target, out, "burst 10") == "done 30"
    finally:
        target.kill()
        target.wait()


def test_no_permission(injectable, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to run spyglass as another user")
    target, out = start_target(injectable)
    try:
        out_ = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               spyglass_bin(), "attach", str(target.pid), "--exact"],
                              input="exit\n", capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, SPYGLASS_SOCKET_DIR="/tmp/spyglass-nobody"))
        line = one_line(out_)
        assert "permission" in line.lower() or "not permitted" in line.lower(), line
        assert target_command(target, out, "burst 10") == "done 30"
    finally:
        target.kill()
        target.wait()


def test_main_thread_blocked_in_c(injectable, tmp_path):
    """A single-threaded program in time.sleep (a C call that never looks at the eval breaker):
    one line after the timeout, and nothing of ours runs when the call returns."""
    python = injectable.python
    sockets = socket_dir(tmp_path)
    program = ("import sys, time\nprint('ready', flush=True)\ntime.sleep(3)\n"
               "print('awake', flush=True)\nsum(range(1000))\ntime.sleep(0.5)\n")
    target = subprocess.Popen([python, "-c", program], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=clean_env())
    try:
        Lines(target.stdout).until(lambda line: line == "ready")
        started = time.time()
        line = one_line(attach_once(target.pid, SPYGLASS_SOCKET_DIR=sockets,
                                    SPYGLASS_INJECT_TIMEOUT="1"))
        assert time.time() - started < 2.8
        if injectable.main_thread_only:
            assert "main thread did not run Python code within 1 s" in line, line
        else:
            assert "did not reach a safe point within 1 s" in line, line
        assert "nothing was left pending" in line
        assert target.poll() is None  # still running
        assert os.listdir(sockets) == []
        stdout, stderr = target.communicate(timeout=30)
        assert target.returncode == 0
        assert stdout == b"awake\n" and stderr == b""  # the script did not run late
    finally:
        if target.poll() is None:
            target.kill()
            target.wait()


def test_target_exits_during_injection(injectable, tmp_path):
    python = injectable.python
    target = subprocess.Popen([python, "-c", "import time; print('ready', flush=True); "
                               "time.sleep(30)"], stdout=subprocess.PIPE, env=clean_env())
    Lines(target.stdout).until(lambda line: line == "ready")
    attach = subprocess.Popen([spyglass_bin(), "attach", str(target.pid), "--exact"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, SPYGLASS_SOCKET_DIR=socket_dir(tmp_path),
                                       SPYGLASS_INJECT_TIMEOUT="20"))
    time.sleep(1.0)
    target.send_signal(signal.SIGTERM)
    target.wait()
    stdout, stderr = attach.communicate("exit\n", timeout=30)
    lines = stderr.strip().splitlines()
    assert attach.returncode != 0
    assert len(lines) == 1 and "exited during the injection" in lines[0], stderr


def test_record_exact_json(injectable, tmp_path):
    """`record -p PID --exact -f work -d S -o F.json`: exact counts, then everything off."""
    sockets = socket_dir(tmp_path)
    target, out = start_target(injectable)
    try:
        before_fds, before_tasks = fds(target.pid), tasks(target.pid)
        result = tmp_path / "r.json"
        record = subprocess.Popen([spyglass_bin(), "record", "-p", str(target.pid), "--exact",
                                   "-f", "work", "-d", "2", "-o", str(result)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=dict(os.environ, SPYGLASS_SOCKET_DIR=sockets))
        Lines(record.stderr).until(lambda line: "exactly for 2 s" in line)
        done = target_command(target, out, "burst 5000")
        assert record.wait(30) == 0
        functions = json.loads(result.read_text())["functions"]
        assert functions[0]["name"] == "work"
        assert functions[0]["calls"] == int(done.split()[1]) == 15000
        check_nothing_left(target.pid, sockets, before_fds, before_tasks)
    finally:
        target.kill()
        target.wait()


def test_spyglass_of_the_targets_environment_first(injectable, tmp_path):
    """A spyglass installed in the target's virtual environment is the one loaded; a build for
    another interpreter (a wrong ABI tag) never is."""
    python, package = injectable
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = [p for p in (venv / "lib").glob("python3.*/site-packages")][0]
    shutil.copytree(os.path.join(package, "spyglass"), str(site / "spyglass"))
    # A build folder whose only extension is for another interpreter: not a candidate.
    wrong = tmp_path / "builds" / ("py3.%d-0" % sys.version_info[1]) / "package" / "spyglass"
    shutil.copytree(os.path.join(package, "spyglass"), str(wrong))
    for so in wrong.glob("_spyglass.*.so"):
        so.rename(wrong / "_spyglass.cpython-39-x86_64-linux-gnu.so")
    env = dict(os.environ, SPYGLASS_SOCKET_DIR=socket_dir(tmp_path),
               SPYGLASS_PYTHON_BUILD=str(tmp_path / "builds"), HOME=str(tmp_path),
               XDG_CACHE_HOME=str(tmp_path))
    target, out = start_target(str(venv / "bin" / "python"), poll=injectable.main_thread_only)
    try:
        got = subprocess.run([spyglass_bin(), "attach", str(target.pid), "--exact"],
                             input="status\nexit\n", capture_output=True, text=True,
                             timeout=60, env=env)
        assert got.returncode == 0, got.stderr
        assert "spyglass from %s" % site in got.stdout, got.stdout
        assert target_command(target, out, "burst 10") == "done 30"
    finally:
        target.kill()
        target.wait()


def test_per_user_cache(injectable, tmp_path):
    """No spyglass in the target's environment and no `make python` build: the per-user cache
    (${XDG_CACHE_HOME}/spyglass/python/<tag>, what `pip install --target` fills) is used, and
    the message without it says how to fill it."""
    python, package = injectable
    tag = [name for name in os.listdir(os.path.join(package, "spyglass"))
           if name.startswith("_spyglass.") and name.endswith(".so")][0][len("_spyglass."):-3]
    cache = tmp_path / "cache"
    shutil.copytree(os.path.join(package, "spyglass"),
                    str(cache / "spyglass" / "python" / tag / "spyglass"))
    target, out = start_target(injectable)
    try:
        env = dict(os.environ, SPYGLASS_SOCKET_DIR=socket_dir(tmp_path),
                   SPYGLASS_PYTHON_BUILD=str(tmp_path / "no-builds"), XDG_CACHE_HOME=str(cache))
        got = subprocess.run([spyglass_bin(), "attach", str(target.pid), "--exact"],
                             input="status\nexit\n", capture_output=True, text=True,
                             timeout=60, env=env)
        assert got.returncode == 0, got.stderr
        assert "spyglass from %s" % (cache / "spyglass" / "python" / tag) in got.stdout
        line = one_line(attach_once(target.pid, SPYGLASS_SOCKET_DIR=socket_dir(tmp_path),
                                    SPYGLASS_PYTHON_BUILD=str(tmp_path / "no-builds"),
                                    XDG_CACHE_HOME=str(tmp_path / "empty")))
        assert "-m pip install --target %s spyglass" % (
            tmp_path / "empty" / "spyglass" / "python" / tag) in line, line
        assert target_command(target, out, "burst 10") == "done 30"
    finally:
        target.kill()
        target.wait()


def test_program_that_imported_spyglass_keeps_its_timing(injectable, tmp_path):
    """A program that imported spyglass and times a function itself, without a socket: the
    injection uses its module, and leaving closes the socket only."""
    python, package = injectable
    program = ("import sys, threading, spyglass\n"
               "def spin(x):\n    return x + 1\n"
               "spyglass.start(['spin'])\n"
               "def load():\n    x = 0\n    while True:\n        x = spin(x)\n"
               "threading.Thread(target=load, daemon=True).start()\n"
               "print('ready', flush=True)\n"
               "import select\n"
               "while True:\n"
               "    if select.select([sys.stdin], [], [], 0.05)[0]:\n"
               "        sys.stdin.readline()\n"
               "        print('running', spyglass.is_running(), spyglass.functions(), "
               "flush=True)\n")
    sockets = socket_dir(tmp_path)
    target = subprocess.Popen([python, "-c", program], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=clean_env(PYTHONPATH=package))
    out = Lines(target.stdout)
    try:
        out.until(lambda line: line == "ready")
        got = subprocess.run([spyglass_bin(), "attach", str(target.pid), "--exact"],
                             input="status\nexit\n", capture_output=True, text=True,
                             timeout=60, env=dict(os.environ, SPYGLASS_SOCKET_DIR=sockets))
        assert got.returncode == 0, got.stderr
        assert "through %s" % injectable.how in got.stdout and "running: true" in got.stdout
        assert os.listdir(sockets) == []
        target.stdin.write(b"check\n")
        target.stdin.flush()
        assert out.until(lambda line: line.startswith("running")) == "running True ['spin']"
    finally:
        target.kill()
        target.wait()


def test_top_exact_once(injectable, tmp_path):
    sockets = socket_dir(tmp_path)
    target, out = start_target(injectable)
    try:
        before_fds, before_tasks = fds(target.pid), tasks(target.pid)
        got = subprocess.run([spyglass_bin(), "top", "-p", str(target.pid), "--exact", "-f",
                              "spin", "--once", "--refresh", "0.3"], capture_output=True,
                             text=True, timeout=60, env=dict(os.environ, SPYGLASS_SOCKET_DIR=sockets))
        assert got.returncode == 0, got.stderr
        assert "spin" in got.stdout and "Calls" in got.stdout
        check_nothing_left(target.pid, sockets, before_fds, before_tasks)
    finally:
        target.kill()
        target.wait()


def test_killed_client_turns_it_off_too(injectable, tmp_path):
    """spyglass killed (SIGKILL) in the middle of a session: the program closes what spyglass
    opened when the connection drops; the next attach works."""
    sockets = socket_dir(tmp_path)
    env = dict(os.environ, SPYGLASS_SOCKET_DIR=sockets)
    target, out = start_target(injectable)
    try:
        before_fds, before_tasks = fds(target.pid), tasks(target.pid)
        attach = subprocess.Popen([spyglass_bin(), "attach", str(target.pid), "--exact"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        attach.stdin.write(b"start work\n")
        attach.stdin.flush()
        Lines(attach.stdout).until(lambda line: line.startswith("start: chosen"))
        attach.kill()
        attach.wait()
        deadline = time.time() + 5
        while time.time() < deadline and any(n.endswith(".sock") for n in os.listdir(sockets)):
            time.sleep(0.05)
        assert not any(n.endswith(".sock") for n in os.listdir(sockets))
        # The script, claim and result files are spyglass's to remove: the next attach works
        # all the same, and the figures start from zero.
        for name in os.listdir(sockets):
            os.unlink(os.path.join(sockets, name))
        one_cycle(target, out, env, 1000, injectable.how)
        check_nothing_left(target.pid, sockets, before_fds, before_tasks)
    finally:
        target.kill()
        target.wait()
