// The flame graph page: one HTML file that carries d3, d3-flame-graph (both embedded into the
// binary at build time) and the profile as nested {name, value, children} JSON, so it opens
// anywhere without a network.
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "report/export.h"
#include "report/flamegraph_assets.h"
#include "report/profile_view.h"
#include "report/results.h"

namespace spyglass::report {

using sampling::FrameInfo;
using sampling::StackId;

namespace {

// JSON that may sit inside a <script> element: "<", ">" and "&" (which JSON allows only inside
// strings) escaped as \u00XX, so no "</script>" in a name can end the element.
std::string script_safe(const nlohmann::json& value) {
  std::string json = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(json.size());
  for (char c : json) {
    if (c == '<') {
      out += "\\u003c";
    } else if (c == '>') {
      out += "\\u003e";
    } else if (c == '&') {
      out += "\\u0026";
    } else {
      out += c;
    }
  }
  return out;
}

// The trie as nested JSON, written depth first with an explicit stack: stacks can be thousands
// of frames deep.
void write_tree_json(const detail::ProfileView& view, const std::vector<bool>& chosen,
                     const std::string& root_name, std::ostream& out, size_t& node_count) {
  struct Pending {
    StackId node;
    size_t next_child;
  };
  auto open_node = [&](StackId node) {
    const auto& weight = view.inclusive[node];
    std::string name = root_name;
    std::string extra;
    if (node != sampling::kRootStack) {
      const FrameInfo& frame = view.frames.get(view.stacks.frame(node));
      name = detail::frame_label(frame);
      extra = fmt::format(",\"function\":{},\"file\":{},\"line\":{}", script_safe(frame.function),
                          script_safe(frame.file), frame.line > 0 ? frame.line : frame.firstlineno);
      if (chosen[view.stacks.frame(node)]) extra += ",\"chosen\":true";
    }
    out << "{\"name\":" << script_safe(name) << ",\"value\":" << weight.samples
        << ",\"seconds\":" << fmt::format("{:.6f}", weight.seconds)
        << ",\"self\":" << view.self[node].samples << extra << ",\"children\":[";
    ++node_count;
  };
  std::vector<Pending> stack;
  open_node(sampling::kRootStack);
  stack.push_back({sampling::kRootStack, 0});
  while (!stack.empty()) {
    Pending& top = stack.back();
    const auto& children = view.children[top.node];
    if (top.next_child < children.size()) {
      if (top.next_child > 0) out << ',';
      StackId child = children[top.next_child++];
      open_node(child);
      stack.push_back({child, 0});
    } else {
      out << "]}";
      stack.pop_back();
    }
  }
}

constexpr const char* kPageStyle = R"css(
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 16px;
       color: #222; }
header { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; margin-bottom: 8px; }
header h1 { font-size: 18px; margin: 0 12px 0 0; }
header .summary { color: #555; font-size: 13px; }
header input { font-size: 13px; padding: 3px 6px; width: 240px; }
header button { font-size: 13px; }
#details { font-size: 13px; min-height: 1.5em; color: #333; margin: 4px 0; font-family: monospace; }
.legend { font-size: 12px; color: #555; }
.legend span.swatch { display: inline-block; width: 10px; height: 10px; background: #3b7ddd;
                      margin-right: 4px; }
)css";

// Draws the graph, highlights chosen functions, shows time and share on hover, searches by
// substring (d3-flame-graph's own search takes a regular expression, which a typed "(" breaks).
constexpr const char* kPageScript = R"js(
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("spyglass-data").textContent);
  var meta = JSON.parse(document.getElementById("spyglass-meta").textContent);
  var fg = window.flamegraph;
  var total = data.value || 1;
  function seconds(s) {
    if (s >= 1) return s.toFixed(2) + " s";
    if (s >= 1e-3) return (s * 1e3).toFixed(1) + " ms";
    return (s * 1e6).toFixed(0) + " \u00b5s";
  }
  function describe(d) {
    var share = (100 * d.data.value / total).toFixed(2);
    var self = d.data.self || 0;
    return d.data.name + " \u2014 " + seconds(d.data.seconds) + " (" + share + "%), " +
      d.data.value + " samples, " + self + " at the top";
  }
  var width = Math.max(400, document.getElementById("chart").clientWidth || 960);
  var makeChart = typeof fg.default === "function" ? fg.default : fg.flamegraph;
  var chart = makeChart()
    .width(width)
    .cellHeight(18)
    .transitionDuration(300)
    .sort(true)
    .title("")
    .getName(function (d) { return d.data.function || d.data.name; })
    .setLabelHandler(describe)
    .setDetailsElement(document.getElementById("details"))
    .setSearchMatch(function (d, term) {
      if (!term) return false;
      return d.data.name.toLowerCase().indexOf(String(term).toLowerCase()) >= 0;
    })
    .setColorMapper(function (d, original) {
      if (d.highlight) return "#e600e6";
      if (d.data.chosen) return "#3b7ddd";
      return original;
    });
  var tip = fg.tooltip.defaultFlamegraphTooltip().text(describe);
  chart.tooltip(tip);
  d3.select("#chart").datum(data).call(chart);
  var input = document.getElementById("search");
  input.addEventListener("input", function () {
    if (input.value) chart.search(input.value); else chart.clear();
  });
  document.getElementById("reset").addEventListener("click", function () {
    input.value = "";
    chart.clear();
    chart.resetZoom();
  });
  window.spyglassFrameCount = meta.frames;
  document.body.setAttribute("data-frames", String(meta.frames));
  document.body.setAttribute("data-ready", "true");
})();
)js";

}  // namespace

void write_flamegraph_html(const sampling::Profile& profile, const ExportOptions& options,
                           std::ostream& out) {
  const detail::ProfileView view = detail::make_view(profile, options.merge_lines);
  const std::vector<bool> chosen = detail::chosen_frames(view, profile, options);
  const std::string title = options.title.empty() ? "spyglass flame graph" : options.title;
  const auto& run = profile.run;
  std::string summary = fmt::format(
      "{} mode · {} samples · {} · {} threads{}", run.mode, view.total_samples,
      format_seconds(run.duration_seconds > 0 ? run.duration_seconds : view.total_seconds),
      profile.threads.size(), run.pid != 0 ? fmt::format(" · pid {}", run.pid) : "");
  if (!run.python_version.empty()) summary += " · Python " + run.python_version;

  out << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      << "<title>" << detail::markup_text(title) << "</title>\n"
      << "<style>" << assets::flamegraph_css() << "</style>\n"
      << "<style>" << kPageStyle << "</style>\n</head>\n<body>\n"
      << "<header><h1>" << detail::markup_text(title) << "</h1><span class=\"summary\">"
      << detail::markup_text(summary) << "</span>"
      << "<input id=\"search\" type=\"search\" placeholder=\"Search functions\" "
         "aria-label=\"Search functions\">"
      << "<button id=\"reset\" type=\"button\">Reset zoom</button>"
      << "<span class=\"legend\"><span class=\"swatch\"></span>functions chosen for timing; "
         "click a frame to zoom</span></header>\n"
      << "<div id=\"details\"></div>\n<div id=\"chart\"></div>\n";

  out << "<script type=\"application/json\" id=\"spyglass-data\">";
  size_t node_count = 0;
  write_tree_json(view, chosen, "all", out, node_count);
  out << "</script>\n";
  nlohmann::json meta{{"frames", node_count},
                      {"samples", view.total_samples},
                      {"seconds", view.total_seconds},
                      {"chosen", profile.chosen}};
  out << "<script type=\"application/json\" id=\"spyglass-meta\">" << script_safe(meta)
      << "</script>\n";
  // d3 (ISC licence) and d3-flame-graph (Apache-2.0): see third_party/flamegraph.
  out << "<script>" << assets::d3_js() << "</script>\n";
  out << "<script>" << assets::flamegraph_js() << "</script>\n";
  out << "<script>" << kPageScript << "</script>\n</body>\n</html>\n";
}

}  // namespace spyglass::report
