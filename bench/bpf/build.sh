#!/bin/sh
# Builds the in-kernel sampler prototype into bench/bpf/build/: the BPF object (clang -target
# bpf), its skeleton (bpftool gen skeleton), and the loader `pysample`, linked with spyglass's
# own libraries from the main build (BUILD, default the repository's build/; built there with ninja
# when missing) and libbpf statically (libbpf-dev: apt-get install -y libbpf-dev).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${BUILD:-$repo/build}
out=$here/build
mkdir -p "$out"
libs="src/cpython/libspyglass_cpython.a src/process/libspyglass_process.a src/common/libspyglass_common.a"
for lib in $libs; do
  [ -f "$build/$lib" ] || { ninja -C "$build" spyglass_cpython spyglass_process spyglass_common; break; }
done
clang -target bpf -O2 -g -Wall -I/usr/include/x86_64-linux-gnu -c "$here/pysample.bpf.c" \
  -o "$out/pysample.bpf.o"
bpftool gen skeleton "$out/pysample.bpf.o" name pysample >"$out/pysample.skel.h"
set --
for lib in $libs; do set -- "$@" "$build/$lib"; done
${CXX:-c++} -std=c++20 -O2 -g -Wall -Wextra -Wno-missing-field-initializers \
  -DFMT_HEADER_ONLY=1 -DTOML_HEADER_ONLY=1 -I"$repo/src" -I"$here" -I"$out" \
  "$here/loader.cpp" -o "$out/pysample" \
  "$@" /usr/lib/x86_64-linux-gnu/libbpf.a /usr/lib/x86_64-linux-gnu/libelf.a \
  /usr/lib/x86_64-linux-gnu/libz.a -lpthread
echo "$out/pysample"
