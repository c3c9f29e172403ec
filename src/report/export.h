// Writing a sampling::Profile in the formats other tools read: collapsed ("folded") stacks,
// speedscope JSON, Chrome trace events (Perfetto), pprof (gzip-compressed profile.proto), a
// self-contained interactive flame graph page and a static SVG flame graph. One entry point, one
// function per format behind it.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "report/chosen.h"
#include "sampling/profile.h"

namespace spyglass::report {

enum class Format {
  kCollapsed,
  kSpeedscope,
  kChromeTrace,
  kPprof,
  kFlameGraphHtml,
  kFlameGraphSvg
};

struct ExportOptions {
  // Fold the lines of a function into one frame: "qualname (file)" instead of "qualname (file:N)".
  bool merge_lines = false;
  // Collapsed stacks: start each stack with a frame "thread NAME" (otherwise threads are summed).
  bool thread_roots = false;
  // The chosen functions, to highlight them (flame graph), built for this profile by the
  // caller's query. When null, the profile's `chosen` patterns are matched.
  const ChosenSet* chosen = nullptr;
  std::string title;  // shown by the viewers that have a title; defaults to "spyglass"
};

// "collapsed" (also "folded"), "speedscope", "chrome" (also "perfetto", "trace"), "pprof",
// "flamegraph" (also "html"), "svg".
std::optional<Format> format_from_name(std::string_view name);
// By the file's extension: .folded/.collapsed, .speedscope.json, .trace.json/.perfetto.json,
// .pb.gz/.pprof, .html/.htm, .svg. (.txt is the results table's, .json their JSON: see the CLI.)
std::optional<Format> format_from_extension(std::string_view path);
// The extensions format_from_extension knows, for error messages.
std::string extension_names();
// The name when given, else the extension of `path`.
std::optional<Format> format_from_name_or_extension(std::string_view name, std::string_view path);
const char* format_name(Format format);
// Comma-separated names accepted by format_from_name, for help and error messages.
std::string format_names();

// Writes `profile` in `format`. Binary formats (pprof) need a stream opened in binary mode.
// Throws std::runtime_error when the output cannot be produced (e.g. compression failed).
void write_profile(const sampling::Profile& profile, Format format, const ExportOptions& options,
                   std::ostream& out);

// One call timed by exact mode, for the Chrome trace as a complete ("X") event.
struct TimedCall {
  std::string function;  // qualified name
  std::string file;
  int line = 0;  // the function's first line
  pid_t native_thread_id = 0;
  double start = 0;     // seconds since the run began
  double duration = 0;  // seconds
};

// Exact mode's calls as Chrome trace complete events (one "X" event per call, nested by time),
// with process and thread name metadata. `threads` names the threads (native ids) seen.
void write_chrome_trace_calls(const std::vector<TimedCall>& calls,
                              const std::vector<sampling::ThreadInfo>& threads, int pid,
                              const ExportOptions& options, std::ostream& out);

// Per-format writers, for callers that already know the format.
void write_collapsed(const sampling::Profile& profile, const ExportOptions& options,
                     std::ostream& out);
void write_speedscope(const sampling::Profile& profile, const ExportOptions& options,
                      std::ostream& out);
void write_chrome_trace(const sampling::Profile& profile, const ExportOptions& options,
                        std::ostream& out);
void write_pprof(const sampling::Profile& profile, const ExportOptions& options, std::ostream& out);
void write_flamegraph_html(const sampling::Profile& profile, const ExportOptions& options,
                           std::ostream& out);
// A static SVG flame graph (no script): opens in any browser or image viewer; chosen functions
// in blue, each frame's time and share in its tooltip.
void write_flamegraph_svg(const sampling::Profile& profile, const ExportOptions& options,
                          std::ostream& out);

}  // namespace spyglass::report
