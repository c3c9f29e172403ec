"""A threaded web server whose heavy handler does symbolic algebra with sympy and whose light
handler does little, under load from client threads in a process of their own. Two front ends:
http.server's ThreadingHTTPServer (`--server http`, the default: one new thread per request)
and waitress, a WSGI server from PyPI (`--server waitress`: a pool of worker threads behind an
asyncore loop).

The case of issue 12: deep, fast-changing library stacks on threads that contend for the GIL.
The server times its handlers itself (truth.py): `handle_algebra` (sympy: expand, factor,
cancel, together, differentiate; a different expression per request so sympy's caches do not
turn the work into look-ups) and `handle_status` (a small JSON answer, about a millisecond).

The listening socket is bound and the load generator forked before any thread exists (so the
fork is safe) and before sympy is imported; once the server is up (and, with --wait, told to
go) the generator sends a fixed number of requests from --clients threads, HTTP/1.0 so every
request is a new connection (with http.server, a new thread), then exits; the server then
shuts down, joins its request threads, writes the truth and exits. A run takes seconds.

    python algebra_server.py --truth truth.json [--scale 1] [--clients 4] [--server http|waitress]
                             [--wait]
"""

import http.client
import json
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from load import run_client_threads
from truth import Truth, done

TRUTH = Truth("algebra_server")
TRUTH.parser.add_argument("--clients", type=int, default=4, help="client threads")
TRUTH.parser.add_argument("--server", choices=("http", "waitress"), default="http",
                          help="http.server's ThreadingHTTPServer or waitress (WSGI)")
# At scale 1: per client thread, one heavy request and then LIGHT_PER_HEAVY light ones, repeated.
HEAVY_PER_CLIENT = 20
LIGHT_PER_HEAVY = 3


def run_clients(port: int, clients: int, heavy_per_client: int) -> int:
    """The load generator (in the forked child): returns how many answers were wrong."""
    failures = []

    def client(index: int) -> None:
        for round_number in range(heavy_per_client):
            paths = ["/algebra?n=%d" % (index * heavy_per_client + round_number + 1)]
            paths += ["/status"] * LIGHT_PER_HEAVY
            for path in paths:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                try:
                    connection.request("GET", path)
                    response = connection.getresponse()
                    body = response.read()
                    if response.status != 200 or not body:
                        failures.append("%s: %d" % (path, response.status))
                except OSError as error:
                    failures.append("%s: %s" % (path, error))
                finally:
                    connection.close()

    return run_client_threads(client, clients, failures)


# sympy is imported after the fork, by the server only.
sympy = None
x = y = None


def handle_algebra(n: int) -> str:
    began = TRUTH.begin()
    try:
        # sympy's caches are not thread-safe: now and then a request run beside others fails
        # inside sympy (seen on 3.9: "expected a polynomial generator ... got y" from a ring's
        # index). Done again, as a server would retry, so that the load goes on; the time of
        # every attempt is the handler's.
        for attempt in range(3):
            try:
                return algebra(n)
            except (ValueError, KeyError, TypeError, AttributeError):
                if attempt == 2:
                    raise
    finally:
        TRUTH.add("handle_algebra", began)


def algebra(n: int) -> str:
    expression = sympy.expand((x + n * y + 1) ** 3 * (x - y + n) ** 2)
    factored = sympy.factor(expression)
    cancelled = sympy.cancel((x ** 3 - n ** 3) / (x - n) + (x ** 2 - y ** 2) / (x + y))
    combined = sympy.together(1 / (x + n) + 1 / (x - n) + y / (x * y + n))
    derivative = sympy.diff(sympy.sin(n * x) * sympy.exp(x ** 2) / (1 + x ** 2), x)
    return json.dumps({"n": n, "factored": str(factored), "cancelled": str(cancelled),
                       "combined": str(combined), "derivative": str(derivative)})


def handle_status(served: int) -> str:
    began = TRUTH.begin()
    try:
        # About a millisecond: a small report, encoded and checked as a client would.
        report = {"status": "ok", "served": served, "thread": threading.get_ident(),
                  "routes": [{"path": "/route/%d" % index, "hits": index * served % 97}
                             for index in range(60)]}
        body = json.dumps(report, sort_keys=True)
        assert json.loads(body)["served"] == served
        return body
    finally:
        TRUTH.add("handle_status", began)


def respond(path: str, served: int):
    """(status, body) for a request path: the routing both front ends share."""
    if path.startswith("/algebra?n="):
        return 200, handle_algebra(int(path.split("=", 1)[1]))
    if path == "/status":
        return 200, handle_status(served)
    return 404, json.dumps({"error": "no such page"})


class Handler(BaseHTTPRequestHandler):
    served = 0

    def do_GET(self):
        Handler.served += 1
        status, body = respond(self.path, Handler.served)
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        pass  # no line per request on stderr


def application(environ, start_response):
    """The same server as a WSGI application, for waitress."""
    application.served += 1
    query = environ.get("QUERY_STRING")
    status, body = respond(environ["PATH_INFO"] + ("?" + query if query else ""),
                           application.served)
    data = body.encode()
    start_response("%d %s" % (status, "OK" if status == 200 else "Not Found"),
                   [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


application.served = 0


def start_http_server(listener: socket.socket):
    """Serves on `listener` in a thread; returns the function that stops it and joins every
    request thread."""
    server = ThreadingHTTPServer(listener.getsockname(), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = listener
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                               name="serve_forever")
    serving.start()

    def stop():
        server.shutdown()
        serving.join()
        server.server_close()  # joins every request thread

    return stop


def start_waitress(listener: socket.socket):
    import logging

    import waitress.server
    # It warns at every request that waits for a free worker, which the load makes routine.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    server = waitress.server.create_server(application, sockets=[listener], threads=4,
                                           connection_limit=200)
    serving = threading.Thread(target=server.run, name="waitress", daemon=True)
    serving.start()

    def stop():
        # Every request has been answered (the load generator has ended): stop the workers;
        # the asyncore loop thread is a daemon and ends with the process.
        server.task_dispatcher.shutdown()

    return stop


def main() -> int:
    global sympy, x, y
    options = TRUTH.start()
    TRUTH.program = "wsgi_server" if options.server == "waitress" else "algebra_server"
    TRUTH.declare("handle_algebra", "handle_status")
    # How deep sympy recurses depends on what its cache holds, which the handler threads share
    # and fill in whatever order they run: once in many runs (pyenv 3.8) a request went past
    # Python's default limit of 1000 frames inside Pow/Rational._eval_power and failed with
    # RecursionError. Servers that run sympy raise the limit; 4000 frames stay well inside a
    # thread's 8 MB C stack.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4000))
    heavy_per_client = max(1, round(HEAVY_PER_CLIENT * options.scale))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    sys.stdout.flush()
    go_read, go_write = os.pipe()
    child = os.fork()
    if child == 0:
        listener.close()
        os.close(go_write)
        os.read(go_read, 1)  # the server is up and being watched
        code = run_clients(port, options.clients, heavy_per_client)
        sys.stdout.flush()
        os._exit(1 if code else 0)
    os.close(go_read)
    import sympy as sympy_module
    sympy = sympy_module
    x, y = sympy.symbols("x y")
    stop = (start_waitress if options.server == "waitress" else start_http_server)(listener)
    TRUTH.ready()
    os.write(go_write, b"g")
    os.close(go_write)
    _, status = os.waitpid(child, 0)
    stop()
    done(TRUTH)
    if status != 0:
        print("the load generator failed (status %d)" % status, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
