"""python -m spyglass: the spyglass command's interface, from Python.

    python -m spyglass run [options] [--] script.py [args...]   exact mode, in this interpreter
    python -m spyglass record|attach|top|dump ...               the spyglass command itself
    python -m spyglass --version

`run` starts the script in this interpreter with exact mode timing the chosen functions (and
every @spyglass.trace'd one) and prints the results when it ends: the same table as the
sampler's, or its JSON. Its options are the command's: -f/--function FUNC... (a list, ended by
the next option, by "--" or by the script), --format table|json, -o/--output FILE (.txt is the
table, .json the JSON), --config FILE, --per-thread, --ascii, --matches N, --listen. The config file is the
command's TOML: --config FILE, else ./spyglass.toml, else [tool.spyglass] of ./pyproject.toml.
Mistakes are one line `spyglass: ...` on stderr and exit status 2, as the command's are.
"""

import difflib
import os
import runpy
import shutil
import sys
import sysconfig
import threading

VERSION = "0.1.0"  # the command's own (spyglass --version)
EXIT_USAGE = 2
EXIT_IO = 8

# The keys the command's config files may hold (src/cli/options.cpp, config_keys()); `run` uses
# functions, format, output, per_thread and ascii, and leaves the sampler's own alone.
CONFIG_KEYS = ["functions", "rate", "interval", "mode", "blocking", "no_realtime", "format",
               "output", "duration", "per_thread", "ascii", "tree", "merge_lines", "matches"]

USAGE = """usage: python -m spyglass run [options] [--] script.py [args...]
       python -m spyglass record|attach|top|dump ...  (the spyglass command)
       python -m spyglass --version

run: time chosen functions of a script exactly, in this interpreter
  -f, --function FUNC...  functions to time: name, Class.method, module:qualname,
                          file.py:name, globs
  --format table|json     how to print the results (default: from -o, else table)
  -o, --output FILE       write the results to FILE (.txt table, .json JSON)
  --config FILE           TOML config (default: spyglass.toml or [tool.spyglass] in
                          pyproject.toml)
  --per-thread            a row per thread under each function
  --ascii                 plain ASCII table
  --matches N             functions listed under a pattern that matched several
                          (default 10)
  --listen                open the control socket (spyglass attach PID --exact)
"""


class UsageError(Exception):
    """A mistake on the command line: one line, the usage pointer, exit status 2."""


class ConfigError(Exception):
    """A config file that cannot be used: one line, exit status 2."""


class RunOptions(object):
    def __init__(self):
        self.config = None
        self.functions = []
        self.format = None
        self.output = None
        self.per_thread = None
        self.ascii = None
        self.matches = None
        self.listen = False
        self.script = None
        self.args = []


_FLAGS = {"--per-thread": "per_thread", "--ascii": "ascii", "--listen": "listen"}
_VALUES = {"--config": "config", "--format": "format", "-o": "output", "--output": "output",
           "--matches": "matches"}
_LISTS = {"-f": "functions", "--function": "functions"}


def _is_script(word):
    # A function pattern naming a file has a colon (file.py:name): a word ending in .py that is
    # a file is the script, wherever it comes.
    return word.endswith(".py") and os.path.isfile(word)


def parse_run(words):
    """The command's rules: a list option takes words up to the next option, "--" or the
    script; the script and its own arguments follow."""
    options = RunOptions()
    in_list = None
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            rest = words[i + 1:]
            if not rest:
                raise UsageError("run: give the script after --")
            options.script, options.args = rest[0], rest[1:]
            return options
        if word.startswith("-") and word != "-":
            name, has_value, value = word.partition("=")
            in_list = None
            if name in ("-h", "--help"):
                sys.stdout.write(USAGE)
                sys.exit(0)
            if name in _FLAGS and not has_value:
                setattr(options, _FLAGS[name], True)
            elif name in _VALUES:
                if not has_value:
                    i += 1
                    if i >= len(words):
                        raise UsageError("%s needs a value" % name)
                    value = words[i]
                setattr(options, _VALUES[name], value)
            elif name in _LISTS:
                in_list = _LISTS[name]
                if has_value:
                    options.functions.append(value)
                elif i + 1 >= len(words) or words[i + 1].startswith("-"):
                    raise UsageError("%s needs at least one function" % name)
            else:
                raise UsageError("run: unknown option %s" % word)
            i += 1
            continue
        if in_list and not _is_script(word):
            options.functions.append(word)
            i += 1
            continue
        options.script, options.args = word, words[i + 1:]
        return options
    if options.functions:
        raise UsageError("run: give the script after the functions, or after --: python -m "
                         "spyglass run -f %s -- script.py" % " ".join(options.functions))
    raise UsageError("run: give the script to run, e.g. python -m spyglass run -f main -- app.py")


def _load_toml(path):
    if sys.version_info >= (3, 11):
        import tomllib

        try:
            with open(path, "rb") as f:
                return tomllib.load(f)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError("%s: %s" % (path, error))
    from . import _spyglass

    try:
        return _spyglass.load_toml(path)
    except Exception as error:  # the extension's reader raises ValueError with toml++'s words
        raise ConfigError("%s: %s" % (path, error))


def load_config(explicit=None):
    """The config table, as the command finds it, with where it came from."""
    if explicit:
        if not os.path.exists(explicit):
            raise ConfigError("config file %s does not exist" % explicit)
        table = _load_toml(explicit)
        tool = table.get("tool", {}).get("spyglass")
        if isinstance(tool, dict):
            return tool, explicit + " [tool.spyglass]"
        return table, explicit
    if os.path.exists("spyglass.toml"):
        return _load_toml("spyglass.toml"), "spyglass.toml"
    if os.path.exists("pyproject.toml"):
        tool = _load_toml("pyproject.toml").get("tool", {}).get("spyglass")
        if isinstance(tool, dict):
            return tool, "pyproject.toml [tool.spyglass]"
    return {}, None


def warn_unknown_keys(config, source):
    for key in config:
        if key in CONFIG_KEYS:
            continue
        close = difflib.get_close_matches(key, CONFIG_KEYS, n=1, cutoff=0.6)
        sys.stderr.write("spyglass: warning: %s: unknown key '%s'%s; it is ignored\n" % (
            source, key, " (did you mean '%s'?)" % close[0] if close else ""))


def _config_value(config, key, kind):
    value = config.get(key)
    if value is not None and not isinstance(value, kind):
        raise ConfigError("config: '%s' has the wrong type" % key)
    return value


def output_format(name, output):
    """table or json, from --format or else the output's extension, as the command decides."""
    if name:
        if name in ("table", "text", "txt", "json"):
            return "json" if name == "json" else "table"
        raise UsageError("unknown format '%s': exact mode writes table or json" % name)
    if not output or output.endswith(".txt") or output.endswith(".table"):
        return "table"
    if output.endswith(".json"):
        return "json"
    raise UsageError("cannot tell the format of %s from its name: use .txt (table) or .json; or "
                     "say it with --format" % output)


def check_writable(path):
    folder = os.path.dirname(path) or "."
    if os.path.isdir(path):
        raise OSError("cannot write %s: it is a folder" % path)
    if not os.path.isdir(folder):
        raise OSError("cannot write %s: the folder %s does not exist" % (path, folder))
    if not os.access(folder, os.W_OK):
        raise OSError("cannot write %s: Permission denied" % path)


def _join_threads():
    # What the interpreter does at exit, done before the results are taken so that work in
    # non-daemon threads is counted.
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()


def _write(text, output):
    """Writes the results; a file that cannot be written after all gets them on stdout."""
    if output:
        try:
            with open(output, "w") as f:
                f.write(text)
            return 0
        except OSError as error:
            sys.stderr.write("spyglass: cannot write %s: %s; the results follow\n" % (
                output, error.strerror or error))
            sys.stdout.write(text)
            sys.stdout.flush()
            return EXIT_IO
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0


def run(options):
    config, source = load_config(options.config)
    if source:
        warn_unknown_keys(config, source)
    functions = options.functions or list(_config_value(config, "functions", list) or [])
    if not all(isinstance(f, str) for f in functions):
        raise ConfigError("config: 'functions' must be a list of strings")
    output = options.output or _config_value(config, "output", str)
    fmt = output_format(options.format or _config_value(config, "format", str), output)
    per_thread = options.per_thread if options.per_thread is not None else \
        bool(_config_value(config, "per_thread", bool))
    ascii_only = options.ascii if options.ascii is not None else \
        bool(_config_value(config, "ascii", bool))
    matches = options.matches if options.matches is not None else \
        _config_value(config, "matches", int)
    try:
        matches = 10 if matches is None else int(matches)
    except ValueError:
        raise UsageError("--matches needs a whole number, not '%s'" % matches)
    if matches < 0:
        raise UsageError("--matches needs a number 0 or more, not %d" % matches)
    if output:
        try:
            check_writable(output)
        except OSError as error:
            sys.stderr.write("spyglass: %s\n" % error)
            return EXIT_IO
    script = os.path.abspath(options.script)
    if not os.path.isfile(script):
        raise UsageError("cannot run %s: No such file" % options.script)

    import spyglass

    try:
        spyglass.start(functions, listen=options.listen)
    except (ValueError, TypeError) as error:  # a malformed pattern
        raise UsageError(str(error))
    sys.argv = [options.script] + list(options.args)
    sys.path[0] = os.path.dirname(script)
    exit_code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit:
        exit_code = exit.code
    except BaseException:
        import traceback

        traceback.print_exc()  # the script's own error, shown as Python would
        exit_code = 1
    finally:
        _join_threads()
        results = spyglass.stop()
        if fmt == "json":
            written = _write(results.to_json(indent=2) + "\n", output)
        else:
            unicode = None if not ascii_only else False
            if output:
                unicode = not ascii_only
            written = _write(results.table(unicode=unicode, per_thread=per_thread,
                                            width=0 if output else None, matches=matches),
                              output)
    return exit_code or written


def spyglass_command():
    """The spyglass command installed with this package (the wheel puts it beside this
    interpreter's scripts), else the one on PATH."""
    beside = os.path.join(sysconfig.get_path("scripts"), "spyglass")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    return shutil.which("spyglass")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or argv[0] in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0 if argv else EXIT_USAGE
        if argv[0] == "--version":
            sys.stdout.write("spyglass %s\n" % VERSION)
            return 0
        if argv[0] == "run":
            return run(parse_run(argv[1:]))
        if argv[0] in ("record", "attach", "top", "dump"):
            command = spyglass_command()
            if not command:
                raise UsageError("the spyglass command is not installed with this Python "
                                 "(pip install spyglass-profiler puts it beside it)")
            sys.stdout.flush()
            os.execv(command, [command] + argv)
        raise UsageError("unknown command '%s': use run, record, attach, top or dump" % argv[0])
    except UsageError as error:
        sys.stderr.write("spyglass: %s; see 'python -m spyglass --help'\n" % error)
        return EXIT_USAGE
    except ConfigError as error:
        sys.stderr.write("spyglass: %s\n" % error)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
