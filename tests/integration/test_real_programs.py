"""Real programs on real libraries (issue 12): the default, non-blocking mode must agree with
each program's own timing of its functions within spyglass's reported bound, as --blocking
does, on every interpreter.

The programs, their truth and how they are measured: tests/realprograms/ (corpus.py says how a
run goes; each program's docstring what it exercises). Their packages (sympy, networkx) come
from PyPI into an environment per interpreter, cached under .cache/venvs (tests/lib/venvs.py):
the first run on a machine downloads them, later runs reuse them. When PyPI cannot be reached
or a package has no build for an interpreter, that interpreter's tests are skipped and say so.

Each program runs twice at 1 kHz, non-blocking and --blocking (the truth differs between the
two runs, so each is compared with its own); the http.server, the case of the issue, runs once
more non-blocking at 10 kHz, where its bound is about half a percent (corpus.MATRIX). Every run must also profile up to the
program's end and give its re-read and incomplete stack counts.

Tables of every run are printed (`-s`) and listed at the end. One interpreter:
`-k 'real_programs and pyenv-3.12'`. SPYGLASS_REAL_SCALE multiplies the programs' work (longer
runs, tighter bounds).
"""

import os
import sys

import pytest

import support

sys.path.insert(0, str(support.REPO_ROOT / "tests" / "realprograms"))
import corpus  # noqa: E402

SCALE = float(os.environ.get("SPYGLASS_REAL_SCALE", "1"))


def measure(spyglass_bin, interpreter, environment, program, scale, **options):
    if program in corpus.PINNED:
        options.setdefault("cores", corpus.separate_cores())
    measurement = corpus.measure(spyglass_bin, interpreter.path, interpreter.test_id,
                                 environment, corpus.PROGRAMS[program], scale=scale * SCALE,
                                 **options)
    table = measurement.table()
    print(table)
    support.NOTES.append(table)
    return measurement


def problems_of(measurement) -> list:
    problems = ["%s: %s" % (measurement.label, problem)
                for problem in measurement.run_problems()]
    for row in measurement.rows():
        if not row.within:
            problems.append(
                "%s: %s measured %s, truth %.3f s (%+.1f%%): off by more than %g x the bound "
                "%.3f s + margin %.3f s" % (
                    measurement.label, row.function,
                    "no data" if row.measured is None else "%.3f s" % row.measured, row.truth,
                    100 * row.relative, support.BOUND_FACTOR, row.bound, row.margin()))
    return problems


def disagreements(non_blocking, blocking) -> list:
    """Each function whose relative error differs between the two modes by more than their
    bounds combined (plus the margins): the runs differ, so errors are compared, not times."""
    problems = []
    for free, paused in zip(non_blocking.rows(), blocking.rows()):
        if free.truth <= 0 or paused.truth <= 0:
            continue
        allowed = (corpus.combined_bound(free, paused) + free.margin()) / free.truth + (
            paused.margin() / paused.truth)
        if abs(free.relative - paused.relative) > allowed:
            problems.append("%s: non-blocking %+.1f%% of its truth, --blocking %+.1f%%: apart "
                            "by more than %.1f%%" % (free.function, 100 * free.relative,
                                                     100 * paused.relative, 100 * allowed))
    return problems


# Every program is asserted on every interpreter, non-blocking and --blocking. The last known
# gap (issue 12), the recursion program at 1 kHz on 3.8-3.10, whose frames are separate heap
# objects: a stack that changes every few microseconds is often caught mid-change by a
# non-blocking read, re-read (counted), and the re-read lands a little later. Tears happen only
# when the target and spyglass run on different cores, so the recursion runs pinned apart
# (corpus.PINNED). Its parse_expression keeps a bias of -2 to -4 % on 3.8 (20 runs on
# 2026-12-05: means -3.9 % and -2.4 %), a fifth of its bound (15-16 %): every one of those
# runs was within the bound, and the marker that expected failures here is gone
# (docs/accuracy.md). At 10 kHz it is within its bound of about 2 %. On a machine whose reads
# are slower it is larger (2026-12-06, AMD EPYC under KVM: -9 to -13 % on average, within the
# limit in 24 runs of 24; -17 to -20 % and one run in eight outside before that day's changes).
# The threaded servers on 3.12 and 3.13, a known gap until 2026-12-05, are asserted: their
# handler read 9-10 % low in a third of the runs at 10 kHz because a walk followed a freed
# thread's memory for a third of a second (docs/accuracy.md); within 0.1 % since.


@pytest.mark.parametrize("program,rate,scale", [
    pytest.param(program, rate, scale, id="%s-%dHz" % (program, rate))
    for program, rate, with_blocking, scale in corpus.MATRIX if with_blocking])
def test_real_program(spyglass_bin, interpreter, environment, program, rate, scale):
    non_blocking = measure(spyglass_bin, interpreter, environment, program, scale, rate=rate)
    blocking = measure(spyglass_bin, interpreter, environment, program, scale, rate=rate,
                       blocking=True)
    blocking_problems = problems_of(blocking)
    assert not blocking_problems, "\n".join(blocking_problems + [blocking.table()])
    problems = problems_of(non_blocking) + disagreements(non_blocking, blocking)
    assert not problems, "\n".join(problems + [non_blocking.table(), blocking.table()])


@pytest.mark.parametrize("program,rate,scale", [
    pytest.param(program, rate, scale, id="%s-%dHz" % (program, rate))
    for program, rate, with_blocking, scale in corpus.MATRIX if not with_blocking])
def test_real_program_non_blocking(spyglass_bin, interpreter, environment, program, rate,
                                   scale):
    """The server, the issue's case, and the recursion program at 10 kHz: ten times the
    samples make the bound about three times tighter, so a bias of 2 % cannot hide in it."""
    measurement = measure(spyglass_bin, interpreter, environment, program, scale, rate=rate)
    problems = problems_of(measurement)
    assert not problems, "\n".join(problems + [measurement.table()])
