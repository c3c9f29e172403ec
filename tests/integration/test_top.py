"""`spyglass top PID`: the heaviest functions of the whole program; `--once` prints one refresh
and exits (the live view redraws it every --refresh seconds)."""

import re

import pytest

import support

_ROW = re.compile(r"^\s*([\d.]+)%\s+([\d.]+)%\s+(\S+ \S+)\s+(\S+ \S+)\s+(\S.*) \((.*):(\d+)\)$")


@pytest.fixture(scope="module")
def demo_app():
    app = support.start_demo_app()
    yield app
    app.stop()


def rows_of(text):
    return [match.groups() for match in map(_ROW.match, text.splitlines()) if match]


def test_once(run_spyglass, demo_app):
    result = run_spyglass(["top", demo_app.pid, "--once", "--refresh", "0.5"])
    support.assert_success(result)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("spyglass top") and str(demo_app.pid) in lines[0], result.stdout
    assert "wall mode" in lines[0], lines[0]
    rows = rows_of(result.stdout)
    assert rows, "no function rows\n" + result.stdout
    functions = [row[4] for row in rows]
    for name in support.DEMO_FUNCTIONS[:2]:
        assert name in functions, result.stdout
    assert any(row[5].endswith("demo_app.py") for row in rows), result.stdout
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


def test_cpu_mode(run_spyglass, demo_app):
    result = run_spyglass(["top", demo_app.pid, "--once", "--refresh", "0.5", "--mode", "cpu"])
    support.assert_success(result)
    assert "cpu mode" in result.stdout.splitlines()[0], result.stdout
    functions = [row[4] for row in rows_of(result.stdout)]
    assert "heavy_computation" in functions, result.stdout


def test_bad_refresh(run_spyglass, demo_app):
    for refresh in ("0", "-1"):
        support.assert_clean_failure(
            run_spyglass(["top", demo_app.pid, "--once", "--refresh", refresh]),
            support.EXIT_USAGE)
