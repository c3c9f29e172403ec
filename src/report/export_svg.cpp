// The static flame graph: one SVG image, no script, so it shows the same in a browser, an image
// viewer or a code review. The root is at the bottom, callers below callees, each frame as wide
// as its share of the samples; chosen functions are blue, the rest warm colours picked by name
// (the same function has the same colour everywhere). Hovering shows a frame's full name, time
// and share (an SVG <title>).
#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

#include "report/export.h"
#include "report/profile_view.h"
#include "report/results.h"

namespace spyglass::report {

using sampling::FrameInfo;
using sampling::StackId;

namespace {

constexpr double kWidth = 1200;
constexpr double kMargin = 10;
constexpr double kFrameHeight = 16;
constexpr double kFontSize = 11;
constexpr double kCharWidth = kFontSize * 0.6;  // a generous average for the fonts listed below
constexpr double kHeaderHeight = 64;
constexpr double kMinFrameWidth = 0.1;  // narrower frames (and what they call) are left out
constexpr const char* kChosenColour = "#3b7ddd";

// Characters (not bytes) of a UTF-8 string, for fitting labels.
size_t char_count(const std::string& text) {
  size_t count = 0;
  for (unsigned char c : text) count += (c & 0xc0) != 0x80;
  return count;
}

// The first `chars` characters of `text`, cut at a character boundary.
std::string first_chars(const std::string& text, size_t chars) {
  size_t seen = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xc0) != 0x80) {
      if (seen == chars) return text.substr(0, i);
      ++seen;
    }
  }
  return text;
}

// A warm colour from the function's name (FNV-1a), as flame graphs draw CPU frames.
std::string warm_colour(const std::string& name) {
  uint32_t h = 2166136261u;
  for (unsigned char c : name) h = (h ^ c) * 16777619u;
  int r = 205 + static_cast<int>(h % 50);
  int g = static_cast<int>((h >> 8) % 190);
  int b = static_cast<int>((h >> 16) % 55);
  return fmt::format("#{:02x}{:02x}{:02x}", r, g, b);
}

struct Placed {
  StackId node;
  uint32_t depth;
  double x;  // in samples from the left
};

}  // namespace

void write_flamegraph_svg(const sampling::Profile& profile, const ExportOptions& options,
                          std::ostream& out) {
  const detail::ProfileView view = detail::make_view(profile, options.merge_lines);
  const std::vector<bool> chosen = detail::chosen_frames(view, profile, options);

  // Place the frames wide enough to see, depth first with an explicit stack (stacks can be
  // thousands of frames deep).
  const double total = static_cast<double>(std::max<uint64_t>(view.inclusive[0].samples, 1));
  const double scale = (kWidth - 2 * kMargin) / total;  // pixels per sample
  std::vector<Placed> placed;
  uint64_t left_out = 0;
  uint32_t max_depth = 0;
  std::vector<Placed> pending{{sampling::kRootStack, 0, 0}};
  while (!pending.empty()) {
    Placed p = pending.back();
    pending.pop_back();
    placed.push_back(p);
    max_depth = std::max(max_depth, p.depth);
    double x = p.x;
    for (StackId child : view.children[p.node]) {
      const double samples = static_cast<double>(view.inclusive[child].samples);
      if (samples * scale < kMinFrameWidth) {
        ++left_out;
      } else {
        pending.push_back({child, p.depth + 1, x});
      }
      x += samples;
    }
  }

  const double height = kHeaderHeight + (max_depth + 1) * kFrameHeight + 2 * kMargin + 16;
  const std::string title = options.title.empty() ? "spyglass flame graph" : options.title;
  const auto& run = profile.run;
  const double seconds = run.duration_seconds > 0 ? run.duration_seconds : view.total_seconds;
  std::string summary =
      fmt::format("{} mode · {} samples · {} · {} threads{}", run.mode, view.total_samples,
                  format_seconds(seconds), profile.threads.size(),
                  run.pid != 0 ? fmt::format(" · pid {}", run.pid) : "");
  if (!run.python_version.empty()) summary += " · Python " + run.python_version;

  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << fmt::format(
             "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{0}\" "
             "height=\"{1}\" viewBox=\"0 0 {0} {1}\" font-family=\"Verdana, DejaVu Sans, "
             "sans-serif\" font-size=\"{2}\">\n",
             kWidth, height, kFontSize)
      << "<title>" << detail::markup_text(title) << "</title>\n"
      << "<style>g.f:hover rect { stroke: #000; stroke-width: 0.5; } text { pointer-events: none; }"
      << "</style>\n"
      << fmt::format("<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#fdfaf4\"/>\n",
                     kWidth, height)
      << fmt::format("<text x=\"{}\" y=\"24\" font-size=\"17\" text-anchor=\"middle\">{}</text>\n",
                     kWidth / 2, detail::markup_text(title))
      << fmt::format("<text x=\"{}\" y=\"42\" fill=\"#555\" text-anchor=\"middle\">{}</text>\n",
                     kWidth / 2, detail::markup_text(summary))
      << fmt::format(
             "<rect x=\"{}\" y=\"50\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" "
             "y=\"59\" fill=\"#555\">functions chosen for timing; hover a frame for its time{}"
             "</text>\n",
             kMargin, kChosenColour, kMargin + 14,
             left_out ? fmt::format(" ({} calls too narrow to draw are left out)", left_out) : "");

  const double bottom = height - kMargin - 16;  // the root's top edge
  for (const Placed& p : placed) {
    const auto& weight = view.inclusive[p.node];
    const double width = static_cast<double>(weight.samples) * scale;
    const double x = kMargin + p.x * scale;
    const double y = bottom - p.depth * kFrameHeight;
    std::string label = "all";
    std::string colour = "#c8c8c8";
    if (p.node != sampling::kRootStack) {
      const sampling::FrameId frame = view.stacks.frame(p.node);
      const FrameInfo& info = view.frames.get(frame);
      label = detail::frame_label(info);
      colour = chosen[frame] ? kChosenColour : warm_colour(info.function);
    }
    const double share = 100.0 * static_cast<double>(weight.samples) / total;
    out << "<g class=\"f\"><title>"
        << detail::markup_text(fmt::format("{} — {} ({:.2f}%), {} samples", label,
                                           format_seconds(weight.seconds), share, weight.samples))
        << "</title>"
        << fmt::format(
               "<rect x=\"{:.2f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{}\" "
               "fill=\"{}\" rx=\"2\"/>",
               x, y, std::max(width - 0.5, 0.1), kFrameHeight - 1, colour);
    const size_t fits = static_cast<size_t>(std::max(0.0, (width - 6) / kCharWidth));
    if (fits >= 3) {
      std::string shown = char_count(label) <= fits ? label : first_chars(label, fits - 2) + "..";
      out << fmt::format("<text x=\"{:.2f}\" y=\"{:.1f}\"{}>{}</text>", x + 3,
                         y + kFrameHeight - 4.5,
                         chosen.empty() || colour != kChosenColour ? "" : " fill=\"#fff\"",
                         detail::markup_text(shown));
    }
    out << "</g>\n";
  }
  out << "</svg>\n";
}

}  // namespace spyglass::report
