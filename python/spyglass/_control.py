"""The control socket: `spyglass attach PID --exact` drives exact mode through it.

A Unix stream socket at ``<dir>/<pid>.sock``, where ``<dir>`` is ``$SPYGLASS_SOCKET_DIR`` or
``/tmp/spyglass-<uid>``, a folder of our own with mode 0700 (refused if it is anyone else's or
open to others); the socket itself is 0600. Each connection is checked with SO_PEERCRED: only the
same user is served. Requests and replies are JSON objects, one per line (docs/protocol.md);
a request is at most 64 KiB. No command runs code: only start, stop, add, remove, results,
reset, status, and close (turns exact mode off and closes the socket).
"""

import atexit
import errno
import json
import os
import socket
import stat
import struct
import sys
import threading

PROTOCOL_VERSION = 1
MAX_REQUEST = 64 * 1024
MAX_CLIENTS = 4

_server = None


def socket_dir(uid=None):
    uid = os.getuid() if uid is None else uid
    return os.environ.get("SPYGLASS_SOCKET_DIR") or "/tmp/spyglass-%d" % uid


def _private_dir(path):
    """Creates `path` 0700, or checks an existing one is ours, a real folder, closed to others."""
    try:
        os.mkdir(path, 0o700)
    except OSError as error:
        if error.errno != errno.EEXIST:
            raise
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise OSError("%s is not a folder" % path)
    if info.st_uid != os.getuid():
        raise OSError("%s belongs to another user" % path)
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise OSError("%s is open to other users (mode %o)" % (path, stat.S_IMODE(info.st_mode)))


def _peer_uid(conn):
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def _names(request):
    functions = request.get("functions", [])
    if isinstance(functions, str):
        functions = [functions]
    if not isinstance(functions, list) or not all(isinstance(f, str) for f in functions):
        raise ValueError("'functions' must be a list of strings")
    if len(functions) > 1000:
        raise ValueError("too many functions")
    return functions


def _results_reply(results, request):
    reply = {"ok": True, "results": results.to_dict()}
    if request.get("table", True):
        reply["table"] = results.table(
            unicode=bool(request.get("unicode", True)),
            per_thread=bool(request.get("per_thread", False)),
        )
    return reply


def handle(request):
    """One request (a dict) to one reply (a dict). Never raises."""
    import spyglass

    try:
        if not isinstance(request, dict):
            raise ValueError("a request is a JSON object")
        command = request.get("command")
        if command == "status":
            info = spyglass.info()
            return {
                "ok": True,
                "protocol": PROTOCOL_VERSION,
                "pid": os.getpid(),
                "python": sys.version.split()[0],
                "running": spyglass.is_running(),
                "functions": spyglass.functions(),
                "backend": info.get("backend"),
                "clock": info.get("clock"),
            }
        if command == "start":
            spyglass.start(_names(request))
            return {"ok": True, "functions": spyglass.functions()}
        if command == "stop":
            return _results_reply(spyglass.stop(), request)
        if command == "add":
            return {"ok": True, "added": spyglass.add(*_names(request)),
                    "functions": spyglass.functions()}
        if command == "remove":
            return {"ok": True, "removed": spyglass.remove(*_names(request)),
                    "functions": spyglass.functions()}
        if command == "results":
            return _results_reply(spyglass.results(), request)
        if command == "reset":
            spyglass.reset()
            return {"ok": True}
        if command == "close":
            # Exact mode off completely: timing stopped (hooks and tool id released), the choice
            # cleared, then (once this reply is sent) the socket closed and removed.
            if not request.get("keep_timing", False):
                if spyglass.is_running():
                    spyglass.stop()
                spyglass._core.clear()
            return {"ok": True, "closing": True}
        raise ValueError("unknown command %r" % (command,))
    except Exception as error:  # a bad request must never reach the program
        return {"ok": False, "error": str(error)}


def _send(conn, reply):
    conn.sendall(json.dumps(reply).encode("utf-8") + b"\n")


def _serve_client(conn):
    with conn:
        try:
            uid = _peer_uid(conn)
            if uid != os.getuid():
                _send(conn, {"ok": False, "error": "permission denied: uid %d is not the owner" % uid})
                return
            buffer = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if len(line) > MAX_REQUEST:
                        _send(conn, {"ok": False, "error": "request longer than 64 KiB"})
                        return
                    if not line.strip():
                        continue
                    try:
                        request = json.loads(line.decode("utf-8"))
                    except (ValueError, RecursionError) as error:  # RecursionError: deep nesting
                        _send(conn, {"ok": False, "error": "bad JSON: %s" % error})
                        continue
                    reply = handle(request)
                    if reply.get("closing"):
                        # The listening socket goes first (its file removed, the accept thread
                        # ended): when the client reads the reply, nothing of it is left.
                        close()
                        _send(conn, reply)
                        return
                    _send(conn, reply)
                if len(buffer) > MAX_REQUEST:
                    _send(conn, {"ok": False, "error": "request longer than 64 KiB"})
                    return
        except OSError:
            return


class _Server(object):
    def __init__(self, path):
        self.path = path
        self.pid = os.getpid()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is born 0600
        try:
            try:
                os.unlink(path)
            except OSError:
                pass
            self.sock.bind(path)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        self.sock.listen(8)
        self.clients = threading.BoundedSemaphore(MAX_CLIENTS)
        self.on_disconnect = None  # a request handled when a client leaves without `close`
        self.thread = threading.Thread(target=self._accept_loop, name="spyglass-control",
                                       daemon=True)
        self.thread.start()
        atexit.register(self.close)

    def _accept_loop(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if not self.clients.acquire(blocking=False):
                try:
                    _send(conn, {"ok": False, "error": "too many clients"})
                finally:
                    conn.close()
                continue
            threading.Thread(target=self._client, args=(conn,), name="spyglass-client",
                             daemon=True).start()

    def _client(self, conn):
        try:
            _serve_client(conn)
        finally:
            self.clients.release()
            # A socket spyglass opened from outside (attach --exact on a program that never
            # imported spyglass) closes when its client goes without closing (killed).
            if self.on_disconnect is not None and _server is self:
                if handle(dict(self.on_disconnect)).get("closing"):
                    close()

    def close(self):
        if os.getpid() != self.pid:
            return  # a forked child must not remove its parent's socket
        try:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept loop
            except OSError:
                pass
            self.sock.close()
        finally:
            try:
                os.unlink(self.path)
            except OSError:
                pass


def close():
    """Closes the control socket (and removes it); the accept thread ends. listen() may open it
    again."""
    global _server
    server, _server = _server, None
    if server is not None:
        try:
            atexit.unregister(server.close)
        except Exception:
            pass
        server.close()
        if server.thread is not threading.current_thread():
            server.thread.join(2)


def _after_fork_in_child():
    """A process forked from one with the socket open opens its own, at its own pid's path, so
    that `spyglass record --exact -s` reaches every worker of a pre-fork server or a pool. The
    child's figures start from zero: they are its own, not its parent's."""
    global _server
    server, _server = _server, None
    if server is None:
        return
    try:
        server.sock.close()  # the parent's socket: its accept thread did not survive the fork
    except OSError:
        pass
    try:
        import spyglass

        # A lock held by another thread at the fork would stay held in the child for good.
        spyglass._lock = threading.RLock()
        spyglass._core.reset()
        listen()
        _server.on_disconnect = server.on_disconnect
    except Exception as error:  # never break the program being observed
        sys.stderr.write("spyglass: control socket not opened in process %d: %s\n"
                         % (os.getpid(), error))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def listen(path=None):
    """Opens the control socket once per process; returns its path."""
    global _server
    if _server is not None and _server.pid == os.getpid():
        return _server.path
    if path is None:
        folder = socket_dir()
        _private_dir(folder)
        path = os.path.join(folder, "%d.sock" % os.getpid())
    _server = _Server(path)
    return path
