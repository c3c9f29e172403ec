#!/bin/bash
# make sanitize: the test suites that run spyglass's C++ code, against an AddressSanitizer +
# UndefinedBehaviorSanitizer build (ASAN_BUILD, default build-asan; see the Makefile).
#   tests/robustness/sanitize.sh ASAN_BUILD VENV_PYTHON [stage...]
# Stages: unit (ctest), integration, formats, robustness (pytest); default all four.
#
# Every sanitizer report goes to a file under ASAN_BUILD/sanitizer-logs as well as failing the
# process that found it (exit 86 for ASan/LSan, UBSan aborts): a test that does not look at
# spyglass's exit status (SIGKILLed runs, closed pipes) cannot hide a finding, because any log
# file left at the end fails the stage and is printed.
set -uo pipefail
build=$(cd "${1:?usage: sanitize.sh ASAN_BUILD VENV_PYTHON [stage...]}" && pwd)
python=${2:?usage: sanitize.sh ASAN_BUILD VENV_PYTHON [stage...]}
shift 2
stages=("$@")
((${#stages[@]})) || stages=(unit integration formats robustness)
repo=$(cd "$(dirname "$0")/../.." && pwd)
logs=${SANITIZER_LOGS:-$build/sanitizer-logs}
rm -rf "$logs" && mkdir -p "$logs" && chmod 1777 "$logs"  # tests also run spyglass as nobody

# halt_on_error: the first finding ends the process; detect_leaks: LeakSanitizer at exit
# (spyglass ptraces only the target, never itself, so LSan's stop-the-world works);
# detect_stack_use_after_return catches a returned pointer into a walker's stack buffer.
export ASAN_OPTIONS="halt_on_error=1:exitcode=86:detect_leaks=1:print_stacktrace=1:\
detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:\
log_path=$logs/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan"

status=0
run_stage() {
  local name=$1
  shift
  local started=$SECONDS
  echo "sanitize: $name"
  "$@" || { echo "sanitize: $name FAILED"; status=1; }
  echo "sanitize: $name took $((SECONDS - started)) s"
}

cd "$repo"
for stage in "${stages[@]}"; do
  case $stage in
    unit) run_stage unit ctest --test-dir "$build" --output-on-failure -j 2 ;;
    integration)
      # The accuracy tests compare timings with error bounds; ASan makes the sampler 2-3x slower
      # and on a loaded 2-core machine they then fail by chance (seen: 3.8 and 3.13 off by
      # 9-13 %). They still run (the workload through run, attach and record -p is the longest
      # run of the sampler here) and any sanitizer report from them fails the stage, but their
      # timing assertions do not.
      # The real programs likewise (sympy and networkx under load), and fewer of them (below): on
      # all nine interpreters they took half of this stage's ten minutes.
      # The rest of the suite on three of the nine interpreters, one per way of reading a
      # target: 3.10 (frame objects, found through libpython's symbols), Debian's static 3.11
      # (interpreter frames through _PyCFrame, found without libpython) and 3.15 (the debug
      # offsets, the newest frames); tests that take no interpreter run as before. The other six
      # repeat those paths (about 2.5 min under ASan), which the suite's time limit cannot spare;
      # the line-table formats of every version run under ASan in the unit tests (captured
      # images) and the fuzzer. The accuracy tests run on the same three.
      SANITIZED_INTERPRETERS="not (pyenv-3.8 or pyenv-3.9 or pyenv-3.11 or pyenv-3.12 or pyenv-3.13 or debian-unstable-3.14)"
      SPYGLASS_BIN=$build/spyglass run_stage integration \
        "$python" -m pytest -q -ra tests/integration --ignore=tests/integration/test_accuracy.py \
        --ignore=tests/integration/test_real_programs.py --ignore=tests/integration/test_async.py \
        --ignore=tests/integration/test_subprocesses.py \
        -k "$SANITIZED_INTERPRETERS" ${PYTEST_ARGS:-}
      # Worker pools (several processes, the family's watcher thread) on one interpreter per
      # frame model, and the commands' own tests: six minutes on all nine.
      echo "sanitize: subprocesses on pyenv 3.10 and 3.13: sanitizer findings only"
      SPYGLASS_BIN=$build/spyglass "$python" -m pytest -q tests/integration/test_subprocesses.py \
        -k "pyenv-3.10 or pyenv-3.13 or family" ${PYTEST_ARGS:-} | tail -1
      # Async-aware sampling on one interpreter per way of finding tasks (3.10 frame objects,
      # 3.13 interpreter frames with registries, 3.15 the interpreter's task lists), --blocking
      # servers only: all of it on nine interpreters took a minute and a half outside ASan.
      echo "sanitize: async tasks on pyenv 3.10, 3.13 and Debian 3.15: sanitizer findings only"
      SPYGLASS_BIN=$build/spyglass "$python" -m pytest -q tests/integration/test_async.py \
        -k "(pyenv-3.10 or pyenv-3.13 or 3.15) and not nonblocking" ${PYTEST_ARGS:-} | tail -1
      echo "sanitize: integration accuracy tests: sanitizer findings only, timing not enforced"
      SPYGLASS_BIN=$build/spyglass "$python" -m pytest -q tests/integration/test_accuracy.py \
        -k "$SANITIZED_INTERPRETERS" ${PYTEST_ARGS:-} \
        | tail -1
      # Of the real programs, the deep recursion on 3.10 (the deepest and fastest-changing
      # frame objects) and the threaded sympy server on 3.13 (threads coming and going, deep
      # interpreter frames); the others walk the same code with other data.
      echo "sanitize: real programs on pyenv 3.10 and 3.13: sanitizer findings only"
      SPYGLASS_BIN=$build/spyglass "$python" -m pytest -q tests/integration/test_real_programs.py \
        -k "(pyenv-3.10 and recursion) or (pyenv-3.13 and algebra_server)" ${PYTEST_ARGS:-} \
        | tail -1 ;;
    formats)
      SPYGLASS_BUILD=$build run_stage formats \
        "$python" -m pytest -q -ra tests/formats ${PYTEST_ARGS:-} ;;
    robustness)
      SPYGLASS_BIN=$build/spyglass run_stage robustness \
        "$python" -m pytest -q -ra tests/robustness ${PYTEST_ARGS:-} ;;
    *) echo "sanitize: unknown stage $stage"; exit 2 ;;
  esac
done

# Exact mode's extension is left out: it runs inside the user's interpreter, which would have to
# be started with LD_PRELOAD=libasan.so for every interpreter the exact tests use, and ASan then
# reports CPython's own allocations at exit (leaks by design) and its custom allocator's reads.
# Its client is not: `record --exact -s` reads every worker's results (untrusted JSON), merges
# them and starts exact mode from outside (PEP 768, or the pending-call queue before 3.14); the
# pools on one interpreter of each kind run with the sanitized spyglass (the extension as `make
# python` built it), and so does attach --exact by the pending-call queue on 3.8 (the main
# thread's) and 3.12 (any thread's), five attach/detach cycles each.
if [[ " ${stages[*]} " == *" integration "* ]]; then
  echo "sanitize: exact mode across workers (the client) on pyenv 3.12 and Debian 3.15"
  SPYGLASS_BIN=$build/spyglass "$python" -m pytest -q tests/exact/test_family.py \
    -k "(3.12 or 3.15) and not gunicorn" ${PYTEST_ARGS:-} | tail -1
  echo "sanitize: attach --exact by the pending-call queue on pyenv 3.8 and 3.12"
  SPYGLASS_BIN=$build/spyglass SPYGLASS_INJECT_CYCLES=5 "$python" -m pytest -q \
    tests/exact/test_inject.py -k "3.8 or 3.12" ${PYTEST_ARGS:-} | tail -1
fi
echo "sanitize: exact mode's extension not run under sanitizers (it runs inside CPython," \
     "which is not built with ASan; see tests/robustness/sanitize.sh)"

shopt -s nullglob
reports=("$logs"/*)
if ((${#reports[@]})); then
  echo "sanitize: FAILED: ${#reports[@]} sanitizer report(s):"
  for report in "${reports[@]}"; do
    echo "=== $report"
    cat "$report"
  done
  status=1
fi
((status == 0)) && echo "sanitize: clean"
exit $status
