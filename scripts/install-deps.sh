#!/usr/bin/env bash
# Installs the Debian packages spyglass builds and tests with, only those missing.
# Usage: scripts/install-deps.sh [build|test|bench]  (each level includes the previous one)
# test: chromium loads the flame graph page, npm fetches speedscope's schema (tests/formats).
# valgrind: `make valgrind` (tests/robustness/valgrind.sh).
set -euo pipefail
level=${1:-build}
pkgs=(cmake ninja-build g++ make pkg-config libfmt-dev libcli11-dev nlohmann-json3-dev
      libtomlplusplus-dev libedit-dev libelf-dev zlib1g-dev libncurses-dev libbsd-dev python3 python3-venv)
if [[ $level == test || $level == bench ]]; then
  pkgs+=(libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev protobuf-compiler xz-utils ca-certificates
         valgrind
         apt-utils curl chromium)
  # npm fetches speedscope's schema; a nodejs that ships its own npm needs no Debian npm.
  command -v npm >/dev/null || pkgs+=(nodejs npm)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "spyglass: installing Debian packages: ${missing[*]}" >&2
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
