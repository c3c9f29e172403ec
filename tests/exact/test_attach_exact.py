"""`spyglass attach PID --exact`: the command line's prompt driving exact mode in a running
program over its control socket (the CLI side of the protocol in docs/protocol.md)."""

import os
import subprocess
import time

import pytest

from conftest import REPO
from test_socket import target  # noqa: F401  (the fixture: a program listening on its socket)


def spyglass_bin():
    path = os.environ.get("SPYGLASS_BIN") or os.path.join(REPO, "build", "spyglass")
    if not os.path.exists(path):
        pytest.skip("the spyglass command is not built (%s): run make build" % path)
    return path


def drive(target, commands, **env_extra):
    env = dict(target["env"])
    env.update(env_extra)
    return subprocess.run([spyglass_bin(), "attach", str(target["pid"]), "--exact"],
                          input="".join(c + "\n" for c in commands), env=env,
                          capture_output=True, text=True, timeout=60)


def test_session_from_the_command_line(target):  # noqa: F811
    out = drive(target, ["status", "start work", "results"])
    assert out.returncode == 0, out.stderr
    assert "exact mode" in out.stdout and "backend:" in out.stdout
    time.sleep(0.3)
    out = drive(target, ["results --json", "add other", "stop", "exit"])
    assert out.returncode == 0, out.stderr
    assert '"mode": "exact"' in out.stdout
    assert "Calls" in out.stdout and "work" in out.stdout and "other" in out.stdout


def test_unknown_command_and_bad_request(target):  # noqa: F811
    out = drive(target, ["frobnicate", "add", "exit"])
    assert out.returncode == 0, out.stderr
    assert "unknown command 'frobnicate'" in out.stdout
    assert "add: name at least one function" in out.stdout


def test_program_without_socket_is_one_clear_line(tmp_path):
    program = subprocess.Popen(["sleep", "30"])
    try:
        out = subprocess.run([spyglass_bin(), "attach", str(program.pid), "--exact"],
                             input="", capture_output=True, text=True, timeout=30,
                             env=dict(os.environ, SPYGLASS_SOCKET_DIR=str(tmp_path)))
    finally:
        program.kill()
        program.wait()
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spyglass: ")
    assert "spyglass.listen()" in lines[0]
