"""`spyglass top PID`: the heaviest functions of the whole program; `--once` prints one refresh
and exits (the live view redraws it every --refresh seconds). Like py-spy's, it counts threads
on a CPU unless --idle is given; chosen functions (-f) come first; keys q, s and ?."""

import os
import re

import pytest

import support

_ROW = re.compile(r"^\s*([\d.]+)%\s+([\d.]+)%\s+(\S+ \S+)\s+(\S+ \S+)\s+(\S.*) \((.*):(\d+)\)$")
_CHOSEN = re.compile(r"^\s*([\d.]+)%\s+([\d.]+)%\s+(\S+ \S+)\s+(\S+ \S+)\s+\* (\S+)")


@pytest.fixture(scope="module")
def demo_app():
    app = support.start_demo_app()
    yield app
    app.stop()


def rows_of(text):
    return [match.groups() for match in map(_ROW.match, text.splitlines()) if match]


def test_once(run_spyglass, demo_app):
    result = run_spyglass(["top", demo_app.pid, "--once", "--refresh", "0.5", "--idle"])
    support.assert_success(result)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("spyglass top") and str(demo_app.pid) in lines[0], result.stdout
    assert "wall mode" in lines[0], lines[0]
    # The header: threads (the demo has two), the GIL holder, how it is sorted.
    assert re.match(r"threads: 2 \(\d on a CPU now\) · GIL: .* · \d+ profiled · sorted by own "
                    r"time", lines[1]), lines[1]
    rows = rows_of(result.stdout)
    assert rows, "no function rows\n" + result.stdout
    functions = [row[4] for row in rows]
    for name in support.DEMO_FUNCTIONS[:2]:
        assert name in functions, result.stdout
    # Short file names: the file and its folder.
    assert any(row[5] == "examples/demo_app.py" for row in rows), result.stdout
    assert all(row[5].count("/") <= 1 for row in rows), result.stdout
    # Heaviest own time first, like top.
    own = [float(row[0]) for row in rows]
    assert own == sorted(own, reverse=True), result.stdout
    for row in rows:
        assert float(row[0]) <= float(row[1]) + 0.05, row  # own never exceeds total
    assert demo_app.proc.poll() is None


def test_rows_and_ascii(run_spyglass, demo_app):
    result = run_spyglass(["top", demo_app.pid, "--once", "--refresh", "0.3", "-n", "3",
                           "--ascii"])
    support.assert_success(result)
    assert len(rows_of(result.stdout)) == 3, result.stdout
    assert result.stdout.isascii(), result.stdout


def test_idle_threads_hidden_by_default(run_spyglass, demo_app):
    """py-spy's habit: what sleeps (the echo server's accept, time.sleep) is not counted unless
    --idle is given. Before, top counted every thread all the time (wall mode)."""
    result = run_spyglass(["top", demo_app.pid, "--once", "--refresh", "0.5"])
    support.assert_success(result)
    lines = result.stdout.splitlines()
    assert "cpu mode" in lines[0], result.stdout
    assert "idle threads not counted (--idle counts them)" in lines[1], lines[1]
    functions = [row[4] for row in rows_of(result.stdout)]
    assert "heavy_computation" in functions, result.stdout

    def accept_share(text):  # the echo server waits in socket.accept nearly all the time
        shares = [float(row[1]) for row in rows_of(text) if row[4] == "socket.accept"]
        return shares[0] if shares else 0.0

    assert accept_share(result.stdout) < 20, "the sleeping echo server is hidden\n" + \
        result.stdout
    idle = run_spyglass(["top", demo_app.pid, "--once", "--refresh", "0.5", "--idle"])
    support.assert_success(idle)
    assert accept_share(idle.stdout) > 50, idle.stdout
    # A mode named is honoured as it is.
    gil = run_spyglass(["top", demo_app.pid, "--once", "--refresh", "0.3", "--mode", "gil"])
    support.assert_success(gil)
    assert "gil mode" in gil.stdout.splitlines()[0], gil.stdout


def test_chosen_functions_first(run_spyglass, demo_app):
    """Before, -f was accepted and ignored."""
    result = run_spyglass(["top", demo_app.pid, "--once", "--refresh", "0.5", "--idle", "-f",
                           "network_request", "nothing_like_it"])
    support.assert_success(result)
    lines = result.stdout.splitlines()
    chosen = [i for i, line in enumerate(lines) if _CHOSEN.match(line)]
    assert [_CHOSEN.match(lines[i]).group(5) for i in chosen] == ["network_request",
                                                                   "nothing_like_it"], lines
    assert "(no data)" in lines[chosen[1]], lines[chosen[1]]
    first_row = next(i for i, line in enumerate(lines) if _ROW.match(line))
    assert chosen[0] < first_row, result.stdout


def test_per_thread(run_spyglass, demo_app):
    result = run_spyglass(["top", demo_app.pid, "--once", "--refresh", "0.5", "--idle",
                           "--per-thread"])
    support.assert_success(result)
    heads = re.findall(r"^thread (\d+)", result.stdout, re.M)
    assert len(heads) == 2, result.stdout
    assert str(demo_app.pid) in heads, "the main thread's id is the process id"


def test_keys(spyglass_bin, demo_app):
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(spyglass_bin, ["top", str(demo_app.pid), "--refresh", "0.2"],
                          env=dict(os.environ, LANG="C.UTF-8", TERM="xterm"), encoding="utf-8",
                          timeout=30, dimensions=(50, 200))
    child.expect(r"sorted by own time")
    child.expect(r"keys: q quit, s sort, \? help")
    child.send("s")
    child.expect(r"sorted by total time")
    child.send("s")
    child.expect(r"sorted by name")
    child.send("?")
    child.expect(r"keys: q quit · s sort by own time, total time or name · \? this help")
    child.send("q")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_bad_refresh(run_spyglass, demo_app):
    for refresh in ("0", "-1"):
        support.assert_clean_failure(
            run_spyglass(["top", demo_app.pid, "--once", "--refresh", refresh]),
            support.EXIT_USAGE)
