"""python -m spyglass run [--config FILE] [-f FUNC ...] [--format table|json] script.py [args]

Runs a script with exact mode timing the chosen functions (and every @spyglass.trace'd one) and
prints the results when it ends: the same table as the sampler's, or its JSON. The config file is
the command line's TOML (``functions = [...]``, ``format``, ``output``, ``per_thread``, ``ascii``,
``matches``): --config FILE, else ./spyglass.toml, else [tool.spyglass] of ./pyproject.toml.
"""

import argparse
import os
import runpy
import sys
import threading


def _load_toml(path):
    if sys.version_info >= (3, 11):
        import tomllib

        with open(path, "rb") as f:
            return tomllib.load(f)
    from . import _spyglass

    return _spyglass.load_toml(path)


def load_config(explicit=None):
    """The config table, as the command line finds it."""
    if explicit:
        if not os.path.exists(explicit):
            raise SystemExit("spyglass: config file %s does not exist" % explicit)
        table = _load_toml(explicit)
        return table.get("tool", {}).get("spyglass", table)
    if os.path.exists("spyglass.toml"):
        return _load_toml("spyglass.toml")
    if os.path.exists("pyproject.toml"):
        return _load_toml("pyproject.toml").get("tool", {}).get("spyglass", {})
    return {}


def _parser():
    parser = argparse.ArgumentParser(prog="python -m spyglass", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="run a script with exact mode on")
    run.add_argument("--config", help="TOML config file")
    run.add_argument("-f", "--function", action="append", default=[],
                     help="function to time (repeatable): name, Class.method, module:qualname, "
                          "file.py:name, globs")
    run.add_argument("--format", choices=["table", "json"], help="output format (default table)")
    run.add_argument("-o", "--output", help="write the results to this file")
    run.add_argument("--per-thread", action="store_true", default=None,
                     help="a row per thread under each function")
    run.add_argument("--ascii", action="store_true", default=None, help="plain ASCII table")
    run.add_argument("--matches", type=int, metavar="N",
                     help="functions listed under a pattern that matched several (default 10)")
    run.add_argument("--listen", action="store_true",
                     help="open the control socket (spyglass attach PID --exact)")
    run.add_argument("script", help="the Python script to run")
    run.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    return parser


def _join_threads():
    # What the interpreter does at exit, done before the results are taken so that work in
    # non-daemon threads is counted.
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()


def _write(text, output):
    if output:
        with open(output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def run(options):
    import spyglass

    config = load_config(options.config)
    functions = options.function or list(config.get("functions", []))
    output_format = options.format or config.get("format", "table")
    output = options.output or config.get("output")
    per_thread = options.per_thread if options.per_thread is not None else config.get("per_thread", False)
    ascii_only = options.ascii if options.ascii is not None else config.get("ascii", False)
    matches = options.matches or int(config.get("matches", 10))

    script = os.path.abspath(options.script)
    sys.argv = [options.script] + list(options.args)
    sys.path[0] = os.path.dirname(script)
    exit_code = 0
    try:
        spyglass.start(functions, listen=options.listen)
    except (ValueError, TypeError) as error:  # a malformed pattern: one line, as the command says
        sys.stderr.write("spyglass: %s\n" % error)
        return 2
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit:
        exit_code = exit.code
    except BaseException:
        import traceback

        traceback.print_exc()
        exit_code = 1
    finally:
        _join_threads()
        results = spyglass.stop()
        if output_format == "json":
            _write(results.to_json(indent=2) + "\n", output)
        else:
            unicode = None if not ascii_only else False
            if output:
                unicode = not ascii_only
            _write(results.table(unicode=unicode, per_thread=per_thread,
                                 width=0 if output else None, matches=matches), output)
    return exit_code


def main(argv=None):
    options = _parser().parse_args(argv)
    if options.command != "run":
        _parser().print_help()
        return 2
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
