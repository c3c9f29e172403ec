"""Every command, mode and export on every supported interpreter (3.8 to the newest in
src/cpython/versions.toml, Debian unstable's 3.14 and 3.15 included).

The other command tests run on the tests' own Python; these make sure `record`, `run`, `top`,
`attach` (through a pipe: modes, rate, exports) work on each version. One target per
interpreter serves every assertion, and each step is short, to keep the suite lean.
"""

import json
import subprocess
import time

import support

EXPORTS = {"flame.html": "flamegraph", "profile.speedscope.json": "speedscope",
           "stacks.collapsed": "collapsed", "profile.pb.gz": "pprof", "trace.json": "chrome",
           "results.json": "json"}


def test_every_command_mode_and_export(interpreter, spyglass_bin, run_spyglass, tmp_path):
    app = support.Script(interpreter.path, str(support.DEMO_APP))
    try:
        pid = str(app.pid)
        # record, once per mode, as JSON.
        for mode in ("wall", "cpu", "gil"):
            result = run_spyglass(["record", "-p", pid, "-d", "0.5", "--mode", mode, "--format",
                                   "json", "-f", "heavy_computation"], timeout=60)
            support.assert_success(result)
            document = json.loads(result.stdout)
            assert document["mode"] == mode and document["python_version"].startswith(
                interpreter.version_text), result.stdout[:400]
            row = support.function_rows(document)["heavy_computation"]
            assert row["has_data"] and row["samples"] > 0, (mode, row)

        # top, one refresh.
        result = run_spyglass(["top", pid, "--once"], timeout=60)
        support.assert_success(result)
        assert "heavy_computation" in result.stdout, result.stdout

        # attach through a pipe: start, change the mode and rate live, every export, results.
        # A mode or rate change starts a run of its own (samples are never mixed): the last one
        # gets time to gather samples before the exports.
        switches = ["mode cpu", "rate 500", "mode wall"]
        commands = ["export %s %s" % (tmp_path / name, kind) for name, kind in EXPORTS.items()]
        commands += ["results --json", "exit"]
        process = subprocess.Popen([spyglass_bin, "attach", pid, "-f", "heavy_computation",
                                    "disk_io"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            process.stdin.write("start\n")
            process.stdin.flush()
            time.sleep(0.6)
            process.stdin.write("\n".join(switches) + "\n")
            process.stdin.flush()
            time.sleep(0.6)
            output, errors = process.communicate("\n".join(commands) + "\n", timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, (output, errors)
        assert not [line for line in output.splitlines() if line.startswith("error")], output
        rows = support.function_rows(support.json_document(output))
        assert rows["heavy_computation"]["samples"] > 0, rows
        for name in EXPORTS:
            assert (tmp_path / name).stat().st_size > 0, name
    finally:
        app.stop()
    assert "heavy_computation" in (tmp_path / "stacks.collapsed").read_text()

    # run: start the program and profile it to its end.
    result = run_spyglass(["run", "-f", "heavy_computation", "--format", "json", "--",
                           interpreter.path, str(support.DEMO_APP), "--seconds", "1"],
                          timeout=90)
    support.assert_success(result)
    rows = support.function_rows(support.json_document(result.stdout))
    assert rows["heavy_computation"]["samples"] > 0, rows
