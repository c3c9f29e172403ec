"""`python -m spyglass run`: the config file (tomllib on 3.11+, the extension's TOML reader
before), the table and JSON outputs, the script's exit status."""

import json

import pytest

from conftest import VERSIONS, build_package, run_python

SCRIPT = """
import sys
def work(n):
    return n + 1
class Api:
    def get_user(self):
        return work(1)
for i in range(7):
    work(i)
for _ in range(3):
    Api().get_user()
sys.exit(3)
"""


# The oldest (the extension's TOML reader), the first with tomllib, the newest.
@pytest.mark.parametrize("version", sorted({VERSIONS[0], "3.11", VERSIONS[-1]},
                                           key=lambda v: int(v.split(".")[1])))
def test_run_with_config(version, tmp_path):
    python, package = build_package(version)
    (tmp_path / "script.py").write_text(SCRIPT)
    (tmp_path / "cfg.toml").write_text(
        '[tool.spyglass]\nfunctions = ["work", "Api.get_*"]\nformat = "json"\n')
    proc = run_python(python, package, ["-m", "spyglass", "run", "--config",
                                        str(tmp_path / "cfg.toml"), str(tmp_path / "script.py")])
    assert proc.returncode == 3, proc.stderr
    functions = {f["name"]: f for f in json.loads(proc.stdout)["functions"]}
    assert functions["work"]["calls"] == 10
    assert functions["Api.get_*"]["calls"] == 3
    assert functions["work"]["self_seconds"] <= functions["work"]["seconds"]


def test_run_table_output(tmp_path):
    python, package = build_package("3.12")
    (tmp_path / "script.py").write_text(SCRIPT)
    proc = run_python(python, package, ["-m", "spyglass", "run", "--ascii", "-f", "work",
                                        str(tmp_path / "script.py")], PYTHONIOENCODING="utf-8")
    assert proc.returncode == 3, proc.stderr
    assert "work" in proc.stdout and "Calls" in proc.stdout and "10" in proc.stdout
