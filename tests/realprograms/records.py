"""Everyday data handling with the standard library, on one thread: regular expressions over
log lines, dataclasses built, compared, sorted and turned into dicts, JSON encoded and decoded
with Python callbacks (`default=`, `object_hook=`) so the C codecs call back into Python for
every object, and a pipeline of generators between them. Short calls, many of them: the stacks
change every microsecond or so, at a shallow depth.

Timed functions (truth.py): `process_logs` (the whole session) and its stages on each batch:
`parse_lines`, `summarise`, `round_trip`.

    python records.py --truth truth.json [--scale 1] [--wait]
"""

import dataclasses
import json
import random
import re
import sys
from typing import Dict, Iterator, List, Optional

from truth import Truth, run_program

TRUTH = Truth("records")
FUNCTIONS = ("process_logs", "parse_lines", "summarise", "round_trip")
BATCHES = 30  # at scale 1: about 2-3 s on CPython 3.12
LINES_PER_BATCH = 1500

LINE = re.compile(
    r'(?P<host>\d+\.\d+\.\d+\.\d+) - (?P<user>\w+|-) \[(?P<when>[^\]]+)\] '
    r'"(?P<method>GET|POST|PUT|DELETE) (?P<path>/[^ ?"]*)(?:\?(?P<query>[^ "]*))? HTTP/1\.[01]" '
    r'(?P<status>\d{3}) (?P<size>\d+|-) (?P<millis>\d+\.\d+)')
QUERY_PAIR = re.compile(r"([^&=]+)=([^&]*)")


@dataclasses.dataclass(frozen=True, order=True)
class Request:
    path: str
    method: str
    status: int
    size: int
    millis: float
    host: str
    user: Optional[str] = None
    query: Dict[str, str] = dataclasses.field(default_factory=dict, compare=False)


@dataclasses.dataclass
class PathSummary:
    path: str
    count: int = 0
    errors: int = 0
    total_millis: float = 0.0
    largest: int = 0
    methods: Dict[str, int] = dataclasses.field(default_factory=dict)
    slowest: List[Request] = dataclasses.field(default_factory=list)


def log_lines(batch: int) -> Iterator[str]:
    rng = random.Random(batch)
    paths = ["/api/users", "/api/orders", "/static/app.js", "/login", "/api/search",
             "/api/orders/items", "/health"]
    for index in range(LINES_PER_BATCH):
        query = "" if rng.random() < 0.5 else "?q=%d&page=%d&sort=%s" % (
            rng.randint(1, 999), rng.randint(1, 9), rng.choice(["asc", "desc"]))
        yield '10.%d.%d.%d - %s [04/Dec/2026:06:%02d:%02d +0000] "%s %s%s HTTP/1.1" %d %s %.3f' % (
            rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255),
            rng.choice(["alice", "bob", "-"]), index // 60 % 60, index % 60,
            rng.choice(["GET", "GET", "POST", "PUT", "DELETE"]), rng.choice(paths), query,
            rng.choice([200, 200, 200, 201, 304, 404, 500]),
            rng.choice([str(rng.randint(100, 90000)), "-"]), rng.uniform(0.1, 900.0))


def parse_lines(lines: Iterator[str]) -> List[Request]:
    began = TRUTH.begin()
    try:
        requests = []
        for match in filter(None, (LINE.match(line) for line in lines)):
            fields = match.groupdict()
            requests.append(Request(
                path=fields["path"], method=fields["method"], status=int(fields["status"]),
                size=0 if fields["size"] == "-" else int(fields["size"]),
                millis=float(fields["millis"]), host=fields["host"],
                user=None if fields["user"] == "-" else fields["user"],
                query=dict(QUERY_PAIR.findall(fields["query"] or ""))))
        return requests
    finally:
        TRUTH.add("parse_lines", began)


def summarise(requests: List[Request]) -> List[PathSummary]:
    began = TRUTH.begin()
    try:
        summaries: Dict[str, PathSummary] = {}
        for request in sorted(requests):
            summary = summaries.setdefault(request.path, PathSummary(request.path))
            summary.count += 1
            summary.errors += request.status >= 500
            summary.total_millis += request.millis
            summary.largest = max(summary.largest, request.size)
            summary.methods[request.method] = summary.methods.get(request.method, 0) + 1
            summary.slowest = sorted(summary.slowest + [request],
                                     key=lambda item: -item.millis)[:5]
        return sorted(summaries.values(), key=lambda item: (-item.count, item.path))
    finally:
        TRUTH.add("summarise", began)


def encode(value):
    if dataclasses.is_dataclass(value):
        return dict(dataclasses.asdict(value), kind=type(value).__name__)
    raise TypeError("cannot encode %r" % (value,))


def decode(obj: dict):
    kind = obj.pop("kind", None)
    if kind == "Request":
        return Request(**obj)
    if kind == "PathSummary":
        return PathSummary(**obj)
    return obj


def round_trip(requests: List[Request], summaries: List[PathSummary]) -> int:
    began = TRUTH.begin()
    try:
        text = json.dumps({"summaries": summaries, "requests": requests[:400]}, default=encode,
                          sort_keys=True)
        back = json.loads(text, object_hook=decode)
        assert back["summaries"][0].count == summaries[0].count
        return len(text)
    finally:
        TRUTH.add("round_trip", began)


def process_logs(batches: int) -> int:
    began = TRUTH.begin()
    try:
        total = 0
        for batch in range(batches):
            requests = parse_lines(log_lines(batch))
            total += round_trip(requests, summarise(requests))
        return total
    finally:
        TRUTH.add("process_logs", began)


if __name__ == "__main__":
    sys.exit(run_program(TRUTH, FUNCTIONS, process_logs, BATCHES))
