"""`spyglass attach PID`: the interactive prompt, driven through a real pseudo-terminal
(pexpect), and through a pipe (no terminal: plain lines, no editing). The target is the bundled
example program (examples/demo_app.py)."""

import json
import os
import re
import subprocess
import time

import pytest

import support

pexpect = pytest.importorskip("pexpect")

PROMPT = "spyglass> "
TIMEOUT = 30


@pytest.fixture
def demo_app():
    apps = []

    def start(*args):
        app = support.start_demo_app(*args)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


@pytest.fixture
def attach(spyglass_bin, tmp_path):
    """attach(pid, *options) -> a pexpect child at its first prompt. HOME is a temporary folder
    (the history file lives there)."""
    children = []

    def spawn(pid, *options):
        env = dict(os.environ, HOME=str(tmp_path), TERM="xterm", LANG="C.UTF-8",
                   LC_ALL="C.UTF-8")
        child = pexpect.spawn(spyglass_bin, ["attach", str(pid)] + [str(o) for o in options],
                              env=env, encoding="utf-8", codec_errors="replace",
                              timeout=TIMEOUT, dimensions=(50, 200))
        children.append(child)
        child.expect(r"Attached to process %d \(Python 3\.\d+" % pid)
        child.expect_exact(PROMPT)
        return child

    yield spawn
    for child in children:
        if child.isalive():
            child.terminate(force=True)


def command(child, line, *expected):
    """Sends a line, expects each pattern in turn and then the next prompt; returns everything
    printed before the prompt, the matched patterns included (a check on the returned text must
    not depend on whether the line it looks for was consumed by an expected pattern)."""
    child.sendline(line)
    printed = []
    for pattern in expected:
        child.expect(pattern)
        printed += [child.before, child.after]
    child.expect_exact(PROMPT)
    return "".join(printed) + child.before


def test_session(attach, demo_app, tmp_path):
    app = demo_app()
    child = attach(app.pid, "-f", "heavy_computation")
    command(child, "status", r"state:\s+stopped", r"functions:\s+heavy_computation")
    command(child, "help", r"start", r"results", r"exit")
    command(child, "start", r"profiling at 1000 Hz \(wall mode\)")
    command(child, "add disk_io network_request",
            r"chosen: heavy_computation, disk_io, network_request")
    time.sleep(0.5)
    # Functions seen so far exist now: a pattern matching none of them is warned about, and
    # stays listed.
    command(child, "add no_such_function_here", r"warning: no function seen so far matches "
            r"'no_such_function_here'", r"chosen: .*no_such_function_here")
    command(child, "remove network_request",
            r"chosen: heavy_computation, disk_io, no_such_function_here")
    command(child, "remove never_chosen", r"warning: 'never_chosen' was not chosen")
    # Intermediate results while running.
    table = command(child, "results", r"Samples", r"heavy_computation")
    assert "network_request" not in table
    assert re.search(r"no_such_function_here\s*│\s*no data", table), table
    output = command(child, "results --json")
    document = support.json_document(output[output.index("{"):].replace("\r\n", "\n"))
    rows = support.function_rows(document)
    assert rows["heavy_computation"]["samples"] > 0 and document["samples"] > 100, rows
    assert rows["no_such_function_here"]["has_data"] is False
    command(child, "rate 200", r"rate set to 200 Hz")
    command(child, "rate", r"rate 200 Hz requested, [\d.]+ Hz achieved")
    command(child, "status", r"state:\s+profiling", r"rate:\s+200 Hz requested",
            r"samples:\s+\d+ over", r"late:\s+\d+")
    command(child, "functions heavy*", r"heavy_computation \(.*demo_app\.py:\d+\)")
    command(child, "functions", r"total\s+self\s+samples", r"heavy_computation")
    threads = command(child, "threads", r"\d+\s+\S+\s+[RSD]")
    # Each thread with its innermost frame: the main thread runs the demo's job, whose
    # innermost frame may also be one of the library's (socket.py's getaddrinfo under
    # network_request, once in CI), so any frame with its file and line will do.
    assert re.search(r"MainThread\s+[RSD].*\S+ \(\S+:\d+\)", threads), threads
    assert "socket.accept" in threads or "serve" in threads, threads  # the echo server
    child.sendline("stop")
    child.expect(r"stopped: (\d+) samples over [\d.]+ s")
    samples_at_stop = int(child.match.group(1))
    child.expect_exact(PROMPT)
    command(child, "status", r"state:\s+stopped")
    command(child, "results", r"heavy_computation")
    command(child, "mode", r"mode wall")
    # Samples of another mode are never mixed in: the wall-mode run is kept apart.
    command(child, "mode cpu", r"mode set to cpu; the %d samples so far are kept apart" %
            samples_at_stop, r"results start afresh")
    command(child, "start", r"profiling at 200 Hz \(cpu mode\)")
    time.sleep(0.3)
    child.sendline("stop")
    child.expect(r"stopped: (\d+) samples")
    cpu_samples = int(child.match.group(1))
    child.expect_exact(PROMPT)
    command(child, "results", r"mode cpu", r"kept apart: %d samples over [\d.]+ s in wall mode "
            r"at 200 Hz" % samples_at_stop)
    # Back to wall mode: its results go on where they were.
    command(child, "mode wall", r"the %d samples so far are kept apart" % cpu_samples,
            r"results go on from the %d samples" % samples_at_stop)
    command(child, "status", r"samples:\s+%d over" % samples_at_stop)
    command(child, "reset", r"forgotten")
    command(child, "status", r"samples:\s+0 over")
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert app.proc.poll() is None, "the target must go on running after attach"
    assert (tmp_path / ".spyglass_history").is_file(), "the history is kept in ~"


def test_errors_keep_the_prompt(attach, demo_app):
    app = demo_app()
    child = attach(app.pid)
    command(child, "frobnicate", r"error: unknown command 'frobnicate'; type 'help'")
    for bad in ("0", "-1", "1e9", "abc", "nan"):
        command(child, "rate " + bad, r"error: .*(rate|number|Hz)")
    command(child, "interval 0", r"error: .*interval")
    command(child, "mode kernel", r"error: unknown mode 'kernel'")
    command(child, "add", r"error: add: name at least one function")
    command(child, "add a:", r"error: 'a:' is not a function pattern")
    command(child, "watch abc", r"error: 'abc' is not a number")
    command(child, "functions", r"no functions seen yet")
    command(child, "stop", r"not running")
    command(child, "start", r"no functions chosen yet")
    command(child, "start", r"already running")
    command(child, "status", r"state:\s+profiling")
    child.sendline("exit")
    child.expect("Final results")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_watch_returns_on_enter(attach, demo_app):
    app = demo_app()
    child = attach(app.pid, "-f", "heavy_computation")
    command(child, "start", r"profiling")
    child.sendline("watch 0.2")
    child.expect(r"heavy_computation")
    child.expect(r"press Enter")
    child.expect(r"press Enter")  # it refreshes
    child.sendline("")
    child.expect_exact(PROMPT)
    command(child, "status", r"state:\s+profiling")
    child.sendline("exit")
    child.expect(pexpect.EOF)


def test_target_exits_under_the_prompt(attach, demo_app):
    app = demo_app("--seconds", "2")
    child = attach(app.pid, "-f", "heavy_computation", "disk_io", "nothing_of_that_name")
    command(child, "start", r"profiling at")
    child.expect(r"Process %d has exited\. Final results:" % app.pid, timeout=60)
    child.expect(r"heavy_computation")
    child.expect(r"nothing_of_that_name\s*│\s*no data")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before


def test_ctrl_c_prints_the_results(attach, demo_app):
    app = demo_app()
    child = attach(app.pid, "-f", "heavy_computation")
    command(child, "start", r"profiling at")
    time.sleep(0.5)
    child.sendintr()
    child.expect(r"Final results")
    child.expect(r"heavy_computation")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert app.proc.poll() is None


def test_end_of_input_prints_the_results(attach, demo_app):
    app = demo_app()
    child = attach(app.pid, "-f", "heavy_computation")
    command(child, "start", r"profiling at")
    time.sleep(0.3)
    child.sendeof()
    child.expect(r"Final results")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_tab_completion(attach, demo_app):
    app = demo_app()
    child = attach(app.pid)
    child.send("sta\t\t")  # a bell, then the list of both
    child.expect(r"start\s+status")
    child.sendcontrol("u")
    command(child, "start", r"profiling")
    time.sleep(0.5)
    child.send("add heavy_comp\t")  # the rest is drawn in place: check what was chosen
    time.sleep(0.3)
    child.send("\r")
    child.expect(r"chosen: heavy_computation")
    child.expect_exact(PROMPT)
    child.sendline("exit")
    child.expect(pexpect.EOF)


# --- No terminal: lines from a pipe ---------------------------------------------------------


def started_through_a_pipe(spyglass_bin, app):
    """`attach` with its input from a pipe, timing heavy_computation, told to `start`."""
    process = subprocess.Popen([spyglass_bin, "attach", str(app.pid), "-f", "heavy_computation"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdin.write("start\n")
    process.stdin.flush()
    return process


def test_commands_from_a_pipe(spyglass_bin, demo_app):
    app = demo_app()
    process = started_through_a_pipe(spyglass_bin, app)
    try:
        time.sleep(0.7)
        output, errors = process.communicate(
            "add disk_io\nfrobnicate\nrate 0\nresults --json\nstop\nstatus\nexit\n", timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, (output, errors)
    assert PROMPT not in output, "no prompt without a terminal"
    assert "Attached to process %d" % app.pid in output
    assert "profiling at 1000 Hz" in output
    assert "chosen: heavy_computation, disk_io" in output
    assert "error: unknown command 'frobnicate'" in output
    assert re.search(r"error: .*rate", output), output
    document = support.json_document(output)
    assert support.function_rows(document)["heavy_computation"]["samples"] > 0
    assert re.search(r"state:\s+stopped", output), output
    assert "Traceback" not in errors
    json.dumps(document)


def test_end_of_a_pipe(spyglass_bin, demo_app):
    """The input ends without `exit`: the final results are printed all the same."""
    app = demo_app()
    process = started_through_a_pipe(spyglass_bin, app)
    try:
        time.sleep(0.5)
        output, errors = process.communicate("", timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, (output, errors)
    assert "Final results" in output and "heavy_computation" in output, output


def test_piped_commands_after_the_target_exited(spyglass_bin, demo_app):
    """A script's `results --json` written just after the target exited is still answered,
    from the results kept (the final table alone came out when spyglass saw the exit first)."""
    app = demo_app("--seconds", "1")
    process = started_through_a_pipe(spyglass_bin, app)
    try:
        app.proc.wait(timeout=60)
        time.sleep(0.5)  # spyglass sees the exit within a sample or two
        output, errors = process.communicate("stop\nresults --json\nexit\n", timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, (output, errors)
    assert "has exited. Final results" in output, output
    document = support.json_document(output[output.index("Final results"):])
    assert any(f["name"] == "heavy_computation" and f["samples"] > 0
               for f in document["functions"]), document


# --- The earlier prototype's forms, and arguments a command does not take (issue 17) ----------


def test_prototype_forms(attach, demo_app, tmp_path):
    """`start -p PID -f a b -t 0.02`, `add -f x`, `remove -f x`, as the prototype's users type
    them; before, start ignored every argument and `add -f x` chose a function named "-f"."""
    app = demo_app()
    child = attach(app.pid)
    command(child, "start -p %d -f heavy_computation disk_io -t 0.02" % app.pid,
            r"chosen: heavy_computation, disk_io", r"profiling at 50 Hz \(wall mode\)")
    command(child, "add -f network_request", r"chosen: heavy_computation, disk_io, network_request")
    command(child, "remove -f disk_io", r"chosen: heavy_computation, network_request")
    out = command(child, "status", r"rate:\s+50 Hz requested")
    assert "-f" not in out.split("functions:")[1], out
    # Another process from inside this prompt: an error that says what to do instead.
    command(child, "start -p 1", r"error: start -p 1: this prompt is attached to process %d; "
            r"to profile process 1, leave \('exit'\) and run 'spyglass attach 1'" % app.pid)
    command(child, "stop", r"stopped: \d+ samples")
    command(child, "start --timeout 0.005", r"profiling at 200 Hz")
    child.sendline("exit")
    child.expect(r"Final results")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


UNKNOWN_ARGUMENTS = [
    ("results --ascii", r"results: unknown option '--ascii'; usage: results \[--json\] "
                        r"\[--per-thread\]"),
    ("stop now", r"stop: it takes no argument \('now'\); usage: stop"),
    ("status -v", r"status: unknown option '-v'; usage: status"),
    ("start -x 3", r"start: unknown option '-x'; usage: start \[-p PID\] \[-f FUNC\.\.\.\] "
                   r"\[-t SECONDS\]"),
    ("start -t", r"start: -t needs a value \(SECONDS\)"),
    ("add -f", r"add: -f needs at least one FUNC"),
    ("tree a b", r"tree: too many arguments \('b'\); usage: tree \[FUNC\]"),
    ("export", r"export: missing argument; usage: export \[--format FORMAT\] FILE \[FORMAT\]"),
]


def test_unknown_arguments_show_the_usage(spyglass_bin, demo_app):
    """Before, `results --ascii` ignored its argument; now every command refuses what it does
    not take, with its usage (through a pipe: one error line per command typed)."""
    app = demo_app()
    lines = [line for line, _ in UNKNOWN_ARGUMENTS]
    out = subprocess.run([spyglass_bin, "attach", str(app.pid)], input="\n".join(lines) +
                         "\nstatus\nexit\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    errors = [line for line in out.stdout.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(UNKNOWN_ARGUMENTS), out.stdout
    for error, (line, usage) in zip(errors, UNKNOWN_ARGUMENTS):
        assert re.match("error: " + usage, error), (line, error)
    assert re.search(r"state:\s+stopped", out.stdout), "nothing was started by a bad line"


def test_help_lists_every_usage(attach, demo_app):
    app = demo_app()
    child = attach(app.pid)
    out = command(child, "help")
    for usage in ("start [-p PID] [-f FUNC...] [-t SECONDS]", "add [-f FUNC...] FUNC...",
                  "results [--json] [--per-thread]", "export [--format FORMAT] FILE [FORMAT]"):
        assert usage in out, out
    child.sendline("exit")
    child.expect(pexpect.EOF)


def test_status_explains_late_and_missed_once(attach, demo_app):
    app = demo_app()
    child = attach(app.pid)
    first = command(child, "status", r"late:\s+\d+", r"missed: a sampling time")
    assert "unreadable: the target changed" in first.replace("\r\n", " ").replace("  ", " ") or \
        "unreadable:" in first, first
    second = command(child, "status", r"late:\s+\d+")
    assert "missed: a sampling time" not in second, second
    child.sendline("exit")
    child.expect(pexpect.EOF)


def test_export_formats_from_the_prompt(attach, demo_app, tmp_path):
    app = demo_app()
    child = attach(app.pid, "-f", "heavy_computation")
    command(child, "start", r"profiling")
    time.sleep(0.5)
    svg = tmp_path / "flame.svg"
    command(child, "export %s" % svg, r"wrote .*flame\.svg \(svg\)")
    assert svg.read_text().lstrip().startswith("<?xml"), svg.read_text()[:200]
    command(child, "export %s" % (tmp_path / "out.weird"),
            r"error: cannot tell the format of .*out\.weird from its name")
    assert not (tmp_path / "out.weird").exists()
    command(child, "export %s --format json" % (tmp_path / "out.weird"), r"wrote .*\(json\)")
    json.loads((tmp_path / "out.weird").read_text())
    command(child, "export %s" % (tmp_path / "table.txt"), r"wrote .*\(table\)")
    assert "heavy_computation" in (tmp_path / "table.txt").read_text()
    child.sendline("exit")
    child.expect(pexpect.EOF)


def test_attach_with_the_pid_option(spyglass_bin, demo_app):
    app = demo_app()
    for args in (["attach", "-p", str(app.pid)], ["attach", "--pid", str(app.pid)]):
        out = subprocess.run([spyglass_bin] + args, input="status\nexit\n", capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "Attached to process %d" % app.pid in out.stdout
