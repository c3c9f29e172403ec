"""The TOML config: `--config FILE`, else ./spyglass.toml, else [tool.spyglass] in
./pyproject.toml (spyglass runs in a temporary folder here). The command line wins over it."""

import json
import subprocess

import pytest

import support

CONFIG = """
functions = ["heavy_computation", "disk_io"]
rate = 250
duration = 0.6
format = "json"
mode = "wall"
"""


@pytest.fixture(scope="module")
def demo_app():
    app = support.start_demo_app()
    yield app
    app.stop()


def run_in(folder, spyglass_bin, args, timeout=60.0) -> support.Result:
    command = [spyglass_bin] + [str(arg) for arg in args]
    completed = subprocess.run(command, cwd=str(folder), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=timeout, check=False)
    return support.Result(command, completed.returncode, completed.stdout, completed.stderr, 0)


def check_configured_run(result, rate=250):
    support.assert_success(result)
    document = json.loads(result.stdout)
    assert document["rate_hz"] == rate, document["rate_hz"]
    assert document["duration_seconds"] < 3, document["duration_seconds"]
    assert list(support.function_rows(document)) == ["heavy_computation", "disk_io"]
    return document


def test_config_option(spyglass_bin, demo_app, tmp_path):
    config = tmp_path / "elsewhere" / "profile.toml"
    config.parent.mkdir()
    config.write_text(CONFIG)
    check_configured_run(run_in(tmp_path, spyglass_bin,
                                ["record", "-p", demo_app.pid, "--config", config]))


def test_config_option_with_a_pyproject(spyglass_bin, demo_app, tmp_path):
    config = tmp_path / "pyproject.toml"
    config.write_text("[project]\nname = 'x'\n\n[tool.spyglass]\n" + CONFIG)
    check_configured_run(run_in("/", spyglass_bin,
                                ["record", "-p", demo_app.pid, "--config", config]))


def test_spyglass_toml_in_the_current_folder(spyglass_bin, demo_app, tmp_path):
    (tmp_path / "spyglass.toml").write_text(CONFIG)
    check_configured_run(run_in(tmp_path, spyglass_bin, ["record", "-p", demo_app.pid]))


def test_pyproject_in_the_current_folder(spyglass_bin, demo_app, tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        "[project]\nname = 'demo'\n\n[tool.spyglass]\n" + CONFIG + "\n[tool.other]\nx = 1\n")
    check_configured_run(run_in(tmp_path, spyglass_bin, ["record", "-p", demo_app.pid]))


def test_pyproject_without_a_spyglass_table_is_ignored(spyglass_bin, demo_app, tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    result = run_in(tmp_path, spyglass_bin, ["record", "-p", demo_app.pid, "-f",
                                             "heavy_computation", "-d", "0.3", "--format",
                                             "json"])
    support.assert_success(result)
    assert json.loads(result.stdout)["rate_hz"] == 1000


def test_spyglass_toml_wins_over_pyproject(spyglass_bin, demo_app, tmp_path):
    (tmp_path / "spyglass.toml").write_text(CONFIG)
    (tmp_path / "pyproject.toml").write_text("[tool.spyglass]\nrate = 50\nduration = 9\n")
    check_configured_run(run_in(tmp_path, spyglass_bin, ["record", "-p", demo_app.pid]))


def test_command_line_wins(spyglass_bin, demo_app, tmp_path):
    (tmp_path / "spyglass.toml").write_text(CONFIG)
    result = run_in(tmp_path, spyglass_bin, ["record", "-p", demo_app.pid, "--rate", "400",
                                             "-f", "network_request", "heavy_computation"])
    support.assert_success(result)
    document = json.loads(result.stdout)
    assert document["rate_hz"] == 400
    assert list(support.function_rows(document)) == ["network_request", "heavy_computation"]


def test_interval_in_the_config(spyglass_bin, demo_app, tmp_path):
    (tmp_path / "spyglass.toml").write_text(
        'functions = ["heavy_computation"]\ninterval = 0.01\nduration = 0.5\nformat = "json"\n')
    result = run_in(tmp_path, spyglass_bin, ["record", "-p", demo_app.pid])
    support.assert_success(result)
    assert json.loads(result.stdout)["rate_hz"] == pytest.approx(100)


def test_config_for_the_prompt(spyglass_bin, demo_app, tmp_path):
    (tmp_path / "spyglass.toml").write_text(CONFIG)
    completed = subprocess.run([spyglass_bin, "attach", str(demo_app.pid)], cwd=str(tmp_path),
                               input="status\nexit\n", stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert "heavy_computation, disk_io" in completed.stdout, completed.stdout
    assert "250 Hz requested" in completed.stdout, completed.stdout


def test_malformed_spyglass_toml_in_the_current_folder(spyglass_bin, demo_app, tmp_path):
    (tmp_path / "spyglass.toml").write_text("functions = [\n")
    result = run_in(tmp_path, spyglass_bin, ["record", "-p", demo_app.pid])
    line = support.assert_clean_failure(result, support.EXIT_USAGE)
    assert "spyglass.toml" in line, line


def test_unknown_key_is_warned_with_the_closest(spyglass_bin, demo_app, tmp_path):
    """Before, `functoins = [...]` was ignored without a word (and the run had no functions)."""
    (tmp_path / "spyglass.toml").write_text(
        'functoins = ["heavy_computation"]\nrate = 250\nduration = 0.3\nformat = "json"\n'
        'colour = "blue"\n')
    result = run_in(tmp_path, spyglass_bin, ["record", "-p", demo_app.pid, "-f", "disk_io"])
    support.assert_success(result)
    assert "spyglass: warning: spyglass.toml: unknown key 'functoins' (did you mean " \
        "'functions'?); it is ignored" in result.stderr, result.stderr
    assert "unknown key 'colour'; it is ignored" in result.stderr, result.stderr
    assert json.loads(result.stdout)["rate_hz"] == 250  # the known keys still apply
    pyproject = tmp_path / "elsewhere" / "pyproject.toml"
    pyproject.parent.mkdir()
    pyproject.write_text("[tool.spyglass]\nrat = 100\nduration = 0.3\n")
    result = run_in(tmp_path, spyglass_bin, ["record", "-p", demo_app.pid, "--config", pyproject,
                                             "-f", "disk_io"])
    support.assert_success(result)
    assert "pyproject.toml [tool.spyglass]: unknown key 'rat' (did you mean 'rate'?)" in \
        result.stderr, result.stderr
