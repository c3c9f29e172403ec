#!/usr/bin/env bash
# Refreshes the flame graph viewer vendored under third_party/flamegraph/: the minified d3 and
# d3-flame-graph bundles with their licences, fetched from npm with `npm pack` (no install, no
# scripts run). CMake embeds these files into the spyglass binary at build time
# (src/report/embed_assets.cmake), so neither npm nor a network is needed to build or to view a graph.
# Usage: scripts/vendor-flamegraph.sh [D3_VERSION] [D3_FLAME_GRAPH_VERSION]
set -euo pipefail
d3_version=${1:-7.9.2}
flamegraph_version=${2:-5.0.0}
root=$(cd "$(dirname "$0")/.." && pwd)
dest=$root/third_party/flamegraph
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$work"
npm pack --silent "d3@$d3_version" "d3-flame-graph@$flamegraph_version" >/dev/null
mkdir d3 d3-flame-graph
tar xzf "d3-$d3_version.tgz" -C d3
tar xzf "d3-flame-graph-$flamegraph_version.tgz" -C d3-flame-graph

rm -rf "$dest/d3" "$dest/d3-flame-graph"
mkdir -p "$dest/d3" "$dest/d3-flame-graph"
cp d3/package/dist/d3.min.js d3/package/LICENSE "$dest/d3/"
cp d3-flame-graph/package/dist/d3-flamegraph.umd.min.js d3-flame-graph/package/dist/d3-flamegraph.css \
   d3-flame-graph/package/LICENSE "$dest/d3-flame-graph/"
cat > "$dest/VERSIONS" <<VERSIONS
d3 $d3_version (ISC licence) from npm: dist/d3.min.js
d3-flame-graph $flamegraph_version (Apache-2.0 licence) from npm: dist/d3-flamegraph.umd.min.js, dist/d3-flamegraph.css
Refresh with scripts/vendor-flamegraph.sh [D3_VERSION] [D3_FLAME_GRAPH_VERSION].
VERSIONS
# The page inlines these files inside <script> elements: they must not close one early.
if grep -qi '</script' "$dest"/d3/d3.min.js "$dest"/d3-flame-graph/d3-flamegraph.umd.min.js; then
  echo "vendor-flamegraph: a bundle contains '</script': the page could not inline it" >&2
  exit 1
fi
echo "vendored d3 $d3_version and d3-flame-graph $flamegraph_version into $dest"
