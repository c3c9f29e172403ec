"""Scenarios run inside the interpreter under test (with spyglass on PYTHONPATH); prints one JSON
object: scenario name -> what it observed. test_scenarios.py checks each."""

import asyncio
import inspect
import json
import pickle
import sys
import threading
import time

import spyglass

out = {}


def figures(results, name):
    for function in results.to_dict()["functions"]:
        if function["name"] == name:
            return function
    raise KeyError(name)


def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


# ---- recursion: counted once, inclusive time of the outermost call only ----
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def scenario_recursion():
    with spyglass.profile(["fib"]) as p:
        begin = time.perf_counter()
        for _ in range(5):
            fib(15)
        wall = time.perf_counter() - begin
    f = figures(p.results, "fib")
    return {"calls": f["calls"], "seconds": f["seconds"], "self": f["self_seconds"], "wall": wall}


# ---- self time: minus time in chosen callees ----
def outer():
    spin(0.02)
    inner()


def inner():
    spin(0.03)


def scenario_self_time():
    with spyglass.profile(["outer", "inner"]) as p:
        begin = time.perf_counter()
        outer()
        outside = time.perf_counter() - begin
    o, i = figures(p.results, "outer"), figures(p.results, "inner")
    return {"outer": o["seconds"], "outer_self": o["self_seconds"], "inner": i["seconds"],
            "outside": outside}


# ---- generators: time while running; a call is the whole life ----
def numbers(n):
    for i in range(n):
        spin(0.001)
        yield i


def scenario_generator():
    with spyglass.profile(["numbers"]) as p:
        begin = time.perf_counter()
        gen = numbers(5)
        for _ in gen:
            time.sleep(0.01)  # suspended time is not the generator's
        outside = time.perf_counter() - begin
    f = figures(p.results, "numbers")
    return {"calls": f["calls"], "seconds": f["seconds"], "outside": outside}


# ---- coroutines: running time, plus wall time from first start to completion ----
async def sleepy():
    spin(0.005)
    await asyncio.sleep(0.05)
    spin(0.005)


def scenario_coroutine():
    with spyglass.profile(["sleepy"]) as p:
        begin = time.perf_counter()
        asyncio.run(sleepy())
        outside = time.perf_counter() - begin
    f = figures(p.results, "sleepy")
    return {"calls": f["calls"], "seconds": f["seconds"], "wall": f.get("coroutine_wall_seconds"),
            "p50": f["latency"]["p50"] if f.get("latency") else None, "outside": outside}


# ---- exceptions end a call like a return ----
def fails(n):
    spin(0.001)
    if n % 2:
        raise ValueError(n)
    return n


def catches():
    try:
        fails(1)
    except ValueError:
        pass


def scenario_exceptions():
    with spyglass.profile(["fails", "catches"]) as p:
        for n in range(10):
            try:
                fails(n)
            except ValueError:
                pass
        catches()
    return {"fails": figures(p.results, "fails")["calls"],
            "catches": figures(p.results, "catches")["calls"]}


# ---- threads started before and after start ----
def threaded_work():
    spin(0.002)


def scenario_threads():
    ready = threading.Event()
    go = threading.Event()

    def early():
        ready.set()
        go.wait()
        for _ in range(3):
            threaded_work()

    def late():
        for _ in range(4):
            threaded_work()

    before = threading.Thread(target=early)
    before.start()
    ready.wait()
    spyglass.start(["threaded_work"])
    go.set()
    after = threading.Thread(target=late, name="late-thread")
    after.start()
    before.join()
    after.join()
    threaded_work()
    results = spyglass.stop()
    f = figures(results, "threaded_work")
    return {"calls": f["calls"], "threads": len(f["threads"]),
            "per_thread_calls": sorted(t["calls"] for t in f["threads"])}


# ---- functions defined after start, patterns of every form ----
def scenario_defined_after_start():
    spyglass.start(["late_function", "Late.method", "__main__:late_qualified",
                    "scenarios.py:late_by_file", "late_glob_*",
                    "__main__.late_dotted", "scenarios:late_function"])
    namespace = {"__name__": "__main__"}
    exec(compile(
        "def late_function(): return 1\n"
        "class Late:\n"
        "    def method(self): return 2\n"
        "def late_qualified(): return 3\n"
        "def late_glob_a(): return 4\n"
        "def late_glob_b(): return 5\n"
        "def late_by_file(): return 6\n"
        "def late_dotted(): return 7\n",
        "scenarios.py", "exec"), namespace)
    for _ in range(3):
        namespace["late_function"]()
        namespace["Late"]().method()
        namespace["late_qualified"]()
        namespace["late_glob_a"]()
        namespace["late_glob_b"]()
        namespace["late_by_file"]()
        namespace["late_dotted"]()
    results = spyglass.stop()
    return {f["name"]: f["calls"] for f in results.to_dict()["functions"]}


# ---- add/remove while a chosen function is on the stack ----
guest_seen = []


def host():
    spyglass.add("guest")
    guest()
    guest_seen.append(spyglass.results()["guest"]["calls"])
    spyglass.remove("guest")
    guest()  # not timed any more
    spin(0.001)


def guest():
    spin(0.001)


def scenario_add_remove_on_stack():
    spyglass.start(["host"])
    host()
    host()
    results = spyglass.stop()
    return {"host": figures(results, "host")["calls"],
            "guest_listed": "guest" in [f["name"] for f in results.to_dict()["functions"]],
            "guest_seen": guest_seen}


def scenario_add_while_running():
    def never():
        return 0

    spyglass.start([])
    added = spyglass.add("added_later")
    for _ in range(3):
        added_later()
    results = spyglass.stop()
    return {"added": added, "calls": figures(results, "added_later")["calls"]}


def added_later():
    return 1


# ---- stop in the middle of a call ----
def stops_itself():
    spin(0.01)
    results = spyglass.stop()
    spin(0.01)
    return results


def scenario_stop_mid_call():
    spyglass.start(["stops_itself"])
    results = stops_itself()
    f = figures(results, "stops_itself")
    # Afterwards: a new session works normally.
    with spyglass.profile(["stops_itself_later"]) as p:
        stops_itself_later()
    return {"calls": f["calls"], "seconds": f["seconds"],
            "later": figures(p.results, "stops_itself_later")["calls"]}


def stops_itself_later():
    return 1


# ---- the decorator marks, never wraps ----
@spyglass.trace
def decorated(a, b=2, *args, c, **kwargs):
    """docstring"""
    return a + b + c


def scenario_decorator():
    import scenarios_helper

    original_code = decorated.__code__
    with spyglass.profile([]) as p:
        for _ in range(4):
            decorated(1, c=3)
        scenarios_helper.helper_traced(2)
    names = [f["name"] for f in p.results.to_dict()["functions"]]
    # Marked and also named: one row, under the name typed.
    with spyglass.profile(["decorated"]) as named:
        decorated(1, c=3)
    return {
        "named_rows": [(f["name"], f["calls"]) for f in named.results.to_dict()["functions"]],
        "same_code": decorated.__code__ is original_code,
        "no_wrapped": not hasattr(decorated, "__wrapped__"),
        "signature": str(inspect.signature(decorated)),
        "doc": decorated.__doc__,
        "pickled_same": pickle.loads(pickle.dumps(scenarios_helper.helper_traced))
        is scenarios_helper.helper_traced,
        "identity": scenarios_helper.helper_traced is scenarios_helper.HELPER_BEFORE,
        "names": names,
        "calls": figures(p.results, "__main__:decorated")["calls"],
    }


# ---- alongside cProfile (3.12+: different sys.monitoring tool ids; before, the eval-frame
# function and cProfile's profile hook) ----
def scenario_with_cprofile():
    if spyglass.info()["backend"].startswith("profile hook"):
        return {"skipped": "cProfile and spyglass's profile hook share the slot"}
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    with spyglass.profile(["fib"]) as p:
        fib(10)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    cprofile_calls = [v[1] for k, v in stats.items() if k[2] == "fib"]  # total calls
    return {"spyglass": figures(p.results, "fib")["calls"], "cprofile": cprofile_calls}


# ---- an internal failure disables the tracer with one message, never raising ----
def fails_inside():
    spyglass._core._simulate_failure()
    return 1


def last_internal_failure():
    spyglass.start(["fib", "fails_inside"])
    fib(5)
    value = fails_inside()
    for _ in range(1000):
        pass  # the pending uninstall runs at a safe point
    fib(5)
    running = spyglass.is_running()
    results = spyglass.results()
    spyglass.stop()
    try:
        spyglass.start(["fib"])
        restarted = True
    except RuntimeError:
        restarted = False
    return {"value": value, "running": running, "fib": figures(results, "fib")["calls"],
            "notes": results.to_dict().get("notes", []), "restarted": restarted}


# ---- the Results object: table, dict, JSON ----
def scenario_results_api():
    with spyglass.profile(["fib", "never_called"]) as p:
        fib(5)
    r = p.results
    d = r.to_dict()
    return {"table": str(r), "json_roundtrip": json.loads(r.to_json()) == d,
            "keys": sorted(d["functions"][0].keys()), "mode": d.get("mode"),
            "never": [f for f in d["functions"] if f["name"] == "never_called"][0]}


def main():
    sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
    wanted = sys.argv[1:]
    for name, function in list(globals().items()):
        if name.startswith("scenario_") and (not wanted or name[9:] in wanted):
            try:
                out[name[9:]] = function()
            except Exception as error:  # report, keep going
                import traceback

                out[name[9:]] = {"error": repr(error), "traceback": traceback.format_exc()}
            finally:
                if spyglass.is_running():
                    spyglass.stop()
    if not wanted or "internal_failure" in wanted:
        out["internal_failure"] = last_internal_failure()
    out["info"] = spyglass.info()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
