"""Chrome trace event JSON (Perfetto, chrome://tracing): parsed, thread names present, B/E events
balanced and nested per thread, timestamps in order."""

import json


def load(directory):
    return json.loads((directory / "sample.trace.json").read_text())


def test_balanced_and_ordered(any_profile):
    document = load(any_profile["dir"])
    events = document["traceEvents"]
    open_frames = {}
    last_ts = {}
    names = {}
    for event in events:
        assert event["ph"] in {"B", "E", "M"}, event
        tid = event["tid"]
        if event["ph"] == "M":
            if event["name"] == "thread_name":
                names[tid] = event["args"]["name"]
            continue
        assert isinstance(event["ts"], (int, float))
        assert event["ts"] >= last_ts.get(tid, 0), event
        last_ts[tid] = event["ts"]
        stack = open_frames.setdefault(tid, [])
        if event["ph"] == "B":
            assert event["name"]
            stack.append(event["name"])
        else:
            assert stack, f"E without B on thread {tid}"
            stack.pop()
    assert all(not stack for stack in open_frames.values()), "unclosed B events"
    assert len(names) == any_profile["threads"]
    assert set(open_frames) <= set(names)


def test_spans_cover_the_run(sample):
    events = load(sample["dir"])["traceEvents"]
    main_tid = next(e["tid"] for e in events
                    if e["ph"] == "M" and e["name"] == "thread_name"
                    and e["args"]["name"] == "MainThread")
    timed = [e for e in events if e["ph"] in "BE" and e["tid"] == main_tid]
    # The run is 2 s at 1 kHz: the outermost frame spans it, in microseconds.
    assert timed[0]["ph"] == "B" and timed[0]["name"] == "<module>"
    assert abs(timed[0]["ts"] - 0) < 1
    assert abs(timed[-1]["ts"] - 2_000_000) < 1
    assert any(e["ph"] == "B" and e["name"] == "heavy_computation"
               and e["args"]["file"] == "/srv/app/example.py" for e in timed)


def test_exact_calls_as_complete_events(sample):
    document = json.loads((sample["dir"] / "sample.calls.trace.json").read_text())
    events = document["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    assert len(complete) == 8
    names = {e["tid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {1001: "MainThread", 1002: "worker-1"}
    for event in complete:
        assert event["dur"] >= 0 and event["ts"] >= 0
        assert event["tid"] in names
    # Complete events of a thread nest: a call that starts inside another ends inside it.
    for tid in names:
        stack = []
        for event in sorted((e for e in complete if e["tid"] == tid),
                            key=lambda e: (e["ts"], -e["dur"])):
            while stack and event["ts"] >= stack[-1]:
                stack.pop()
            end = event["ts"] + event["dur"]
            assert not stack or end <= stack[-1] + 1e-3
            stack.append(end)
    heavy = [e for e in complete if e["name"] == "heavy_computation"]
    assert [e["ts"] for e in heavy] == [100000, 400000, 700000]
    assert all(e["dur"] == 200000 for e in heavy)
