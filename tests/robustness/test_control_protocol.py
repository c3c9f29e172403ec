"""Exact mode's control protocol parser (python/spyglass/_control.py) under hostile requests: bad
UTF-8, bad JSON, deep nesting, huge numbers, wrong types, over-long lines, random bytes. Every
request gets one `{"ok": false, ...}` reply line (or the connection is closed after an over-long
request), never a traceback, and the connection keeps serving. The server side runs on one end
of a socketpair (SO_PEERCRED works there) with a stand-in for the `spyglass` module, so only the
parser and the dispatcher are under test."""

import importlib.util
import json
import random
import socket
import sys
import threading
import types
from pathlib import Path

import pytest

CONTROL = Path(__file__).resolve().parents[2] / "python" / "spyglass" / "_control.py"


@pytest.fixture
def control(monkeypatch):
    stub = types.ModuleType("spyglass")
    stub.info = lambda: {"backend": "stub", "clock": "stub"}
    stub.is_running = lambda: False
    stub.functions = lambda: []

    def refuse(*args, **kwargs):
        raise RuntimeError("stub")

    stub.start = stub.stop = stub.add = stub.remove = stub.results = stub.reset = refuse
    monkeypatch.setitem(sys.modules, "spyglass", stub)
    spec = importlib.util.spec_from_file_location("spyglass_control_under_test", CONTROL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def connection(control):
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    errors = []

    def serve():
        try:
            control._serve_client(server)
        except BaseException as error:  # what would be a traceback in the user's program
            errors.append(repr(error))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client.settimeout(20)
    reader = client.makefile("rb")
    yield client, reader, errors
    client.close()
    thread.join(timeout=10)
    assert not errors, "the server thread raised: %s" % errors


def ask(client, reader, line: bytes):
    client.sendall(line + b"\n")
    reply = reader.readline()
    assert reply, "no reply to %r (connection closed)" % line[:80]
    return json.loads(reply)


HOSTILE = [
    b"\xff\xfe\xfd",
    b"{\"command\": \"status\"",
    b"[" * 50000,
    b"{\"a\":" * 10000 + b"1" + b"}" * 10000,
    b"1" * 5000,
    b"\"" + b"\\ud800" * 1000 + b"\"",
    b"NaN",
    b"[]",
    b"null",
    b"{\"command\": [\"status\"]}",
    b"{\"command\": \"start\", \"functions\": {\"a\": 1}}",
    b"{\"command\": \"start\", \"functions\": [1e999]}",
    b"{\"command\": \"add\", \"functions\": [\"x\"] }",
    b"{\"command\": \"stop\", \"table\": {}}",
    b"{\"command\": \"exec\", \"code\": \"import os; os._exit(1)\"}",
    b"{\"command\": \"__import__\"}",
]


def test_hostile_requests_get_a_refusal(connection):
    client, reader, errors = connection
    for line in HOSTILE:
        reply = ask(client, reader, line)
        assert reply.get("ok") is False, (line[:80], reply)
        assert isinstance(reply.get("error"), str), reply
    assert ask(client, reader, b'{"command": "status"}')["ok"] is True


def test_random_bytes(connection):
    client, reader, errors = connection
    rng = random.Random(7)
    for _ in range(300):
        line = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200))).replace(b"\n", b"")
        if not line.strip():
            continue
        reply = ask(client, reader, line)
        assert reply.get("ok") is False, (line, reply)
    assert ask(client, reader, b'{"command": "status"}')["ok"] is True


def test_over_long_request_is_refused(connection, control):
    client, reader, errors = connection
    client.sendall(b"x" * (control.MAX_REQUEST + 10))
    reply = json.loads(reader.readline())
    assert reply["ok"] is False and "64 KiB" in reply["error"], reply
    assert reader.readline() == b"", "the connection stays open after an over-long request"
