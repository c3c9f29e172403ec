#!/bin/sh
# Fetches Debian unstable's python3.14 (interpreter, stdlib, headers and the glibc it needs)
# into a private folder, for tests on 3.14, without touching the machine's apt configuration.
#
#   scripts/fetch-python314.sh [CACHE_DIR]
#
# CACHE_DIR defaults to $SPYGLASS_CACHE, else <repo>/.cache. Prints the path of a wrapper
# script as its last line: running the wrapper execs the unstable loader on python3.14, so the
# wrapper's PID is the Python process. Idempotent: a second run only checks and prints.
set -eu

fail() {
  echo "fetch-python314: $*" >&2
  exit 1
}

repo_dir=$(cd "$(dirname "$0")/.." && pwd)
cache_dir=${1:-${SPYGLASS_CACHE:-$repo_dir/.cache}}
mkdir -p "$cache_dir" || fail "cannot create $cache_dir"
cache_dir=$(cd "$cache_dir" && pwd)
base="$cache_dir/debian-python3.14"
root="$base/root"
wrapper="$base/python3.14"
# libc6 and libssl3t64: python3.14 needs newer glibc and OpenSSL symbols than an older host has.
packages="python3.14-minimal libpython3.14-minimal libpython3.14-stdlib libpython3.14-dev libc6
libssl3t64"

check_wrapper() {
  "$wrapper" -c 'import sys, threading, asyncio, ssl; assert sys.version_info[:2] == (3, 14)' \
    >/dev/null 2>&1
}

if [ -x "$wrapper" ] && check_wrapper; then
  echo "$wrapper"
  exit 0
fi

command -v apt-get >/dev/null 2>&1 || fail "apt-get is needed (Debian or Ubuntu machine)"
command -v dpkg >/dev/null 2>&1 || fail "dpkg is needed"

# The mirror the machine already uses: the first URI of a deb822 .sources file, else the first
# `deb` line of sources.list.
mirror=""
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
[ -n "$mirror" ] || fail "no Debian mirror found in /etc/apt/sources.list{,.d}"

apt_dir="$base/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs" \
  "$apt_dir/preferences.d"
: >"$apt_dir/status"

# Verify unstable's Release file with the machine's Debian keyring (this works as long as the
# machine's keyring knows the archive keys unstable is signed with). Only when it does not - an
# old machine, after an archive key rotation - fall back to trust on first use: fetch unstable's
# own debian-archive-keyring through an unverified ([trusted=yes]) index, then verify the
# Release file and every package with that keyring. This is weaker than the first path and
# says so on stderr.
write_sources() {
  printf 'deb [%s] %s unstable main\n' "$1" "$mirror" >"$apt_dir/sources.list"
}

apt_private() {
  apt-get -q \
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
    "$@"
}

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || fail "$keyring is missing (apt-get install debian-archive-keyring)"
write_sources "signed-by=$keyring"
signature_trouble='NO_PUBKEY|EXPKEYSIG|GPG error|is not signed|signature'
if ! apt_private update >"$apt_dir/update.log" 2>&1 &&
  ! grep -Eqi "$signature_trouble" "$apt_dir/update.log"; then
  fail "apt-get update of unstable from $mirror failed, see $apt_dir/update.log"
fi
if grep -Eqi "$signature_trouble" "$apt_dir/update.log"; then
  echo "fetch-python314: the machine's keyring does not verify unstable;" \
    "using unstable's own debian-archive-keyring (trust on first use)" >&2
  write_sources "trusted=yes"
  apt_private update >"$apt_dir/update-keyring.log" 2>&1 ||
    fail "apt-get update of unstable failed, see $apt_dir/update-keyring.log"
  (cd "$apt_dir/debs" && apt_private download debian-archive-keyring) \
    >>"$apt_dir/update-keyring.log" 2>&1 || fail "cannot download unstable's debian-archive-keyring"
  keyring_root="$apt_dir/keyring-root"
  rm -rf "$keyring_root"
  dpkg -x "$apt_dir"/debs/debian-archive-keyring_*.deb "$keyring_root" ||
    fail "cannot unpack debian-archive-keyring"
  keyring="$keyring_root/usr/share/keyrings/debian-archive-keyring.gpg"
  [ -f "$keyring" ] || keyring=$(ls "$keyring_root"/usr/share/keyrings/*.gpg | head -n 1)
  rm -rf "$apt_dir/lists"
  mkdir -p "$apt_dir/lists/partial"
  write_sources "signed-by=$keyring"
  apt_private update >"$apt_dir/update.log" 2>&1 ||
    fail "apt-get update of unstable failed even with its own keyring, see $apt_dir/update.log"
  if grep -Eqi "$signature_trouble" "$apt_dir/update.log"; then
    fail "unstable's Release signature did not verify, see $apt_dir/update.log"
  fi
fi

# shellcheck disable=SC2086 # the package list is meant to split
(cd "$apt_dir/debs" && apt_private download $packages) >"$apt_dir/download.log" 2>&1 ||
  fail "apt-get download failed, see $apt_dir/download.log"

rm -rf "$root"
mkdir -p "$root"
for package in $packages; do
  deb=$(ls -t "$apt_dir/debs/${package}"_*.deb 2>/dev/null | head -n 1)
  [ -n "$deb" ] || fail "no .deb downloaded for $package"
  dpkg -x "$deb" "$root" || fail "cannot unpack $deb"
done

loader="$root/usr/lib64/ld-linux-x86-64.so.2"
[ -e "$loader" ] || loader="$root/lib64/ld-linux-x86-64.so.2"
[ -e "$loader" ] || fail "the unstable glibc loader is missing from $root"
[ -x "$root/usr/bin/python3.14" ] || fail "python3.14 is missing from $root"

lib_path="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu"
cat >"$wrapper" <<EOF
#!/bin/sh
# Runs Debian unstable's python3.14 through unstable's own loader (it needs a newer glibc than
# this machine's). exec keeps this script's PID for the Python process.
PYTHONHOME="$root/usr"
export PYTHONHOME
exec "$loader" --library-path "$lib_path" "$root/usr/bin/python3.14" "\$@"
EOF
chmod +x "$wrapper"

check_wrapper || fail "$wrapper does not run (try: $wrapper -c 'import asyncio')"
echo "$wrapper"
