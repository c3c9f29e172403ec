#!/bin/sh
# `make python PYTHON=/path/to/python`: builds exact mode's extension for that interpreter (pip
# or not) in a build folder of its own, assembles a package folder (the module and
# python/spyglass/*.py) and prints that folder, to put on PYTHONPATH, as its last line.
#
# The interpreter is asked for its header folder and extension suffix; no python3.X-config and
# no development package lookup is needed. For an interpreter run through a private loader
# (Debian unstable's 3.14+ from scripts/fetch-python.sh), headers are looked for under the
# `root/` folder beside the wrapper; PYTHON_INCLUDE overrides. The build root is the second
# argument, else $SPYGLASS_PYTHON_BUILD, else build-python/ (so that `make python`, the tests and
# the benchmark can be pointed at a private folder).
set -eu

python=${1:?usage: make_python.sh PYTHON [BUILD_ROOT]}
repo=$(cd "$(dirname "$0")/../.." && pwd)
build_root=${2:-${SPYGLASS_PYTHON_BUILD:-$repo/build-python}}

info=$("$python" -c 'import sys, sysconfig
print("%d.%d" % sys.version_info[:2])
print(sysconfig.get_config_var("EXT_SUFFIX") or ".so")
print(sysconfig.get_paths()["include"])')
version=$(echo "$info" | sed -n 1p)
suffix=$(echo "$info" | sed -n 2p)
include=$(echo "$info" | sed -n 3p)

includes=""
if [ -n "${PYTHON_INCLUDE:-}" ]; then
  includes=$PYTHON_INCLUDE
elif [ -f "$include/Python.h" ]; then
  includes=$include
  # Debian's pyconfig.h includes <x86_64-linux-gnu/python3.X/pyconfig.h> from the folder above
  # (already searched when that folder is /usr/include itself).
  parent=$(dirname "$include")
  multiarch=$(gcc -print-multiarch 2>/dev/null || true)
  if [ -n "$multiarch" ] && [ -d "$parent/$multiarch" ] && [ "$parent" != /usr/include ]; then
    includes="$include;$parent"
  fi
else
  private_root="$(dirname "$python")/root"
  if [ -f "$private_root$include/Python.h" ]; then
    # Debian's pyconfig.h includes <x86_64-linux-gnu/python3.X/pyconfig.h>: the root's
    # /usr/include is needed as well.
    includes="$private_root$include;$private_root/usr/include"
  fi
fi
[ -n "$includes" ] || { echo "make_python: no Python.h for $python (set PYTHON_INCLUDE)" >&2; exit 1; }

generator=""
command -v ninja >/dev/null 2>&1 && generator="-G Ninja"

# The interpreter-independent part (results, patterns, clock, TOML, the socket client), built
# once for every interpreter; a lock keeps concurrent `make python` runs from racing on it.
common="$build_root/common"
mkdir -p "$build_root"
(
  flock 9
  if [ ! -f "$common/CMakeCache.txt" ]; then
    # shellcheck disable=SC2086
    cmake -S "$repo" -B "$common" $generator -DCMAKE_BUILD_TYPE=Release \
      -DSPYGLASS_EXTENSION=ON -DSPYGLASS_EXACT_COMMON_ONLY=ON -DSPYGLASS_CLI=OFF \
      -DSPYGLASS_TESTS=OFF >&2
  fi
  cmake --build "$common" --target spyglass_exact_common spyglass-exact-ctl >&2
) 9>"$build_root/.common.lock"
common_lib="$common/src/extension/libspyglass_exact_common.a"

tag=$(printf '%s' "$(readlink -f "$(command -v "$python")")" | cksum | cut -d' ' -f1)
build="$build_root/py$version-$tag"
# shellcheck disable=SC2086
cmake -S "$repo" -B "$build" $generator -DCMAKE_BUILD_TYPE=Release \
  -DSPYGLASS_EXTENSION=ON -DSPYGLASS_CLI=OFF -DSPYGLASS_TESTS=OFF \
  -DPython_EXECUTABLE="$python" -DPython_INCLUDE_DIR="$includes" \
  -DSPYGLASS_EXTENSION_SUFFIX="$suffix" -DSPYGLASS_EXACT_COMMON_LIB="$common_lib" >/dev/null
cmake --build "$build" --target _spyglass >&2

package="$build/package"
rm -rf "$package/spyglass"
mkdir -p "$package/spyglass"
cp "$repo"/python/spyglass/*.py "$package/spyglass/"
cp "$build/src/extension/_spyglass$suffix" "$package/spyglass/"
echo "$package"
