"""Where results go (issue 17): output names and formats checked before sampling, a static SVG
flame graph for `-o flame.svg`, binary formats kept off terminals, a recording never lost when
its file cannot be written, and the lines `record` prints while it works."""

import json
import os
import re
import signal
import subprocess
import time
import xml.etree.ElementTree as ElementTree

import pytest

import support

pexpect = pytest.importorskip("pexpect")

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def demo_app():
    app = support.start_demo_app()
    yield app
    app.stop()


def record(run_spyglass, pid, *options, timeout=60):
    return run_spyglass(["record", "-p", pid, "-f", "heavy_computation", "disk_io"] +
                        list(options), timeout=timeout)


def test_svg_flame_graph(run_spyglass, demo_app, tmp_path):
    """Before: the text table went into flame.svg, exit 0."""
    path = tmp_path / "flame.svg"
    result = record(run_spyglass, demo_app.pid, "-d", "1", "-o", path)
    support.assert_success(result)
    root = ElementTree.parse(str(path)).getroot()  # well-formed XML
    assert root.tag == SVG + "svg", root.tag
    frames = {}
    for group in root.iter(SVG + "g"):
        title = group.find(SVG + "title").text
        rect = group.find(SVG + "rect")
        frames[title.split(" — ")[0].split(" (")[0]] = (title, rect.get("fill"),
                                                        float(rect.get("width")))
    assert frames["heavy_computation"][1] == "#3b7ddd", "chosen functions are blue"
    assert frames["handle_one_job"][1] != "#3b7ddd", frames["handle_one_job"]
    assert re.search(r"— [\d.]+ (s|ms) \([\d.]+%\), \d+ samples", frames["heavy_computation"][0])
    assert frames["all"][2] > frames["heavy_computation"][2] > 0


def test_format_from_the_name(run_spyglass, demo_app, tmp_path):
    table = tmp_path / "results.txt"
    support.assert_success(record(run_spyglass, demo_app.pid, "-d", "0.3", "-o", table))
    assert "Samples" in table.read_text(), "a .txt file is the table (was: collapsed stacks)"
    data = tmp_path / "results.json"
    support.assert_success(record(run_spyglass, demo_app.pid, "-d", "0.3", "-o", data))
    assert support.function_rows(json.loads(data.read_text()))["heavy_computation"]


def test_unknown_name_is_refused_before_sampling(run_spyglass, demo_app, tmp_path):
    path = tmp_path / "flame.png"
    result = record(run_spyglass, demo_app.pid, "-d", "30", "-o", path)
    line = support.assert_clean_failure(result, support.EXIT_USAGE)
    assert "cannot tell the format of" in line and ".svg" in line and "--format" in line, line
    assert result.seconds < 20, "refused before the 30 s of sampling"
    assert not path.exists()
    # With --format the name is the user's business.
    result = record(run_spyglass, demo_app.pid, "-d", "0.3", "-o", path, "--format", "json")
    support.assert_success(result)
    json.loads(path.read_text())


def test_unwritable_output_is_refused_before_sampling(run_spyglass, demo_app, tmp_path):
    """Before: `-o /unwritable/x.html -d 3` sampled 3 s, then said it could not write."""
    (tmp_path / "folder.html").mkdir()
    for path, words in ((tmp_path / "no-such-folder" / "x.html", "does not exist"),
                        (tmp_path / "folder.html", "is a folder")):
        result = record(run_spyglass, demo_app.pid, "-d", "30", "-o", path)
        line = support.assert_clean_failure(result, 8)
        assert words in line and str(path) in line, line
        assert result.seconds < 20, "refused before the 30 s of sampling"


def test_failed_write_keeps_the_recording(spyglass_bin, demo_app, tmp_path):
    """The folder vanishes while sampling: the table still comes to the terminal and the data
    is saved in TMPDIR, and the message says where."""
    folder = tmp_path / "out"
    folder.mkdir()
    saved = tmp_path / "tmp"
    saved.mkdir()
    process = subprocess.Popen(
        [spyglass_bin, "record", "-p", str(demo_app.pid), "-f", "heavy_computation",
         "-o", str(folder / "flame.html")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=dict(os.environ, TMPDIR=str(saved)))
    try:
        first = process.stderr.readline()
        assert "recording process %d" % demo_app.pid in first, first
        folder.rmdir()
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 8, (out, err)
    assert "heavy_computation" in out and "Samples" in out, "the table is printed\n" + out
    match = re.search(r"cannot write .*flame\.html.*; the flamegraph data is saved in (\S+) "
                      r"instead", err)
    assert match, err
    kept = match.group(1)
    assert kept.startswith(str(saved)), kept
    assert "spyglass-data" in open(kept).read(), "the flame graph itself was kept"


def test_binary_format_not_written_to_a_terminal(spyglass_bin, demo_app, tmp_path):
    child = pexpect.spawn(spyglass_bin, ["record", "-p", str(demo_app.pid), "-d", "30",
                                         "--format", "pprof"], timeout=30)
    child.expect(r"spyglass: pprof is binary and stdout is a terminal: write it to a file with "
                 r"-o FILE, or redirect stdout")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == support.EXIT_USAGE
    # Redirected, it is written.
    out = subprocess.run([spyglass_bin, "record", "-p", str(demo_app.pid), "-d", "0.3",
                          "--format", "pprof"], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout[:2] == b"\x1f\x8b", "gzipped profile.proto on stdout"


def test_start_line_and_ctrl_c(spyglass_bin, demo_app):
    """`record` without -d: one line at start (what, PID, Python, rate, how to stop), then the
    results at Ctrl-C."""
    process = subprocess.Popen([spyglass_bin, "record", str(demo_app.pid), "-f",
                                "heavy_computation"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        first = process.stderr.readline()
        assert re.match(r"spyglass: recording process %d \(Python 3\.\d+\.\d+\) at 1000 Hz, "
                        r"wall mode, 1 function, until Ctrl-C" % demo_app.pid, first), first
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "heavy_computation" in out, out


def test_live_line_on_a_terminal(spyglass_bin, demo_app):
    child = pexpect.spawn(spyglass_bin, ["record", "-p", str(demo_app.pid), "-f",
                                         "heavy_computation"], timeout=30,
                          env=dict(os.environ, LANG="C.UTF-8"), encoding="utf-8",
                          dimensions=(40, 200))
    child.expect(r"recording process %d .* until Ctrl-C" % demo_app.pid)
    child.expect(r"\r  (\d+\.\d) s, (\d+) samples \(\d+ late, \d+ missed\)")
    child.expect(r"\r  (\d+\.\d) s, (\d+) samples")  # redrawn in place
    child.sendintr()
    child.expect(r"heavy_computation")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_missed_samples_are_explained(run_spyglass, demo_app):
    """At the highest rate samples are missed: the first table that shows them says what
    "late" and "missed" mean."""
    result = record(run_spyglass, demo_app.pid, "-d", "0.5", "--rate", "1000000")
    support.assert_success(result)
    # The header: the lines above the table (one, or several on a narrow terminal).
    lines = result.stdout.splitlines()
    header = " ".join(lines[:next(i for i, line in enumerate(lines) if line[:1] in "┌+")])
    missed = int(re.search(r"([\d,]+) missed", header).group(1).replace(",", ""))
    assert missed > 0, header
    assert "late: samples taken over half a period after their time; missed: sampling times " \
        "skipped" in " ".join(result.stdout.split()), result.stdout


def test_pid_as_option_or_positional(run_spyglass, demo_app):
    for args in (["record", demo_app.pid, "-d", "0.2"], ["record", "--pid", demo_app.pid, "-d",
                                                        "0.2"],
                 ["dump", "-p", demo_app.pid], ["dump", "--pid", demo_app.pid],
                 ["top", "-p", demo_app.pid, "--once", "--refresh", "0.2"]):
        support.assert_success(run_spyglass(args))
    line = support.assert_clean_failure(run_spyglass(["record", "-d", "0.2"]), support.EXIT_USAGE)
    assert "PID or -p PID" in line, line
    line = support.assert_clean_failure(run_spyglass(["record", demo_app.pid, "-p",
                                                      demo_app.pid]), support.EXIT_USAGE)
