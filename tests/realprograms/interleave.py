"""Old and new spyglass binaries compared on one corpus program, runs interleaved (old, new,
old, new, ...) so that the machine's load falls on both alike; the program and spyglass on two
separate CPUs (corpus.separate_cores), where 3.8-3.10 reads tear. Prints each run's relative
errors and counts, then per binary the mean error of the runs with its standard error.

    python tests/realprograms/interleave.py --program recursion --pythons 3.8.18,3.9.18 \
        --rates 1000,10000 --runs 3 old=/tmp/spyglass-old new=build/spyglass

Interpreters are pyenv versions (`pyenv root`/versions/VERSION/bin/python).
"""

import argparse
import collections
import statistics
import subprocess
import sys

import corpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--program", default="recursion", choices=sorted(corpus.PROGRAMS))
    parser.add_argument("--pythons", required=True, help="pyenv versions, comma-separated")
    parser.add_argument("--rates", default="1000", help="Hz, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="runs of each binary")
    parser.add_argument("binaries", nargs="+", help="LABEL=PATH")
    args = parser.parse_args()
    root = subprocess.check_output(["pyenv", "root"], text=True).strip()
    program = corpus.PROGRAMS[args.program]
    cores = corpus.separate_cores()
    errors = collections.defaultdict(list)  # (rate, label, function) -> relative errors
    for _ in range(args.runs):
        for version in args.pythons.split(","):
            python = "%s/versions/%s/bin/python" % (root, version)
            environment = corpus.program_environment(python, version)
            for rate in [int(r) for r in args.rates.split(",")]:
                for binary in args.binaries:
                    label, path = binary.split("=", 1)
                    m = corpus.measure(path, python, "pyenv-" + version, environment, program,
                                       rate=rate, cores=cores)
                    counts = m.counts()
                    cells = []
                    for row in m.rows():
                        errors[(rate, label, row.function)].append(100 * row.relative)
                        cells.append("%s %+.1f%% (bound %.1f%%)%s" % (
                            row.function, 100 * row.relative,
                            100 * row.bound / row.truth if row.truth else 0,
                            "" if row.within else " OUTSIDE"))
                    print("%s %5d Hz %-6s %s samples, %s re-read, %s incomplete, %s frames "
                          "read again | %s" % (
                              version, rate, label, counts["samples"], counts["reread_stacks"],
                              counts["incomplete_stacks"], m.document.get("frames_read_again"),
                              "; ".join(cells)), flush=True)
    print("mean relative error of the runs (standard error):")
    for (rate, label, function), values in sorted(errors.items()):
        spread = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
        print("  %5d Hz %-6s %-20s %+6.1f%% (%.1f) over %d runs" % (
            rate, label, function, statistics.mean(values), spread, len(values)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
