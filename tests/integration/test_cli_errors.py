"""Mistakes and bad luck in the profiling commands (record, run, attach, top): each one is a
single clear line `spyglass: ...` on stderr and a non-zero exit for the one-shot forms, never a
traceback or a hang. The prompt's own errors (unknown command, bad rate) are in
test_attach_prompt.py."""

import subprocess

import pytest

import support


@pytest.fixture(scope="module")
def demo_app():
    app = support.start_demo_app()
    yield app
    app.stop()


@pytest.mark.parametrize("rate", ["0", "-1", "1e9", "abc", "nan"])
@pytest.mark.parametrize("command", ["record", "attach", "top"])
def test_bad_rate(run_spyglass, demo_app, command, rate):
    args = {"record": ["record", "-p", demo_app.pid, "-f", "heavy_computation", "-d", "0.2"],
            "attach": ["attach", demo_app.pid, "-f", "heavy_computation"],
            "top": ["top", demo_app.pid, "--once"]}[command]
    result = run_spyglass(args + ["--rate=" + rate])
    line = support.assert_clean_failure(result, support.EXIT_USAGE)
    assert "rate" in line.lower() or rate in line, line


@pytest.mark.parametrize("options,words", [
    (["--interval", "0"], "interval"),
    (["--interval", "-2"], "interval"),
    (["--duration", "0"], "duration"),
    (["--duration", "-1"], "duration"),
    (["--mode", "kernel"], "mode"),
    (["--format", "excel"], "format"),
    (["-f", "module:"], "pattern"),
    (["-f", "bad name"], "pattern"),
])
def test_bad_options(run_spyglass, demo_app, options, words):
    result = run_spyglass(["record", "-p", demo_app.pid, "-f", "heavy_computation", "-d", "0.2"]
                          + options)
    line = support.assert_clean_failure(result, support.EXIT_USAGE)
    assert words in line.lower(), line


def test_missing_pid(run_spyglass):
    support.assert_clean_failure(run_spyglass(["record", "-f", "x"]), support.EXIT_USAGE)


def test_target_gone(run_spyglass):
    gone = subprocess.Popen(["true"])
    gone.wait()
    for args in (["record", "-p", gone.pid, "-d", "0.2"], ["attach", gone.pid],
                 ["top", gone.pid, "--once"]):
        result = run_spyglass(args)
        line = support.assert_clean_failure(result, support.EXIT_NO_SUCH_PROCESS)
        assert str(gone.pid) in line, line


def test_target_not_python(run_spyglass):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        for args in (["record", "-p", sleeper.pid, "-d", "0.2"], ["attach", sleeper.pid],
                     ["top", sleeper.pid, "--once"]):
            result = run_spyglass(args)
            line = support.assert_clean_failure(result, support.EXIT_NOT_PYTHON)
            assert "Python" in line, line
    finally:
        sleeper.kill()
        sleeper.wait()


def test_malformed_config(run_spyglass, demo_app, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text('functions = ["heavy_computation"\nrate = \n')
    line = support.assert_clean_failure(
        run_spyglass(["record", "-p", demo_app.pid, "--config", broken, "-d", "0.2"]),
        support.EXIT_USAGE)
    assert "broken.toml" in line, line
    wrong_type = tmp_path / "wrong.toml"
    wrong_type.write_text('functions = ["heavy_computation"]\nrate = "fast"\n')
    line = support.assert_clean_failure(
        run_spyglass(["record", "-p", demo_app.pid, "--config", wrong_type, "-d", "0.2"]),
        support.EXIT_USAGE)
    assert "rate" in line, line
    missing = tmp_path / "missing.toml"
    line = support.assert_clean_failure(
        run_spyglass(["record", "-p", demo_app.pid, "--config", missing, "-d", "0.2"]),
        support.EXIT_USAGE)
    assert "missing.toml" in line, line


def test_unwritable_output(run_spyglass, demo_app, tmp_path):
    result = run_spyglass(["record", "-p", demo_app.pid, "-f", "heavy_computation", "-d", "0.2",
                           "-o", tmp_path / "no-such-folder" / "out.json"])
    line = support.assert_clean_failure(result)
    assert "out.json" in line, line
