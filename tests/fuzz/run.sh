#!/bin/bash
# Bounded fuzzing run (make fuzz): replays the regression inputs, builds the seed corpus from
# live captures, then fuzzes the walker (3/4 of the time) and the line-table decoder (1/4).
#   tests/fuzz/run.sh FUZZ_BUILD_DIR SPYGLASS_BIN SECONDS
# Crashes are saved in FUZZ_BUILD_DIR/fuzz-artifacts/; the run fails on any.
set -euo pipefail
build=$(realpath "$1")
spyglass=$2
seconds=${3:-60}
here=$(cd "$(dirname "$0")" && pwd)
work=$build/fuzz-work
artifacts=$build/fuzz-artifacts
mkdir -p "$work/walker" "$work/linetable" "$artifacts"

# Crash inputs found earlier and fixed: each must now run clean.
regressions=("$here"/regressions/walker-*)
if [ -e "${regressions[0]}" ]; then
  "$build/tests/fuzz/fuzz_walker" "${regressions[@]}" 2>&1 | tail -n 2
fi

python3 "$here/make_corpus.py" "$spyglass" "$build/fuzz-seeds"

walker_seconds=$(( seconds * 3 / 4 ))
linetable_seconds=$(( seconds - walker_seconds ))
run() {
  local name=$1 secs=$2 status=0; shift 2
  echo "fuzz: $name for $secs s"
  # -rss_limit_mb: a walk that grows without bound is a failure too. -timeout: a hang.
  "$build/tests/fuzz/$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/$name-" -print_final_stats=1 "$@" > "$work/$name.log" 2>&1 ||
    status=$?
  grep -E "stat::number_of_executed_units|stat::new_units_added|^Done|ERROR|SUMMARY" \
    "$work/$name.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$work/$name.log"
    echo "fuzz: $name FAILED (exit $status); input saved in $artifacts"
    exit 1
  fi
}
run fuzz_walker "$walker_seconds" -max_len=262144 "$work/walker" "$build/fuzz-seeds"
run fuzz_linetable "$linetable_seconds" -max_len=4096 "$work/linetable"
echo "fuzz: no crash in $seconds s"
