"""An asyncio web server under load from concurrent clients, whose handlers spend most of their
life suspended: awaiting asyncio.sleep, sub-tasks (asyncio.gather, TaskGroup) and the client's
connection, with some CPU work between. Two front ends: asyncio's own streams
(`--server asyncio`, the default: asyncio.start_server and a small HTTP/1.1 of its own) and
aiohttp.web from PyPI (`--server aiohttp`); either on asyncio's own event loop or on uvloop's
(`--loop uvloop`, from PyPI: a loop written in Cython over libuv, whose tasks are still
asyncio's C tasks).

The case of issue 15 (async-aware wall mode): a coroutine's inclusive time is the whole time any
of its calls is in progress, suspended or running, added over calls (as thread-seconds), so the
figures here are mostly time in which no thread runs the handler at all. Each timed coroutine
takes that time itself, inside its body (truth.py: a wall clock, so it spans the awaits):

  handle_compute    CPU work (JSON, a regex, sums), with one `await asyncio.sleep(0)` midway
  handle_sleep      awaits asyncio.sleep for a few ms, a little CPU either side
  handle_fanout     awaits asyncio.gather of four fetch_part sub-coroutines (each its own task)
  handle_tasks      four fetch_part tasks in an asyncio.TaskGroup (3.11+); before 3.11 created
                    with asyncio.ensure_future and awaited with asyncio.wait
  fetch_part        sleeps a few ms, then computes: many calls in flight at once
  handle_upload     reads a request body that the client sends in pieces, a few ms apart (I/O
                    wait on the client's connection), hashing it as it comes
  serve_connection  (asyncio only) one call per client connection, for its whole life: it waits
                    for each next request on the keep-alive connection
  request_middleware  (aiohttp only) a middleware every request passes through, below
                    aiohttp's own request handling

The listening socket is bound and the load generator forked before the event loop exists (so
the fork is safe) and before aiohttp is imported; once the server is up (and, with --wait, told
to go) the generator sends a fixed number of requests from --clients threads, each over one
keep-alive HTTP/1.1 connection, then exits; the server then waits for its connections to close,
shuts down, writes the truth and exits. A run takes a few seconds.

    python async_server.py --truth truth.json [--scale 1] [--clients 8]
                           [--server asyncio|aiohttp] [--loop asyncio|uvloop] [--wait]
"""

import asyncio
import hashlib
import http.client
import json
import os
import re
import socket
import sys
import time

from load import run_client_threads
from truth import Truth, done

TRUTH = Truth("async_server")
TRUTH.parser.add_argument("--clients", type=int, default=8, help="client threads")
TRUTH.parser.add_argument("--server", choices=("asyncio", "aiohttp"), default="asyncio",
                          help="asyncio streams or aiohttp.web")
TRUTH.parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                          help="the event loop: asyncio's own, or uvloop's")
# At scale 1: rounds per client thread; a round is one request of each route.
ROUNDS_PER_CLIENT = 60
ROUTES = ("/compute", "/sleep", "/fanout", "/tasks", "/upload")
UPLOAD_PIECES = 4
UPLOAD_PIECE_BYTES = 4096
UPLOAD_PAUSE_SECONDS = 0.002
HAS_TASK_GROUP = sys.version_info >= (3, 11)
HANDLERS = ("handle_compute", "handle_sleep", "handle_fanout", "handle_tasks", "fetch_part",
            "handle_upload")
FUNCTIONS = {"asyncio": HANDLERS + ("serve_connection",),
             "aiohttp": HANDLERS + ("request_middleware",)}
WORD = re.compile(r"[a-z]+-\d+")


# --- The load generator (in the forked child) -----------------------------------------------------

def upload_body(index: int):
    """The pieces of an upload, sent a few ms apart: the handler waits on the connection."""
    for piece in range(UPLOAD_PIECES):
        if piece:
            time.sleep(UPLOAD_PAUSE_SECONDS)
        yield (("%d:%d " % (index, piece)) * UPLOAD_PIECE_BYTES)[:UPLOAD_PIECE_BYTES].encode()


def run_clients(port: int, clients: int, rounds: int) -> int:
    """Returns how many answers were wrong."""
    failures = []

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            for round_number in range(rounds):
                n = index * rounds + round_number + 1
                # Each client starts the round at a different route, so all kinds of request
                # are in flight at once.
                for step in range(len(ROUTES)):
                    path = ROUTES[(index + step) % len(ROUTES)]
                    try:
                        if path == "/upload":
                            connection.request(
                                "POST", "%s?n=%d" % (path, n), body=upload_body(n),
                                headers={"Content-Length": str(UPLOAD_PIECES *
                                                               UPLOAD_PIECE_BYTES)})
                        else:
                            connection.request("GET", "%s?n=%d" % (path, n))
                        response = connection.getresponse()
                        answer = json.loads(response.read().decode())
                        if response.status != 200 or answer.get("n") != n:
                            failures.append("%s: %d %r" % (path, response.status, answer))
                    except (OSError, ValueError, http.client.HTTPException) as error:
                        failures.append("%s: %r" % (path, error))
                        connection.close()
                        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        finally:
            connection.close()

    return run_client_threads(client, clients, failures)


# --- The timed coroutines -------------------------------------------------------------------------

def crunch(n: int, size: int) -> float:
    """Plain CPU work (not timed on its own): records built, encoded, decoded and searched."""
    records = [{"id": i, "name": "item-%d" % (n * 31 + i),
                "tags": ["t%d" % (i % 7), "u%d" % (n % 5)], "score": (i * n) % 101 / 7.0}
               for i in range(size)]
    text = json.dumps(records)
    decoded = json.loads(text)
    words = WORD.findall(text)
    return sum(len(word) for word in words) + sum(record["score"] for record in decoded)


async def handle_compute(n: int) -> dict:
    began = TRUTH.begin()
    try:
        first = crunch(n, 120)
        await asyncio.sleep(0)  # lets the others run once, as a long handler should
        second = crunch(n + 1, 120)
        return {"n": n, "value": round(first + second, 3)}
    finally:
        TRUTH.add("handle_compute", began)


async def handle_sleep(n: int) -> dict:
    began = TRUTH.begin()
    try:
        key = crunch(n, 10)
        await asyncio.sleep(0.003 + 0.001 * (n % 3))
        return {"n": n, "value": round(key + crunch(n, 10), 3)}
    finally:
        TRUTH.add("handle_sleep", began)


async def fetch_part(n: int, part: int) -> float:
    began = TRUTH.begin()
    try:
        await asyncio.sleep(0.002 + 0.001 * part)
        return crunch(n * 4 + part, 25)
    finally:
        TRUTH.add("fetch_part", began)


async def handle_fanout(n: int) -> dict:
    began = TRUTH.begin()
    try:
        parts = await asyncio.gather(*(fetch_part(n, part) for part in range(4)))
        return {"n": n, "value": round(sum(parts), 3)}
    finally:
        TRUTH.add("handle_fanout", began)


async def handle_tasks(n: int) -> dict:
    began = TRUTH.begin()
    try:
        if HAS_TASK_GROUP:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(fetch_part(n, part)) for part in range(4)]
        else:
            tasks = [asyncio.ensure_future(fetch_part(n, part)) for part in range(4)]
            await asyncio.wait(tasks)
        return {"n": n, "value": round(sum(task.result() for task in tasks), 3)}
    finally:
        TRUTH.add("handle_tasks", began)


async def handle_upload(n: int, read_piece) -> dict:
    """`read_piece()`: the next bytes of the body as they arrive, b"" at its end."""
    began = TRUTH.begin()
    try:
        digest = hashlib.sha256()
        size = 0
        while True:
            piece = await read_piece()
            if not piece:
                break
            size += len(piece)
            digest.update(piece)
            crunch(n + size, 4)
        return {"n": n, "size": size, "sha256": digest.hexdigest()}
    finally:
        TRUTH.add("handle_upload", began)


async def respond(path: str, n: int, read_piece) -> dict:
    """The routing both front ends share."""
    if path == "/compute":
        return await handle_compute(n)
    if path == "/sleep":
        return await handle_sleep(n)
    if path == "/fanout":
        return await handle_fanout(n)
    if path == "/tasks":
        return await handle_tasks(n)
    if path == "/upload":
        return await handle_upload(n, read_piece)
    raise KeyError(path)


def split_target(target: str):
    """("/path", n) of "/path?n=N"."""
    path, _, query = target.partition("?")
    return path, int(query.split("=", 1)[1]) if query.startswith("n=") else 0


# --- asyncio streams: a small HTTP/1.1 server -----------------------------------------------------

CONNECTIONS = set()


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    began = TRUTH.begin()
    try:
        while True:
            request_line = await reader.readline()
            if not request_line:
                break  # the client closed the connection
            _, target, _ = request_line.decode("latin-1").split(" ", 2)
            length = 0
            while True:
                header = await reader.readline()
                if header in (b"\r\n", b"\n", b""):
                    break
                name, _, value = header.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            remaining = [length]

            async def read_piece() -> bytes:
                if remaining[0] <= 0:
                    return b""
                piece = await reader.read(remaining[0])
                remaining[0] -= len(piece)
                return piece

            path, n = split_target(target)
            try:
                status, answer = "200 OK", await respond(path, n, read_piece)
            except KeyError:
                status, answer = "404 Not Found", {"error": "no such page"}
            while remaining[0] > 0 and await read_piece():
                pass  # a body the handler did not read
            body = json.dumps(answer).encode()
            writer.write(b"HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % (status.encode(), len(body)) + body)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
        TRUTH.add("serve_connection", began)


def track_connection(reader, writer):
    """The callback asyncio.start_server is given: the task of serve_connection, kept so that
    the server can wait for every connection to end."""
    task = asyncio.ensure_future(serve_connection(reader, writer))
    CONNECTIONS.add(task)
    task.add_done_callback(CONNECTIONS.discard)


async def start_asyncio_server(listener: socket.socket):
    server = await asyncio.start_server(track_connection, sock=listener, limit=1 << 20)

    async def stop():
        server.close()
        if CONNECTIONS:
            await asyncio.wait(list(CONNECTIONS), timeout=30)
        await server.wait_closed()

    return stop


# --- aiohttp.web ----------------------------------------------------------------------------------

async def request_middleware(request, handler):
    began = TRUTH.begin()
    try:
        return await handler(request)
    finally:
        TRUTH.add("request_middleware", began)


async def start_aiohttp(listener: socket.socket):
    from aiohttp import web

    async def view(request):
        path, n = split_target(request.path_qs)
        answer = await respond(path, n, request.content.readany)
        return web.json_response(answer)

    app = web.Application(middlewares=[web.middleware(request_middleware)])
    for path in ROUTES:
        app.router.add_route("GET" if path != "/upload" else "POST", path, view)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, listener)
    await site.start()

    async def stop():
        await runner.cleanup()

    return stop


# --- main -----------------------------------------------------------------------------------------

async def serve(options, listener: socket.socket, go_write: int, finished_read: int) -> None:
    starter = start_aiohttp if options.server == "aiohttp" else start_asyncio_server
    stop = await starter(listener)
    loop = asyncio.get_event_loop()
    clients_done = loop.create_future()
    # The load generator's end: the pipe's write end, held by it alone, closes when it exits.
    loop.add_reader(finished_read, lambda: clients_done.done() or clients_done.set_result(None))
    os.write(go_write, b"g")
    os.close(go_write)
    await clients_done
    loop.remove_reader(finished_read)
    await stop()


def run_on(loop: asyncio.AbstractEventLoop, main_coroutine) -> None:
    """asyncio.run on a loop of our choosing (asyncio.Runner's loop_factory is 3.11+)."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main_coroutine)
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def main() -> int:
    options = TRUTH.start()
    TRUTH.program = "aiohttp_server" if options.server == "aiohttp" else "async_server"
    if options.loop == "uvloop":
        TRUTH.program = "uvloop_server"
    functions = FUNCTIONS[options.server]
    TRUTH.declare(*functions)
    rounds = max(1, round(ROUNDS_PER_CLIENT * options.scale))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    sys.stdout.flush()
    go_read, go_write = os.pipe()
    finished_read, finished_write = os.pipe()
    child = os.fork()
    if child == 0:
        listener.close()
        os.close(go_write)
        os.close(finished_read)
        os.read(go_read, 1)  # the server is up and being watched
        code = run_clients(port, options.clients, rounds)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1 if code else 0)
    os.close(go_read)
    os.close(finished_write)
    if options.server == "aiohttp":
        import aiohttp.web  # noqa: F401  (imported before the timed work starts)
    new_loop = asyncio.new_event_loop
    if options.loop == "uvloop":
        import uvloop

        new_loop = uvloop.new_event_loop
    listener.setblocking(False)
    TRUTH.ready()
    run_on(new_loop(), serve(options, listener, go_write, finished_read))
    _, status = os.waitpid(child, 0)
    done(TRUTH)
    if status != 0:
        print("the load generator failed (status %d)" % status, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
