"""`python -m spyglass` has the spyglass command's interface and errors (issue 17): a function
list ended by an option, "--" or the script; one line `spyglass: ...` and exit status 2 for a
mistake, never a traceback; --version; the command's config keys, unknown ones warned about."""

import json
import os
import re

import pytest

from conftest import build_package, run_python
from test_socket import target  # noqa: F401  (a program listening on its control socket)

SCRIPT = """
def a(n):
    return n + 1
def b(n):
    return a(n) * 2
for i in range(5):
    b(i)
print("script ran", flush=True)
"""


@pytest.fixture(scope="module")
def package():
    return build_package("3.12")


def spyglass_module(package, cwd, *args):
    python, path = package
    old = os.getcwd()
    os.chdir(str(cwd))
    try:
        return run_python(python, path, ["-m", "spyglass"] + [str(a) for a in args], timeout=60)
    finally:
        os.chdir(old)


def one_line_error(proc, code=2):
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spyglass: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def calls(proc):
    return {f["name"]: f["calls"] for f in json.loads(proc.stdout[proc.stdout.index("{"):])
            ["functions"]}


def test_function_list_then_script(package, tmp_path):
    """Before: `-f a b script.py` took b for the script."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    for args in (["-f", "a", "b", script], ["-f", "a", "b", "--", script],
                 ["-f", "a", "-f", "b", script], ["--function=a", "-f", "b", "--format",
                                                  "json", script]):
        proc = spyglass_module(package, tmp_path, "run", "--format", "json", *args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "script ran" in proc.stdout
        assert calls(proc) == {"a": 5, "b": 5}, (args, proc.stdout)


def test_errors_are_one_line(package, tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    line = one_line_error(spyglass_module(package, tmp_path, "run", "-f", "a", "b"))
    assert "give the script" in line and "--help" in line, line
    line = one_line_error(spyglass_module(package, tmp_path, "run", "-f", "a", "--",
                                          tmp_path / "missing.py"))
    assert "cannot run" in line and "missing.py" in line, line
    line = one_line_error(spyglass_module(package, tmp_path, "run", "--bogus", script))
    assert "unknown option --bogus" in line, line
    line = one_line_error(spyglass_module(package, tmp_path, "run", "--format", "flamegraph",
                                          script))
    assert "unknown format 'flamegraph'" in line, line
    line = one_line_error(spyglass_module(package, tmp_path, "run", "-o", tmp_path / "x.svg",
                                          script))
    assert "cannot tell the format" in line, line
    line = one_line_error(spyglass_module(package, tmp_path, "frobnicate"))
    assert "unknown command 'frobnicate'" in line, line
    broken = tmp_path / "broken.toml"
    broken.write_text('functions = ["a"\n')
    line = one_line_error(spyglass_module(package, tmp_path, "run", "--config", broken, script))
    assert "broken.toml" in line, line
    line = one_line_error(spyglass_module(package, tmp_path, "run", "--config",
                                          tmp_path / "none.toml", script))
    assert "none.toml does not exist" in line, line
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('functions = "a"\n')
    line = one_line_error(spyglass_module(package, tmp_path, "run", "--config", wrong, script))
    assert "'functions' has the wrong type" in line, line
    line = one_line_error(spyglass_module(package, tmp_path, "run", "-o",
                                          tmp_path / "nowhere" / "x.json", script), code=8)
    assert "does not exist" in line, line


def test_version_matches_the_command(package, tmp_path, spyglass_command):
    proc = spyglass_module(package, tmp_path, "--version")
    assert proc.returncode == 0 and re.match(r"spyglass \d+\.\d+\.\d+\n$", proc.stdout), proc
    if spyglass_command:
        import subprocess
        command = subprocess.run([spyglass_command, "--version"], capture_output=True, text=True,
                                 timeout=30)
        assert command.stdout == proc.stdout


def test_unknown_config_key_is_warned(package, tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    (tmp_path / "spyglass.toml").write_text('functoins = ["a"]\nformat = "json"\n'
                                            'functions = ["b"]\n')
    proc = spyglass_module(package, tmp_path, "run", script)
    assert proc.returncode == 0, proc.stderr
    assert "spyglass: warning: spyglass.toml: unknown key 'functoins' (did you mean " \
        "'functions'?); it is ignored" in proc.stderr, proc.stderr
    assert calls(proc) == {"b": 5}


def test_other_commands_are_the_binary(package, tmp_path, spyglass_command):
    """`python -m spyglass dump PID` runs the spyglass command itself (found beside this
    interpreter, else on PATH)."""
    if not spyglass_command:
        pytest.skip("no spyglass command built")
    python, path = package
    env = dict(os.environ, PATH=os.path.dirname(spyglass_command) + os.pathsep +
               os.environ.get("PATH", ""))
    import shutil
    import subprocess
    link = tmp_path / "bin" / "spyglass"
    link.parent.mkdir()
    shutil.copy(spyglass_command, link)
    env["PATH"] = str(link.parent) + os.pathsep + os.environ.get("PATH", "")
    env["PYTHONPATH"] = path
    proc = subprocess.run([python, "-m", "spyglass", "record", "-d", "0.1"], env=env,
                          capture_output=True, text=True, timeout=60)
    line = one_line_error(proc)
    assert "PID or -p PID" in line, line  # the command's own words


@pytest.fixture(scope="module")
def spyglass_command():
    from conftest import REPO
    path = os.environ.get("SPYGLASS_BIN") or os.path.join(REPO, "build", "spyglass")
    return path if os.path.exists(path) else None


def test_exact_prompt_shares_the_command_table(target, spyglass_command):  # noqa: F811
    """`attach --exact` parses like the sampling prompt: the prototype's -f and -p forms, and
    arguments a command does not take refused with its usage."""
    import subprocess
    if not spyglass_command:
        pytest.skip("no spyglass command built")
    lines = ["start -p %d -f work" % target["pid"], "add -f other", "results --bogus",
             "start -p 1", "stop now", "remove -f other", "help", "exit"]
    out = subprocess.run([spyglass_command, "attach", str(target["pid"]), "--exact"],
                         input="".join(line + "\n" for line in lines), env=target["env"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert 'start: chosen ["work"]' in out.stdout, out.stdout
    assert 'add: chosen ["work","other"]' in out.stdout, out.stdout
    assert "error: results: unknown option '--bogus'; usage: results [--json]" in out.stdout
    assert "error: start -p 1: this prompt is attached to process %d" % target["pid"] in \
        out.stdout
    assert "error: stop: it takes no argument ('now'); usage: stop [--json]" in out.stdout
    assert 'remove: chosen ["work"]' in out.stdout, out.stdout
    assert "start [-p PID] [-f FUNC...] [FUNC...]" in out.stdout, out.stdout
