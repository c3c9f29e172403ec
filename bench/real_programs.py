#!/usr/bin/env python3
"""The real-program corpus as a table: program x interpreter, the program's own timing (truth),
spyglass non-blocking and --blocking, the bound, and the re-read / incomplete stack counts.

    bench/real_programs.py [--spyglass build/spyglass] [--interpreters 3.11,3.12]
                           [--programs algebra_server] [--rates 1000,10000] [--blocking-rates 1000]
                           [--scale 1] [--repeat 1] [--json FILE] [--list]

Runs against any spyglass binary, so the same command before and after a change shows what
it did. Programs, their truth and how they are run: tests/realprograms/corpus.py. Packages come
from PyPI into per-interpreter environments cached under .cache/venvs (tests/lib/venvs.py); an
interpreter whose packages cannot be had is listed with the reason. Exit status 1 when any
non-blocking figure is outside its bound plus margin (the test's rule), else 0.
"""

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ROW = "%-15s %-21s %-20s %-6d %8s %9s %7s %9s %7s %8s %8s %8s %s"
sys.path.insert(0, str(REPO_ROOT / "tests" / "realprograms"))
import corpus  # noqa: E402  (puts tests/integration and tests/lib on sys.path)
import interpreters  # noqa: E402


def choose_interpreters(wanted):
    found = [i for i in interpreters.discover_local() if i.supported]
    for minor, fetched in interpreters.fetch_debian_unstable(timeout=900).items():
        if wanted and "%d.%d" % minor not in wanted and not any(
                w.startswith("debian-unstable-%d.%d" % minor) for w in wanted):
            continue
        if fetched.interpreter:
            found.append(fetched.interpreter)
        else:
            print("%d.%d: %s" % (minor + (fetched.problem,)), file=sys.stderr)
    if wanted:
        found = [i for i in found if i.minor_text in wanted or i.test_id in wanted]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spyglass", default=str(REPO_ROOT / "build" / "spyglass"))
    parser.add_argument("--interpreters", help="comma-separated minor versions or test ids")
    parser.add_argument("--programs", help="comma-separated, of: " + ", ".join(corpus.PROGRAMS))
    parser.add_argument("--rates", help="comma-separated sampling rates (Hz) for every program "
                        "(default: the test suite's matrix, corpus.MATRIX)")
    parser.add_argument("--blocking-rates", default="1000",
                        help="the rates also run with --blocking (pausing the target for "
                        "every sample is too slow at 10 kHz); empty for none")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply each program's work (beyond the matrix's own scale)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each configuration")
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument("--list", action="store_true", help="list the programs and the matrix")
    args = parser.parse_args()
    if args.list:
        for program in corpus.PROGRAMS.values():
            print("%-15s %s\n%15s chosen: %s" % (program.name, program.what, "",
                                                 " ".join(program.functions)))
        print("matrix (program, rate, with --blocking, scale): %s" % (corpus.MATRIX,))
        return 0

    wanted = set(args.interpreters.split(",")) if args.interpreters else set()
    programs = [corpus.PROGRAMS[name] for name in (
        args.programs.split(",") if args.programs else corpus.PROGRAMS)]
    blocking_rates = [int(rate) for rate in args.blocking_rates.split(",") if rate]
    if args.rates:
        matrix = [(program.name, int(rate), int(rate) in blocking_rates, 1.0)
                  for program in programs for rate in args.rates.split(",")]
    else:
        names = [program.name for program in programs]
        matrix = [entry for entry in corpus.MATRIX if entry[0] in names]
    results = []
    header = ROW.replace("%-6d", "%-6s") % (
        "program", "python", "function", "rate", "truth s", "non-blk", "diff", "blocking",
        "diff", "± bound", "re-read", "incompl", "")
    lines = [header]
    print(header, flush=True)
    outside = 0
    for interpreter in choose_interpreters(wanted):
        try:
            environment = corpus.program_environment(interpreter.path, interpreter.version_text)
        except corpus.venvs.Unavailable as error:
            line = "%-16s %-16s skipped: %s" % ("*", interpreter.test_id, error)
            print(line, flush=True)
            lines.append(line)
            continue
        for name, rate, with_blocking, scale in matrix:
            program = corpus.PROGRAMS[name]
            for _ in range(args.repeat):
                measured, failures = {}, {}
                for blocking in [False] + ([True] if with_blocking else []):
                    try:
                        measured[blocking] = corpus.measure(
                            args.spyglass, interpreter.path, interpreter.test_id, environment,
                            program, blocking=blocking, rate=rate, scale=scale * args.scale,
                            cores=corpus.separate_cores() if name in corpus.PINNED else None)
                    except AssertionError as error:
                        mode = "blocking" if blocking else "non-blocking"
                        failures[mode] = str(error).splitlines()[0]
                        print("%s %s %s: failed: %s" % (
                            program.name, interpreter.test_id, mode, error), file=sys.stderr)
                table, count = table_lines(program, interpreter.test_id, rate, measured,
                                           failures)
                outside += count
                for line in table:
                    print(line, flush=True)
                lines += table
                results += [{"program": program.name, "python": interpreter.test_id,
                             "mode": measurement.mode, "rate": rate, "truth": measurement.truth,
                             "spyglass": measurement.document}
                            for measurement in measured.values()]
    print("\n(truth: the program's own timing, thread-seconds; diff: spyglass vs truth; "
          "± bound: non-blocking's 95 %% bound; re-read/incompl: non-blocking's stack counts; "
          "OUTSIDE: beyond bound + margin)\n%d non-blocking figure(s) outside" % outside)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"spyglass": args.spyglass, "table": lines, "runs": results}, handle,
                      indent=1)
    return 1 if outside else 0


def table_lines(program, python_id, rate, measured, failures):
    """The table's lines for one program run non-blocking (and --blocking), and how many
    non-blocking figures are outside their bound plus margin."""
    nb, bl = measured.get(False), measured.get(True)
    lines, outside = [], 0
    for position, function in enumerate(program.functions):
        nb_row = nb.rows()[position] if nb else None
        bl_row = bl.rows()[position] if bl else None
        verdict = ""
        if nb_row and not nb_row.within:
            verdict = "OUTSIDE"
            outside += 1
        if bl_row and not bl_row.within:
            verdict += " (blocking outside)"
        if position == 0:
            for mode, failure in failures.items():
                verdict += " %s FAILED: %s" % (mode, failure)
            for measurement in measured.values():
                if measurement.run_problems():
                    verdict += " %s: %s" % (measurement.mode,
                                            "; ".join(measurement.run_problems()))
        counts = nb.counts() if nb else {}
        lines.append(ROW % (
            program.name, python_id, function, rate,
            "%.3f" % nb_row.truth if nb_row else "-", _figure(nb_row), _percent(nb_row),
            _figure(bl_row), _percent(bl_row), "%.3f" % nb_row.bound if nb_row else "-",
            counts.get("reread_stacks", "-"), counts.get("incomplete_stacks", "-"), verdict))
    return lines, outside


def _figure(row) -> str:
    if row is None:
        return "-"
    return "no data" if row.measured is None else "%.3f" % row.measured


def _percent(row) -> str:
    return "%+.1f%%" % (100 * row.relative) if row is not None else "-"


if __name__ == "__main__":
    sys.exit(main())
