"""A WSGI application for gunicorn's sync workers, timing its own handler: the truth for
--subprocesses on a pre-fork server.

    python -m gunicorn -w 4 -b 127.0.0.1:PORT --chdir tests/realprograms wsgi_workers:app

`handle_request` does CPU work (a few milliseconds of JSON and arithmetic) for each request.
After each request a worker writes what it has measured so far to $TRUTH_DIR/PID.json:
{"handle_request": seconds, "calls": n}, replaced atomically, so a worker killed at any
moment leaves its figures up to its last finished request.
"""

import json
import os
import time

_totals = {"handle_request": 0.0, "calls": 0}


def handle_request(size):
    document = {"items": [{"id": i, "name": "item-%d" % i, "tags": ["a", "b", "c"]}
                          for i in range(size)]}
    text = json.dumps(document)
    total = 0
    for item in json.loads(text)["items"]:
        total += sum(ord(c) for c in item["name"]) % 13
    return total


def _record(seconds):
    _totals["handle_request"] += seconds
    _totals["calls"] += 1
    folder = os.environ.get("TRUTH_DIR")
    if not folder:
        return
    path = os.path.join(folder, "%d.json" % os.getpid())
    with open(path + ".tmp", "w") as out:
        json.dump(_totals, out)
    os.replace(path + ".tmp", path)


def app(environ, start_response):
    start = time.perf_counter()
    answer = handle_request(400)
    _record(time.perf_counter() - start)
    body = ("%d\n" % answer).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
