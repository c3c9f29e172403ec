"""`spyglass run -f ... -- python script.py args`: start a program, profile it to its end (or
for --duration), print the results, and exit as the program did."""

import json
import os
import re
import subprocess
import time

import support

SCRIPT = """
import sys, time

def work(seconds):
    end = time.monotonic() + seconds
    total = 0
    while time.monotonic() < end:
        total += 1
    return total

def pause(seconds):
    time.sleep(seconds)

work({work})
pause({pause})
print("finished", flush=True)
sys.exit({code})
"""


def write_script(tmp_path, work=0.6, pause=0.3, code=0):
    path = tmp_path / "program.py"
    path.write_text(SCRIPT.format(work=work, pause=pause, code=code))
    return path


def run(run_spyglass, script, *options, timeout=60):
    return run_spyglass(["run", "-f", "work", "pause"] + list(options) +
                        ["--", support.runner_python(), script], timeout=timeout)


def test_profiles_to_the_end(run_spyglass, tmp_path):
    result = run(run_spyglass, write_script(tmp_path), "--format", "json")
    support.assert_success(result)
    # The program's own output comes first (it shares stdout), then the results.
    assert result.stdout.startswith("finished"), result.describe()
    document = support.json_document(result.stdout)
    assert document["target_exited"] is True
    rows = support.function_rows(document)
    assert abs(rows["work"]["seconds"] - 0.6) <= rows["work"]["error_seconds"] + 0.05, rows
    assert abs(rows["pause"]["seconds"] - 0.3) <= rows["pause"]["error_seconds"] + 0.05, rows


def test_table_and_output_file(run_spyglass, tmp_path):
    out = tmp_path / "results.json"
    result = run(run_spyglass, write_script(tmp_path, work=0.3, pause=0.1), "-o", out)
    support.assert_success(result)
    assert "wrote %s" % out in result.stderr, result.describe()
    rows = support.function_rows(json.loads(out.read_text()))
    assert rows["work"]["samples"] > 0 and rows["pause"]["samples"] > 0, rows


def test_exit_code_of_the_program(run_spyglass, tmp_path):
    result = run(run_spyglass, write_script(tmp_path, work=0.2, pause=0.05, code=3))
    support.assert_no_crash(result)
    assert result.returncode == 3, result.describe()
    assert "work" in result.stdout, "the results are printed all the same\n" + result.describe()
    assert "status 3" in result.stderr, result.describe()


def test_duration_shorter_than_the_program(run_spyglass, tmp_path):
    """Profiling stops after --duration; spyglass then waits for the program, as a shell would,
    and prints the results collected up to then."""
    result = run(run_spyglass, write_script(tmp_path, work=1.5, pause=1.0), "--duration", "1",
                 "--format", "json")
    support.assert_success(result)
    assert result.seconds >= 2.4, "spyglass must wait for the program\n" + result.describe()
    document = support.json_document(result.stdout)
    assert document["duration_seconds"] < 1.5, document["duration_seconds"]
    assert document["target_exited"] is False
    rows = support.function_rows(document)
    # Python's start may take most of the second on a loaded machine: only `pause`, which comes
    # after 1.5 s of work, is sure not to have been seen.
    assert not rows["pause"]["has_data"], rows
    assert "finished" in result.stdout


def test_program_that_cannot_start(run_spyglass, tmp_path):
    result = run_spyglass(["run", "-f", "work", "--", str(tmp_path / "no-such-program")])
    support.assert_no_crash(result)
    assert result.returncode != 0, result.describe()
    assert result.stderr.strip(), result.describe()
    assert len(result.stderr.strip().splitlines()) <= 2, result.describe()


def test_program_that_is_not_python(run_spyglass):
    result = run_spyglass(["run", "-f", "work", "--", "sleep", "0.5"], timeout=60)
    line = support.assert_clean_failure(result, support.EXIT_NO_SUCH_PROCESS)
    assert "Python" in line or "exited" in line, line


def test_nothing_to_run(run_spyglass):
    support.assert_clean_failure(run_spyglass(["run", "-f", "work"]), support.EXIT_USAGE)


def test_program_options_after_a_function_list(run_spyglass, tmp_path):
    """`-f a b -- python x.py --flag`: the "--" right after the function list ends spyglass's
    options; the program's own options are the program's (CLI11 alone took them for ours)."""
    script = tmp_path / "flags.py"
    # It lives a second: long enough for spyglass to find its interpreter (slow under ASan).
    script.write_text("import sys, time\n"
                      "def work():\n"
                      "    print('args', sys.argv[1:], flush=True)\n"
                      "    time.sleep(1.0)\n"
                      "work()\n")
    result = run_spyglass(["run", "-f", "work", "--", support.runner_python(), str(script),
                           "--seconds", "1", "-f", "x"], timeout=60)
    assert result.returncode == 0, result.describe()
    assert "args ['--seconds', '1', '-f', 'x']" in result.stdout, result.describe()


def test_double_dash_outside_run_is_refused(run_spyglass):
    support.assert_clean_failure(run_spyglass(["record", "-p", "1", "--", "x"]),
                                 support.EXIT_USAGE)


def test_program_that_is_not_python_says_what_it_waits_for(spyglass_bin):
    """Before: 30 s of silence at 60 % of a core, then a failure. Now a line within a second
    says what spyglass waits for, and how to profile a Python program some launcher starts."""
    process = subprocess.Popen([spyglass_bin, "run", "-f", "work", "--", "sleep", "5"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = time.monotonic()
        line = process.stderr.readline()
        waited = time.monotonic() - started
        assert re.match(r"spyglass: waiting for Python in process \d+ \(sleep\) or a process it "
                        r"starts: .*; Ctrl-C to give up\. .*spyglass record -p PID", line), line
        assert waited < 15, "said early (within a second on a quiet machine)"
        # Past the first two seconds (when it looks often, not to miss a program's start), it
        # looks again 20 times a second at most: far from a spinning core.
        time.sleep(max(0.0, 2.3 - (time.monotonic() - started)))
        cpu_before = _cpu_seconds(process.pid)
        time.sleep(1.0)
        assert _cpu_seconds(process.pid) - cpu_before < 0.5
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == support.EXIT_NO_SUCH_PROCESS, err
    assert "the program exited before a Python interpreter could be read" in err, err


def _cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_shell_wrapper_is_followed_to_its_python_child(run_spyglass, tmp_path):
    """A wrapper that starts Python as its child (a shell script, `sh -c "...; ..."`): the first
    Python process below it is profiled, and spyglass says so."""
    script = write_script(tmp_path, work=0.8, pause=0.2)
    wrapper = tmp_path / "launch.sh"
    wrapper.write_text("#!/bin/sh\nsleep 0.3\n\"%s\" \"%s\"\nstatus=$?\necho wrapper done\n"
                       "exit $status\n" % (support.runner_python(), script))
    wrapper.chmod(0o755)
    result = run_spyglass(["run", "-f", "work", "pause", "--format", "json", "--", wrapper],
                          timeout=60)
    support.assert_success(result)
    assert re.search(r"spyglass: process \d+ \(launch\.sh\) started Python as process \d+: "
                     r"profiling that one", result.stderr), result.describe()
    document = support.json_document(result.stdout)
    rows = support.function_rows(document)
    assert rows["work"]["samples"] > 0 and rows["pause"]["samples"] > 0, rows
    assert "wrapper done" in result.stdout


def test_start_line(run_spyglass, tmp_path):
    result = run(run_spyglass, write_script(tmp_path, work=0.2, pause=0.05))
    support.assert_success(result)
    assert re.search(r"spyglass: profiling process \d+ \(Python 3\.\d+\.\d+\) at 1000 Hz, wall "
                     r"mode, 2 functions, until it exits \(Ctrl-C to stop earlier\)",
                     result.stderr), result.describe()
