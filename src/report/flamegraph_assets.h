// The flame graph viewer (d3 and d3-flame-graph, vendored under third_party/flamegraph), embedded
// into the binary at build time by src/report/embed_assets.cmake.
#pragma once

#include <string_view>

namespace spyglass::report::assets {

std::string_view d3_js();
std::string_view flamegraph_js();
std::string_view flamegraph_css();

}  // namespace spyglass::report::assets
