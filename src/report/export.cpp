#include "report/export.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "common/text.h"
#include "report/profile_view.h"

namespace spyglass::report {

using detail::ProfileView;
using sampling::FrameId;
using sampling::FrameInfo;
using sampling::StackId;

namespace {

constexpr const char* kNoPythonFrames = "(no Python frames)";

// Collapsed-stack frames may not hold the separators of the format.
std::string folded_frame(std::string label) {
  for (char& c : label) {
    if (c == ';') c = ',';
    if (c == '\n' || c == '\r') c = ' ';
  }
  return label;
}

std::string thread_label(const sampling::ThreadInfo& thread) {
  if (!thread.name.empty()) return thread.name;
  return "thread " + std::to_string(thread.native_id);
}

// Whether the timeline holds every sample of every thread, so it can stand for time order.
bool timeline_complete(const sampling::Profile& profile) {
  std::vector<uint64_t> spans(profile.threads.size(), 0);
  for (const auto& span : profile.timeline) {
    if (span.thread < spans.size()) spans[span.thread] += span.samples;
  }
  for (size_t t = 0; t < profile.weights.size() && t < spans.size(); ++t) {
    uint64_t weighted = 0;
    for (const auto& [stack, w] : profile.weights[t]) weighted += w.samples;
    if (weighted != spans[t]) return false;
  }
  return true;
}

}  // namespace

std::optional<Format> format_from_name(std::string_view name) {
  std::string key = to_lower(name);
  if (key == "collapsed" || key == "folded") return Format::kCollapsed;
  if (key == "speedscope") return Format::kSpeedscope;
  if (key == "chrome" || key == "perfetto" || key == "trace") return Format::kChromeTrace;
  if (key == "pprof") return Format::kPprof;
  if (key == "flamegraph" || key == "html" || key == "flame") return Format::kFlameGraphHtml;
  if (key == "svg") return Format::kFlameGraphSvg;
  return std::nullopt;
}

std::optional<Format> format_from_extension(std::string_view path) {
  std::string file = to_lower(path);
  if (file.ends_with(".speedscope.json") || file.ends_with(".speedscope")) {
    return Format::kSpeedscope;
  }
  if (file.ends_with(".trace.json") || file.ends_with(".perfetto.json") ||
      file.ends_with(".chrome.json")) {
    return Format::kChromeTrace;
  }
  if (file.ends_with(".pb.gz") || file.ends_with(".pprof") || file.ends_with(".pb")) {
    return Format::kPprof;
  }
  if (file.ends_with(".html") || file.ends_with(".htm")) return Format::kFlameGraphHtml;
  if (file.ends_with(".folded") || file.ends_with(".collapsed")) {
    return Format::kCollapsed;
  }
  if (file.ends_with(".svg")) return Format::kFlameGraphSvg;
  return std::nullopt;
}

std::optional<Format> format_from_name_or_extension(std::string_view name, std::string_view path) {
  if (!name.empty()) return format_from_name(name);
  return format_from_extension(path);
}

const char* format_name(Format format) {
  switch (format) {
    case Format::kCollapsed:
      return "collapsed";
    case Format::kSpeedscope:
      return "speedscope";
    case Format::kChromeTrace:
      return "chrome";
    case Format::kPprof:
      return "pprof";
    case Format::kFlameGraphHtml:
      return "flamegraph";
    case Format::kFlameGraphSvg:
      return "svg";
  }
  return "unknown";
}

std::string format_names() {
  return "flamegraph (html), svg, collapsed (folded), speedscope, chrome "
         "(perfetto), pprof";
}

std::string extension_names() {
  return ".html, .svg, .folded, .collapsed, .speedscope.json, .trace.json, .pb.gz, .pprof";
}

void write_collapsed(const sampling::Profile& profile, const ExportOptions& options,
                     std::ostream& out) {
  // Asyncio tasks under their awaiters; summed over threads, an awaiter that only waits for
  // the tasks drawn under it is drawn through them (see profile_view.h).
  const ProfileView view = detail::make_view(
      profile, options.merge_lines,
      options.thread_roots ? detail::Drawing::kUnderAwaiters : detail::Drawing::kThroughChildren);
  std::vector<std::string> labels(view.frames.size());
  for (FrameId id = 0; id < view.frames.size(); ++id) {
    labels[id] = folded_frame(detail::frame_label(view.frames.get(id)));
  }
  auto stack_text = [&](StackId stack) {
    std::string text;
    for (FrameId frame : detail::frames_of(view, stack)) {
      if (!text.empty()) text += ';';
      text += labels[frame];
    }
    return text.empty() ? std::string(kNoPythonFrames) : text;
  };

  std::vector<std::string> lines;
  if (options.thread_roots) {
    for (size_t t = 0; t < view.thread_weights.size() && t < profile.threads.size(); ++t) {
      const auto& thread = profile.threads[t];
      const std::string root = folded_frame(
          "thread " + (thread.name.empty() ? std::to_string(thread.native_id) : thread.name));
      for (const auto& [stack, weight] : view.thread_weights[t]) {
        std::string frames = stack == sampling::kRootStack ? "" : ";" + stack_text(stack);
        lines.push_back(root + frames + " " + std::to_string(weight.samples));
      }
    }
  } else {
    for (StackId stack = 0; stack < view.self.size(); ++stack) {
      if (view.self[stack].samples == 0) continue;
      lines.push_back(stack_text(stack) + " " + std::to_string(view.self[stack].samples));
    }
  }
  std::sort(lines.begin(), lines.end());
  for (const std::string& line : lines) out << line << '\n';
}

void write_speedscope(const sampling::Profile& profile, const ExportOptions& options,
                      std::ostream& out) {
  // A profile per thread: each task's own samples, drawn under its awaiters.
  const ProfileView view =
      detail::make_view(profile, options.merge_lines, detail::Drawing::kUnderAwaiters);
  nlohmann::json frames = nlohmann::json::array();
  for (FrameId id = 0; id < view.frames.size(); ++id) {
    const FrameInfo& frame = view.frames.get(id);
    nlohmann::json item{{"name", frame.function.empty() ? "<unknown>" : frame.function}};
    if (!frame.file.empty()) item["file"] = frame.file;
    int line = frame.line > 0 ? frame.line : frame.firstlineno;
    if (line > 0) item["line"] = line;
    frames.push_back(std::move(item));
  }

  const size_t thread_count = std::min(profile.threads.size(), view.thread_weights.size());
  std::vector<nlohmann::json> samples(thread_count, nlohmann::json::array());
  std::vector<nlohmann::json> weights(thread_count, nlohmann::json::array());
  std::vector<double> start(thread_count, 0), end(thread_count, 0);
  std::vector<bool> seen(thread_count, false);
  if (timeline_complete(profile)) {
    // In time order, so speedscope's time-ordered view is the real one.
    for (const auto& span : profile.timeline) {
      if (span.thread >= thread_count || span.stack >= view.node_of.size()) continue;
      samples[span.thread].push_back(
          detail::frames_of(view, detail::drawn_node(view, span.prefix, span.stack)));
      weights[span.thread].push_back(std::max(0.0, span.end - span.start));
      if (!seen[span.thread]) start[span.thread] = span.start;
      seen[span.thread] = true;
      end[span.thread] = std::max(end[span.thread], span.end);
    }
    for (size_t t = 0; t < thread_count; ++t) {
      if (!seen[t]) continue;
      double sum = 0;
      for (const auto& w : weights[t]) sum += w.get<double>();
      end[t] = start[t] + sum;
    }
  } else {
    for (size_t t = 0; t < thread_count; ++t) {
      for (const auto& [stack, weight] : view.thread_weights[t]) {
        samples[t].push_back(detail::frames_of(view, stack));
        weights[t].push_back(weight.seconds);
        end[t] += weight.seconds;
      }
    }
  }

  nlohmann::json profiles = nlohmann::json::array();
  for (size_t t = 0; t < thread_count; ++t) {
    const auto& thread = profile.threads[t];
    profiles.push_back(
        {{"type", "sampled"},
         {"name", thread_label(thread) + " (" + std::to_string(thread.native_id) + ")"},
         {"unit", "seconds"},
         {"startValue", start[t]},
         {"endValue", end[t]},
         {"samples", std::move(samples[t])},
         {"weights", std::move(weights[t])}});
  }
  nlohmann::json document{{"$schema", "https://www.speedscope.app/file-format-schema.json"},
                          {"shared", {{"frames", std::move(frames)}}},
                          {"profiles", std::move(profiles)},
                          {"name", options.title.empty() ? "spyglass" : options.title},
                          {"activeProfileIndex", 0},
                          {"exporter", "spyglass"}};
  out << document.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

void write_chrome_trace(const sampling::Profile& profile, const ExportOptions& options,
                        std::ostream& out) {
  // A track per thread: each task's own samples, drawn under its awaiters.
  const ProfileView view =
      detail::make_view(profile, options.merge_lines, detail::Drawing::kUnderAwaiters);
  const int pid = profile.run.pid;
  bool first = true;
  auto emit = [&](const nlohmann::json& event) {
    out << (first ? "\n" : ",\n")
        << event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    first = false;
  };
  out << "{\"displayTimeUnit\":\"ms\",\"otherData\":"
      << nlohmann::json{{"exporter", "spyglass"},
                        {"title", options.title.empty() ? "spyglass" : options.title},
                        {"mode", profile.run.mode},
                        {"python_version", profile.run.python_version},
                        {"rate_hz", profile.run.rate_hz},
                        {"timeline_complete", timeline_complete(profile)}}
             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
      << ",\"traceEvents\":[";
  emit({{"name", "process_name"},
        {"ph", "M"},
        {"pid", pid},
        {"tid", 0},
        {"args", {{"name", "python (pid " + std::to_string(pid) + ")"}}}});
  for (size_t t = 0; t < profile.threads.size(); ++t) {
    emit({{"name", "thread_name"},
          {"ph", "M"},
          {"pid", pid},
          {"tid", profile.threads[t].native_id},
          {"args", {{"name", thread_label(profile.threads[t])}}}});
  }

  // Per thread, the frames open now; each span closes what left the stack and opens what came.
  std::vector<std::vector<FrameId>> open(profile.threads.size());
  std::vector<double> last_end(profile.threads.size(), 0);
  auto micros = [](double seconds) { return std::round(seconds * 1e9) / 1e3; };
  auto close_to = [&](size_t t, size_t keep, double at) {
    auto& frames = open[t];
    while (frames.size() > keep) {
      frames.pop_back();
      emit({{"ph", "E"}, {"pid", pid}, {"tid", profile.threads[t].native_id}, {"ts", micros(at)}});
    }
  };
  constexpr double kGapSeconds = 1e-6;
  for (const auto& span : profile.timeline) {
    if (span.thread >= profile.threads.size() || span.stack >= view.node_of.size()) continue;
    const size_t t = span.thread;
    std::vector<FrameId> frames =
        detail::frames_of(view, detail::drawn_node(view, span.prefix, span.stack));
    // A thread unseen for a while (or timestamps going back) ends what was open.
    double begin = std::max(span.start, last_end[t]);
    if (!open[t].empty() && span.start > last_end[t] + kGapSeconds) close_to(t, 0, last_end[t]);
    size_t common = 0;
    while (common < frames.size() && common < open[t].size() && frames[common] == open[t][common]) {
      ++common;
    }
    close_to(t, common, begin);
    for (size_t i = common; i < frames.size(); ++i) {
      const FrameInfo& frame = view.frames.get(frames[i]);
      nlohmann::json args{{"file", frame.file}};
      if (frame.line > 0) args["line"] = frame.line;
      emit({{"name", frame.function.empty() ? "<unknown>" : frame.function},
            {"cat", "python"},
            {"ph", "B"},
            {"pid", pid},
            {"tid", profile.threads[t].native_id},
            {"ts", micros(begin)},
            {"args", std::move(args)}});
      open[t].push_back(frames[i]);
    }
    last_end[t] = std::max(last_end[t], span.end);
  }
  for (size_t t = 0; t < open.size(); ++t) close_to(t, 0, last_end[t]);
  out << "\n]}\n";
}

void write_chrome_trace_calls(const std::vector<TimedCall>& calls,
                              const std::vector<sampling::ThreadInfo>& threads, int pid,
                              const ExportOptions& options, std::ostream& out) {
  auto dump = [](const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  out << "{\"displayTimeUnit\":\"ms\",\"otherData\":"
      << dump({{"exporter", "spyglass"},
               {"title", options.title.empty() ? "spyglass" : options.title},
               {"mode", "exact"}})
      << ",\"traceEvents\":[\n"
      << dump({{"name", "process_name"},
               {"ph", "M"},
               {"pid", pid},
               {"tid", 0},
               {"args", {{"name", "python (pid " + std::to_string(pid) + ")"}}}});
  for (const auto& thread : threads) {
    out << ",\n"
        << dump({{"name", "thread_name"},
                 {"ph", "M"},
                 {"pid", pid},
                 {"tid", thread.native_id},
                 {"args", {{"name", thread_label(thread)}}}});
  }
  // By start time, outer calls (longer) first at equal starts, so viewers nest them directly.
  std::vector<const TimedCall*> order;
  for (const auto& call : calls) order.push_back(&call);
  std::stable_sort(order.begin(), order.end(), [](const TimedCall* a, const TimedCall* b) {
    if (a->start != b->start) return a->start < b->start;
    return a->duration > b->duration;
  });
  auto micros = [](double seconds) { return std::round(seconds * 1e9) / 1e3; };
  for (const TimedCall* call : order) {
    nlohmann::json args{{"file", call->file}};
    if (call->line > 0) args["line"] = call->line;
    out << ",\n"
        << dump({{"name", call->function.empty() ? "<unknown>" : call->function},
                 {"cat", "python"},
                 {"ph", "X"},
                 {"pid", pid},
                 {"tid", call->native_thread_id},
                 {"ts", micros(call->start)},
                 {"dur", micros(std::max(0.0, call->duration))},
                 {"args", std::move(args)}});
  }
  out << "\n]}\n";
}

void write_profile(const sampling::Profile& profile, Format format, const ExportOptions& options,
                   std::ostream& out) {
  switch (format) {
    case Format::kCollapsed:
      write_collapsed(profile, options, out);
      break;
    case Format::kSpeedscope:
      write_speedscope(profile, options, out);
      break;
    case Format::kChromeTrace:
      write_chrome_trace(profile, options, out);
      break;
    case Format::kPprof:
      write_pprof(profile, options, out);
      break;
    case Format::kFlameGraphHtml:
      write_flamegraph_html(profile, options, out);
      break;
    case Format::kFlameGraphSvg:
      write_flamegraph_svg(profile, options, out);
      break;
  }
  if (!out)
    throw std::runtime_error(std::string("could not write the ") + format_name(format) + " output");
}

}  // namespace spyglass::report
