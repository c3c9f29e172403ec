"""`spyglass run -f ... -- python script.py args`: start a program, profile it to its end (or
for --duration), print the results, and exit as the program did."""

import json

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
