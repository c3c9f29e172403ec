#!/bin/bash
# make valgrind: `spyglass dump` and a short `spyglass record` against a real target under
# valgrind (memcheck, full leak check). Any error or definite/indirect leak fails the run.
#   tests/robustness/valgrind.sh SPYGLASS_BIN [PYTHON]
set -euo pipefail
spyglass=$1
python=${2:-python3}
here=$(cd "$(dirname "$0")" && pwd)
valgrind=(valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect
          --show-leak-kinds=definite,indirect --track-fds=no --quiet
          --suppressions="$here/valgrind.supp")

log=$(mktemp)
"$python" "$here/programs/many_threads.py" 4 > "$log" &
target=$!
trap 'kill $target 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q ready "$log" && break; sleep 0.1; done
grep -q ready "$log" || { echo "valgrind: the target never got ready"; exit 1; }

echo "valgrind: spyglass dump $target"
"${valgrind[@]}" "$spyglass" dump "$target" > /dev/null
echo "valgrind: spyglass dump --json $target"
"${valgrind[@]}" "$spyglass" dump --json "$target" > /dev/null
echo "valgrind: spyglass record -p $target -d 2"
"${valgrind[@]}" "$spyglass" record -p "$target" -r 200 -d 2 -f blocked_worker > /dev/null
echo "valgrind: clean"
