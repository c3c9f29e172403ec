"""How `spyglass dump` fails: one clear line on stderr, the documented exit code, never a
traceback or a crash, always within a timeout; and races with a changing target."""

import collections
import os
import pwd
import random
import shutil
import stat
import subprocess
import tempfile
import time

import pytest

import support
from support import (EXIT_NO_SUCH_PROCESS, EXIT_NOT_PYTHON, EXIT_PERMISSION,
                     EXIT_UNSUPPORTED_VERSION, EXIT_USAGE, assert_clean_failure,
                     assert_success_or_clean_failure)

# Fixed seed: the delays vary between runs of one test, not between test sessions.
_EXIT_DELAYS = random.Random(20261125).sample([0.05 * step for step in range(1, 9)], 3)
_CHURN_DUMPS = 50


def vanished_pid():
    """A PID no process has: that of a child we started and reaped (checked, in case it was
    reused at once)."""
    for _ in range(100):
        child = subprocess.Popen(["true"])
        child.wait()
        if not os.path.exists("/proc/%d" % child.pid):
            return child.pid
    pytest.fail("could not find an unused PID")


@pytest.fixture
def sleeping_process():
    sleep = shutil.which("sleep")
    if sleep is None:
        pytest.skip("no `sleep` command")
    process = subprocess.Popen([sleep, "60"])
    yield process
    process.kill()
    process.wait()


def test_no_such_process(run_spyglass):
    result = run_spyglass(["dump", vanished_pid()])
    assert_clean_failure(result, EXIT_NO_SUCH_PROCESS)


def test_process_that_is_not_python(run_spyglass, sleeping_process):
    result = run_spyglass(["dump", sleeping_process.pid])
    assert_clean_failure(result, EXIT_NOT_PYTHON)


@pytest.mark.parametrize("args", [["dump"], ["dump", "not-a-pid"], ["dump", "--no-such-option",
                                                                    "1"]],
                         ids=["missing-pid", "pid-not-a-number", "unknown-option"])
def test_usage_errors(run_spyglass, args):
    result = run_spyglass(args)
    support.assert_no_crash(result)
    assert result.returncode == EXIT_USAGE, result.describe()
    assert result.stderr.startswith("spyglass: "), result.describe()


def test_unsupported_python_version(unsupported_interpreter, start_target, run_spyglass):
    target = start_target(unsupported_interpreter, "idle.py")
    result = run_spyglass(["dump", target.pid])
    message = assert_clean_failure(result, EXIT_UNSUPPORTED_VERSION)
    assert unsupported_interpreter.minor_text in message, (
        "the message should name Python %s\n%s" % (unsupported_interpreter.minor_text,
                                                   result.describe()))


def unprivileged_prefix():
    """A command prefix running what follows as `nobody`, without supplementary groups."""
    try:
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
    except KeyError:
        uid = gid = 65534
    if shutil.which("setpriv"):
        return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups"]
    if shutil.which("runuser"):
        return ["runuser", "-u", "nobody", "--"]
    pytest.skip("neither setpriv nor runuser is installed: cannot drop privileges")


@pytest.fixture
def spyglass_for_nobody(spyglass_bin, tmp_path):
    """The spyglass command somewhere the unprivileged user can run it: where it is if it can
    (checked), else a copy in a world-readable temporary directory."""
    prefix = unprivileged_prefix()
    probe = subprocess.run(prefix + ["test", "-x", spyglass_bin], check=False)
    if probe.returncode == 0:
        yield spyglass_bin
        return
    directory = tempfile.mkdtemp(prefix="spyglass-nobody-")
    try:
        os.chmod(directory, 0o755)
        copy = os.path.join(directory, "spyglass")
        shutil.copy(spyglass_bin, copy)
        os.chmod(copy, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        yield copy
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to run a target as root and "
                    "spyglass as an unprivileged user")
def test_no_permission(interpreter, start_target, spyglass_for_nobody):
    target = start_target(interpreter, "idle.py")
    result = support.run_command(
        unprivileged_prefix() + [spyglass_for_nobody, "dump", str(target.pid)], timeout=30)
    message = assert_clean_failure(result, EXIT_PERMISSION)
    assert "permission" in message.lower(), result.describe()


def test_process_exiting_during_the_walk(interpreter, start_target, run_spyglass):
    """Dumps a process again and again while it exits: each dump is whole or one clean line."""
    outcomes = []
    for delay in _EXIT_DELAYS:
        target = start_target(interpreter, "exits_soon.py", "%.2f" % delay)
        dumps_after_exit = 0
        deadline = time.monotonic() + delay + 20
        while dumps_after_exit < 2 and time.monotonic() < deadline:
            gone = target.proc.poll() is not None  # reaps it once it exits
            result = run_spyglass(["dump", "--json", target.pid])
            ok = assert_success_or_clean_failure(result, json_output=True)
            outcomes.append("ok" if ok else "exit %d" % result.returncode)
            if gone:
                assert not ok, "dumped a process already gone\n" + result.describe()
                dumps_after_exit += 1
        assert dumps_after_exit == 2, "the target never exited\n" + target.stderr_text()
    summary = dict(collections.Counter(outcomes))
    print("outcomes: %r" % summary)
    assert "ok" in summary, "no dump succeeded while the targets ran: %r" % summary


def test_threads_created_and_destroyed_during_the_walk(interpreter, start_target, run_spyglass,
                                                       request):
    target = start_target(interpreter, "thread_churn.py")
    successes = 0
    started = time.monotonic()
    for _ in range(_CHURN_DUMPS):
        result = run_spyglass(["dump", "--json", target.pid])
        successes += assert_success_or_clean_failure(result, json_output=True)
    support.record_timing(request.node.callspec.id, "%d dumps of a churning process" % (
        _CHURN_DUMPS), time.monotonic() - started)
    assert target.proc.poll() is None, "the target died\n" + target.stderr_text()
    print("%d of %d dumps succeeded" % (successes, _CHURN_DUMPS))
    assert successes > 0, "no dump of the churning process succeeded"
