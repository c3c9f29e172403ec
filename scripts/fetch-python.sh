#!/bin/sh
# Fetches Debian unstable's python3.X (interpreter, stdlib, the libpython3.X-dev headers, the
# glibc and OpenSSL it needs, and pip as a wheel) into a private folder per version, for tests on
# CPython versions this machine does not have, without touching the machine's apt configuration.
#
#   scripts/fetch-python.sh [--cache DIR] VERSION...      e.g. scripts/fetch-python.sh 3.14 3.15
#
# VERSION is 3.X (or just X). DIR defaults to $SPYGLASS_CACHE, else <repo>/.cache; version 3.X
# lands in DIR/debian-python3.X. Prints, in the order asked, the path of one wrapper script per
# version fetched: running the wrapper execs unstable's own loader on python3.X, so the wrapper's
# PID is the Python process, and passes its own path as argv[0], which makes it the interpreter's
# sys.executable: subprocesses (multiprocessing, `-m venv`, pip's build environments) run through
# the loader too. pip, which Debian does not install for these versions, is at
# DIR/debian-python3.X/root/usr/share/python-wheels/pip-*.whl. A version that cannot be had gets one line on stderr
# ("fetch-python: 3.X: why") and no line on stdout; the exit status is then 1. Idempotent: a
# version already fetched is only checked, without any network access.
set -eu

say() {
  echo "fetch-python: $*" >&2
}

fail() {
  say "$*"
  exit 1
}

repo_dir=$(cd "$(dirname "$0")/.." && pwd)
cache_dir=${SPYGLASS_CACHE:-$repo_dir/.cache}
if [ "${1:-}" = "--cache" ]; then
  [ $# -ge 2 ] || fail "--cache needs a folder"
  cache_dir=$2
  shift 2
fi
[ $# -ge 1 ] || fail "usage: scripts/fetch-python.sh [--cache DIR] VERSION... (e.g. 3.14 3.15)"
mkdir -p "$cache_dir" || fail "cannot create $cache_dir"
cache_dir=$(cd "$cache_dir" && pwd)
# One apt state (unstable's package lists and downloaded .debs) serves every version.
apt_dir="$cache_dir/debian-unstable-apt"

# "3.15" or "15" -> "3.15"; anything else is refused.
normalise() {
  case "$1" in
    3.[0-9] | 3.[0-9][0-9]) echo "$1" ;;
    [0-9] | [0-9][0-9]) echo "3.$1" ;;
    *) return 1 ;;
  esac
}

# The wrapper runs, is the version asked, has the modules the tests use, is its own
# sys.executable, and runs from this version's own root (not from a cache copied from another
# checkout).
check_wrapper() { # version wrapper root
  [ -x "$2" ] && grep -q "PYTHONHOME=\"$3/usr\"" "$2" 2>/dev/null || return 1
  minor=${1#3.}
  "$2" -c "import sys, threading, asyncio, ssl, ctypes
assert sys.version_info[:2] == (3, $minor) and sys.executable == '$2'" >/dev/null 2>&1
}

mirror=""
find_mirror() {
  # The mirror the machine already uses: the first URI of a deb822 .sources file, else the first
  # `deb` line of sources.list.
  for sources in /etc/apt/sources.list.d/*.sources; do
    [ -f "$sources" ] || continue
    mirror=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
      "$sources")
    [ -n "$mirror" ] && break
  done
  if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1 == "deb" && $0 !~ /security/ {
                    for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
      /etc/apt/sources.list)
  fi
  [ -n "$mirror" ]
}

write_sources() {
  printf 'deb [%s] %s unstable main\n' "$1" "$mirror" >"$apt_dir/sources.list"
}

apt_private() { # apt-get or apt-cache, then its arguments
  tool=$1
  shift
  "$tool" -q \
    -o Dir::Etc::SourceList="$apt_dir/sources.list" \
    -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::Etc::Preferences=/dev/null \
    -o Dir::Etc::PreferencesParts="$apt_dir/preferences.d" \
    -o Dir::State::Lists="$apt_dir/lists" \
    -o Dir::Cache="$apt_dir/cache" \
    -o Dir::State::Status="$apt_dir/status" \
    -o APT::Architecture=amd64 \
    -o APT::Architectures::=amd64 \
    -o Debug::NoLocking=1 \
    -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
    "$@"
}

# Reads unstable's package lists once per run (prints why on stderr and fails when it cannot).
# Verifies unstable's Release file with the machine's Debian keyring (this works as long as the
# machine's keyring knows the archive keys unstable is signed with). Only when it does not - an
# old machine, after an archive key rotation - falls back to trust on first use: fetches
# unstable's own debian-archive-keyring through an unverified ([trusted=yes]) index, then
# verifies the Release file and every package with that keyring. This is weaker than the first
# path and says so on stderr.
apt_ready=""
update_unstable() {
  [ "$apt_ready" != failed ] || return 1
  [ -z "$apt_ready" ] || return 0
  apt_ready=failed # until it works
  command -v apt-get >/dev/null 2>&1 || { say "apt-get is needed (Debian or Ubuntu machine)"; return 1; }
  command -v dpkg >/dev/null 2>&1 || { say "dpkg is needed"; return 1; }
  find_mirror || { say "no Debian mirror found in /etc/apt/sources.list{,.d}"; return 1; }
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs" \
    "$apt_dir/preferences.d"
  : >"$apt_dir/status"
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -f "$keyring" ] || { say "$keyring is missing (apt-get install debian-archive-keyring)"; return 1; }
  write_sources "signed-by=$keyring"
  signature_trouble='NO_PUBKEY|EXPKEYSIG|GPG error|is not signed|signature'
  if ! apt_private apt-get update >"$apt_dir/update.log" 2>&1 &&
    ! grep -Eqi "$signature_trouble" "$apt_dir/update.log"; then
    say "apt-get update of unstable from $mirror failed, see $apt_dir/update.log"
    return 1
  fi
  if grep -Eqi "$signature_trouble" "$apt_dir/update.log"; then
    say "the machine's keyring does not verify unstable;" \
      "using unstable's own debian-archive-keyring (trust on first use)"
    write_sources "trusted=yes"
    if ! apt_private apt-get update >"$apt_dir/update-keyring.log" 2>&1; then
      say "apt-get update of unstable failed, see $apt_dir/update-keyring.log"
      return 1
    fi
    if ! (cd "$apt_dir/debs" && apt_private apt-get download debian-archive-keyring) \
      >>"$apt_dir/update-keyring.log" 2>&1; then
      say "cannot download unstable's debian-archive-keyring"
      return 1
    fi
    keyring_root="$apt_dir/keyring-root"
    rm -rf "$keyring_root"
    dpkg -x "$apt_dir"/debs/debian-archive-keyring_*.deb "$keyring_root" ||
      { say "cannot unpack debian-archive-keyring"; return 1; }
    keyring="$keyring_root/usr/share/keyrings/debian-archive-keyring.gpg"
    [ -f "$keyring" ] || keyring=$(ls "$keyring_root"/usr/share/keyrings/*.gpg | head -n 1)
    rm -rf "$apt_dir/lists"
    mkdir -p "$apt_dir/lists/partial"
    write_sources "signed-by=$keyring"
    if ! apt_private apt-get update >"$apt_dir/update.log" 2>&1; then
      say "apt-get update of unstable failed even with its own keyring, see $apt_dir/update.log"
      return 1
    fi
    if grep -Eqi "$signature_trouble" "$apt_dir/update.log"; then
      say "unstable's Release signature did not verify, see $apt_dir/update.log"
      return 1
    fi
  fi
  # apt-get update exits 0 when it could not reach the mirror at all: no package list then.
  if ! ls "$apt_dir"/lists/*_Packages* >/dev/null 2>&1; then
    say "could not read Debian unstable's package list from $mirror (network or registry" \
      "unreachable?), see $apt_dir/update.log"
    return 1
  fi
  apt_ready=1
}

# Fetches one version into its folder and writes its wrapper; prints why and fails otherwise.
fetch_version() { # version base root wrapper
  version=$1 base=$2 root=$3 wrapper=$4
  update_unstable || { say "$version: not fetched (Debian unstable's package list: see above)"; return 1; }
  # libc6 and libssl3t64: unstable's python needs newer glibc and OpenSSL symbols than an older
  # host has. The other libraries it links (libffi, zlib, expat...) come from the host.
  packages="python$version-minimal libpython$version-minimal libpython$version-stdlib
libpython$version-dev libc6 libssl3t64 python3-pip-whl"
  if ! apt_private apt-cache show "python$version-minimal" >/dev/null 2>&1; then
    say "$version: Debian unstable has no python$version-minimal"
    return 1
  fi
  mkdir -p "$base"
  # shellcheck disable=SC2086 # the package list is meant to split
  if ! (cd "$apt_dir/debs" && apt_private apt-get download $packages) >"$base/download.log" 2>&1; then
    say "$version: apt-get download failed, see $base/download.log"
    return 1
  fi
  rm -rf "$root"
  mkdir -p "$root"
  for package in $packages; do
    deb=$(ls -t "$apt_dir/debs/${package}"_*.deb 2>/dev/null | head -n 1)
    [ -n "$deb" ] || { say "$version: no .deb downloaded for $package"; return 1; }
    dpkg -x "$deb" "$root" || { say "$version: cannot unpack $deb"; return 1; }
  done
  loader="$root/usr/lib64/ld-linux-x86-64.so.2"
  [ -e "$loader" ] || loader="$root/lib64/ld-linux-x86-64.so.2"
  [ -e "$loader" ] || { say "$version: the unstable glibc loader is missing from $root"; return 1; }
  [ -x "$root/usr/bin/python$version" ] || { say "$version: python$version is missing from $root"; return 1; }
  lib_path="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu"
  cat >"$wrapper" <<EOF
#!/bin/sh
# Runs Debian unstable's python$version through unstable's own loader (it needs a newer glibc
# than this machine's). exec keeps this script's PID for the Python process; --argv0 makes the
# path this script was run by (itself, or a venv's link to it) the interpreter's sys.executable.
PYTHONHOME="$root/usr"
export PYTHONHOME
exec "$loader" --library-path "$lib_path" --argv0 "\$0" "$root/usr/bin/python$version" "\$@"
EOF
  chmod +x "$wrapper"
  check_wrapper "$version" "$wrapper" "$root" ||
    { say "$version: $wrapper does not run (try: $wrapper -c 'import asyncio, ctypes')"; return 1; }
}

status=0
for asked in "$@"; do
  if ! version=$(normalise "$asked"); then
    say "$asked: not a CPython 3 minor version (expected 3.X or X)"
    status=1
    continue
  fi
  base="$cache_dir/debian-python$version"
  root="$base/root"
  wrapper="$base/python$version"
  if check_wrapper "$version" "$wrapper" "$root" || fetch_version "$version" "$base" "$root" "$wrapper"; then
    echo "$wrapper"
  else
    status=1
  fi
done
exit $status
