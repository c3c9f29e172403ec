"""The control socket: a session against a running program (the Python side and the C++ client
the CLI links), and another user's connection refused."""

import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import HERE, build_package, child_env


def request(sock_file, message):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(sock_file)
        s.sendall(json.dumps(message).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


@pytest.fixture(params=["3.12", "3.8"])
def target(request):
    python, package = build_package(request.param)
    base = tempfile.mkdtemp(prefix="spyglass-socket-test-")
    os.chmod(base, 0o755)
    sock_dir = os.path.join(base, "sockets")
    stop_file = os.path.join(base, "stop")
    env = child_env(package, SPYGLASS_SOCKET_DIR=sock_dir)
    proc = subprocess.Popen([python, os.path.join(HERE, "socket_target.py"), stop_file], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    assert line and line[0] == "ready", proc.stderr.read()
    info = {"pid": int(line[1]), "path": line[2], "dir": sock_dir, "package": package,
            "env": env}
    yield info
    open(stop_file, "w").close()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    shutil.rmtree(base, ignore_errors=True)


def test_socket_is_private(target):
    assert stat.S_IMODE(os.stat(target["dir"]).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(target["path"]).st_mode) == 0o600
    assert target["path"] == os.path.join(target["dir"], "%d.sock" % target["pid"])


def test_session(target):
    path = target["path"]
    status = request(path, {"command": "status"})
    assert status["ok"] and status["running"] is False and status["protocol"] == 1
    assert request(path, {"command": "start", "functions": ["work"]})["functions"] == ["work"]
    time.sleep(0.3)
    reply = request(path, {"command": "results"})
    assert reply["ok"] and "work" in reply["table"]
    work = reply["results"]["functions"][0]
    assert work["name"] == "work" and work["calls"] > 10 and work["seconds"] > 0.01
    assert request(path, {"command": "add", "functions": ["other"]})["added"] == ["other"]
    time.sleep(0.2)
    names = {f["name"]: f for f in request(path, {"command": "results"})["results"]["functions"]}
    assert names["other"]["calls"] > 10
    assert request(path, {"command": "remove", "functions": ["other"]})["removed"] == ["other"]
    assert request(path, {"command": "reset"})["ok"]
    stopped = request(path, {"command": "stop", "table": False})
    assert stopped["ok"] and "table" not in stopped
    assert [f["name"] for f in stopped["results"]["functions"]] == ["work"]
    assert request(path, {"command": "status"})["running"] is False
    bad = request(path, {"command": "exec", "code": "import os"})
    assert bad["ok"] is False and "unknown command" in bad["error"]


def test_oversized_and_malformed_requests(target):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(target["path"])
        s.sendall(b"not json\n")
        assert json.loads(s.makefile().readline())["ok"] is False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(target["path"])
        try:
            s.sendall(b"x" * (200 * 1024))
        except OSError:
            pass
        reply = s.makefile().readline()
        assert "64 KiB" in json.loads(reply)["error"]


def test_cpp_client(target):
    ctl = os.path.join(os.path.dirname(os.path.dirname(target["package"])), "common", "src",
                       "extension", "spyglass-exact-ctl")
    if not os.path.exists(ctl):
        pytest.skip("spyglass-exact-ctl not built")
    env = dict(os.environ, SPYGLASS_SOCKET_DIR=target["dir"])
    run = lambda *args: subprocess.run([ctl, str(target["pid"])] + list(args), env=env,
                                       capture_output=True, text=True, timeout=30)
    started = run("start", "work")
    assert started.returncode == 0, started.stderr
    time.sleep(0.2)
    results = run("results")
    assert results.returncode == 0 and "work" in results.stdout
    reply = json.loads(results.stdout.strip().splitlines()[-1])
    assert reply["results"]["functions"][0]["calls"] > 5
    assert run("frobnicate").returncode == 1
    assert run("stop").returncode == 0


def test_other_user_refused(target):
    if os.getuid() != 0 or shutil.which("setpriv") is None or not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs root, setpriv and /usr/bin/python3 to connect as another user")
    client = (
        "import json, socket, sys\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "s.settimeout(20)\n"
        "try:\n"
        "    s.connect(sys.argv[1])\n"
        "except OSError as e:\n"
        "    print(json.dumps({'connect_error': e.errno})); sys.exit(0)\n"
        "try:\n"
        "    s.sendall(b'{\"command\": \"status\"}\\n')\n"
        "except OSError:\n"
        "    pass  # the server may have answered and closed already\n"
        "print(s.makefile().readline().strip() or '{}')\n")
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3",
              "-c", client, target["path"]]
    # The folder's permissions stop another user first...
    first = subprocess.run(nobody, capture_output=True, text=True, timeout=30)
    assert "connect_error" in json.loads(first.stdout), first.stdout + first.stderr
    # ...and with them opened up (as root), the peer-credentials check still refuses.
    os.chmod(target["dir"], 0o711)
    os.chmod(target["path"], 0o666)
    second = subprocess.run(nobody, capture_output=True, text=True, timeout=30)
    reply = json.loads(second.stdout)
    assert reply.get("ok") is False and "permission denied" in reply["error"], second.stdout
    # The owner is still served.
    assert request(target["path"], {"command": "status"})["ok"]


def test_close_turns_everything_off(target):
    """`close`: timing stopped, the choice cleared, the socket closed and removed, the accept
    thread ended (what `attach --exact` sends when it started exact mode itself)."""
    path, pid = target["path"], target["pid"]
    assert request(path, {"command": "start", "functions": ["work"]})["ok"]
    time.sleep(0.1)
    reply = request(path, {"command": "close"})
    assert reply == {"ok": True, "closing": True}
    deadline = time.time() + 5
    while time.time() < deadline and (os.path.exists(path) or
                                      len(os.listdir("/proc/%d/task" % pid)) > 1):
        time.sleep(0.05)
    assert not os.path.exists(path)
    assert len(os.listdir("/proc/%d/task" % pid)) == 1  # the program's own thread only
    with pytest.raises(OSError):
        request(path, {"command": "status"})
