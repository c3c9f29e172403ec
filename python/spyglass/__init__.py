"""spyglass exact mode: time chosen functions of this Python program exactly.

    import spyglass
    spyglass.start(["handle_request", "db:Connection.query"])
    ...
    print(spyglass.stop())            # the same table the sampler prints

    with spyglass.profile(["parse"]) as p:
        work()
    print(p.results.to_json())

    @spyglass.trace                   # marked, not wrapped: same function object
    def handle_request(req): ...

Function patterns are the command line's: ``name``, ``Class.method``, ``module:qualname``,
``module.qualname``, ``file.py:name``, and globs (``handlers.*``); functions defined or imported
after ``start`` are picked up. Only chosen functions carry any instrumentation (sys.monitoring on
3.12+); when stopped, nothing is installed.
"""

import json
import os
import sys
import threading

from . import _spyglass as _core

__all__ = [
    "Results",
    "add",
    "is_running",
    "listen",
    "profile",
    "remove",
    "reset",
    "results",
    "start",
    "stop",
    "trace",
]

__version__ = "0.1.0"

_marked = {}  # name -> code object, for @trace
_lock = threading.RLock()


def _function_name(function):
    module = getattr(function, "__module__", None) or "?"
    qualname = getattr(function, "__qualname__", None) or getattr(function, "__name__", "?")
    return "%s:%s" % (module, qualname)


def _code_of(function):
    code = getattr(function, "__code__", None)
    if code is None:
        inner = getattr(function, "__func__", None)  # bound methods, classmethod, staticmethod
        code = getattr(inner, "__code__", None)
    return code


def _entries(functions):
    """(name, code or None) for each pattern string or function object."""
    if functions is None:
        return []
    if isinstance(functions, str) or callable(functions):
        functions = [functions]
    entries = []
    for item in functions:
        if isinstance(item, str):
            entries.append((item, None))  # checked by the pattern core (ValueError)
        else:
            code = _code_of(item)
            if code is None:
                raise TypeError("cannot time %r: not a Python function" % (item,))
            entries.append((_function_name(item), code))
    return entries


def trace(function):
    """Marks `function` for timing without wrapping it: returns the very same object.

    Marked functions are timed whenever spyglass runs (and immediately when it already runs).
    """
    code = _code_of(function)
    if code is None:
        raise TypeError("@spyglass.trace needs a Python function, got %r" % (function,))
    name = _function_name(function)
    with _lock:
        _marked[name] = code
        _core.add(name, code)
    return function


def is_running():
    return _core.running()


def start(functions=(), listen=False):
    """Starts timing `functions` (patterns or function objects) and every @trace'd function.

    When already running, the functions are added. ``listen=True`` also opens the control socket.
    """
    with _lock:
        if not _core.running():
            # A fresh session: the given functions and the marked ones, figures from zero.
            _core.clear()
            _core.reset()
            for name, code in _marked.items():
                _core.add(name, code)
        for name, code in _entries(functions):
            _core.add(name, code)
        _core.start()
    if listen:
        globals()["listen"]()


def stop():
    """Stops timing (calls in flight end now) and returns the results."""
    with _lock:
        _core.stop()
        return results()


def results():
    """The figures so far, while running or after stop()."""
    names = {t.ident: t.name for t in threading.enumerate() if t.ident is not None}
    return Results(_core.snapshot(names))


def add(*functions):
    """Adds functions (patterns or function objects), also while running."""
    with _lock:
        added = []
        for name, code in _entries(list(functions)):
            if _core.add(name, code):
                added.append(name)
        return added


def remove(*functions):
    """Stops timing functions (by pattern as given, or function object)."""
    with _lock:
        removed = []
        for name, _ in _entries(list(functions)):
            if _core.remove(name):
                removed.append(name)
            _marked.pop(name, None)
        return removed


def reset():
    """Zeroes the figures; the chosen functions stay chosen."""
    with _lock:
        _core.reset()


def functions():
    """The chosen entries, in the order chosen."""
    return _core.entries()


def info():
    """Backend (sys.monitoring tool id, eval-frame function or profile hook) and clock in use."""
    return _core.info()


def listen(path=None):
    """Opens the control socket (see docs/protocol.md); returns its path."""
    from . import _control

    return _control.listen(path)


class Results(object):
    """Results of exact mode: ``str()`` is the console table, ``to_dict()``/``to_json()`` the JSON
    shared with the sampler (a ``"functions"`` list of ``name``, ``calls``, ``seconds``,
    ``self_seconds``, latency figures, ...)."""

    def __init__(self, snapshot):
        self._snapshot = snapshot
        self._dict = None

    def table(self, unicode=None, per_thread=False, color=False, width=None, matches=10):
        """The console table. `width`: columns to fit (default: $COLUMNS, else the terminal's
        when stdout is one, else any); `matches`: functions listed under a pattern that matched
        several."""
        if unicode is None:
            encoding = (getattr(sys.stdout, "encoding", None) or "").lower()
            unicode = encoding.replace("-", "") == "utf8"
        if width is None:  # as the spyglass command: $COLUMNS, else the terminal's, else any
            try:
                width = int(os.environ.get("COLUMNS") or
                            os.get_terminal_size(sys.stdout.fileno()).columns)
            except (AttributeError, OSError, ValueError):
                width = 0
        return _core.render_table(self._snapshot, bool(unicode), bool(per_thread), bool(color),
                                  int(width), int(matches))

    def __str__(self):
        return self.table()

    def __repr__(self):
        return "<spyglass.Results %s>" % ", ".join(f["name"] for f in self.functions)

    def to_json(self, **kwargs):
        if not kwargs:
            return _core.to_json(self._snapshot)
        return json.dumps(self.to_dict(), **kwargs)

    def to_dict(self):
        if self._dict is None:
            self._dict = json.loads(_core.to_json(self._snapshot))
        return json.loads(json.dumps(self._dict))  # a copy the caller may change

    @property
    def functions(self):
        return self.to_dict()["functions"]

    def __getitem__(self, name):
        for function in self.functions:
            if function["name"] == name:
                return function
        raise KeyError(name)


class profile(object):
    """``with spyglass.profile(["f", g]) as p: ...`` then ``p.results``."""

    def __init__(self, functions=(), listen=False):
        self._functions = functions
        self._listen = listen
        self.results = None

    def __enter__(self):
        start(self._functions, listen=self._listen)
        return self

    def __exit__(self, *exc):
        self.results = stop()
        return False


if os.environ.get("SPYGLASS_LISTEN", "") not in ("", "0"):
    try:
        listen()
    except Exception as error:  # never break the program being observed
        sys.stderr.write("spyglass: control socket not opened: %s\n" % error)
