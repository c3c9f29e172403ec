"""`make demo`: examples/demo.py starts the bundled example program, times three of its
functions with `spyglass record` and prints the table: the first thing a new user sees."""

import os
import subprocess
import sys

import support

DEMO = support.REPO_ROOT / "examples" / "demo.py"


def test_make_demo_driver(spyglass_bin):
    completed = subprocess.run(
        [sys.executable, str(DEMO), "--spyglass", spyglass_bin, "--python", sys.executable,
         "--duration", "2"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, timeout=120, env=support.clean_environment())
    assert completed.returncode == 0, completed.stdout + completed.stderr
    output = completed.stdout
    # The commands shown are ones the reader can type: the binary's real path (build/spyglass
    # after `make demo`), not a `spyglass` that is not installed.
    shown = os.path.relpath(spyglass_bin)
    shown = spyglass_bin if shown.startswith("..") else shown
    assert "$ %s record -p" % shown in output, output
    assert "`%s attach PID`" % shown in output, output
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│|").split("│" if "│" in line else "|")]
        if len(cells) >= 6 and cells[0] in support.DEMO_FUNCTIONS:
            rows[cells[0]] = cells
    assert set(rows) == set(support.DEMO_FUNCTIONS), output
    for name, cells in rows.items():
        assert cells[1] != "no data", output
        assert int(cells[-1].replace(",", "")) > 0, output
    assert "Traceback" not in completed.stderr, completed.stderr


def test_demo_fails_clearly_without_spyglass(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(DEMO), "--spyglass", str(tmp_path / "missing")],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        timeout=60)
    assert completed.returncode != 0
    assert completed.stderr.startswith("demo: ") and "make build" in completed.stderr


def test_demo_app_stops_after_its_time():
    app = support.start_demo_app("--seconds", "0.5")
    try:
        assert app.wait(timeout=30) == 0
        assert app.read_line(5).startswith("done:")
    finally:
        app.stop()
