#include "cli/session.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>

#include "cli/output.h"
#include "process/error.h"
#include "report/chosen.h"
#include "report/export.h"
#include "report/tree.h"
#include "sampling/function_stats.h"

namespace spyglass::cli {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Session::Session(pid_t pid, const ProfileOptions& options) : options_(options) {
  target_ = std::make_unique<cpython::Target>(pid);
  sampler_ = std::make_unique<sampling::Sampler>(*target_, options_.sampler);
  add_functions(options_.functions);
}

std::vector<std::string> Session::add_functions(const std::vector<std::string>& patterns) {
  std::vector<std::string> warnings;
  for (const auto& p : patterns) {
    sampling::check_pattern(p);
    if (std::find(functions_.begin(), functions_.end(), p) != functions_.end()) continue;
    functions_.push_back(p);
    std::optional<std::string> hint;  // set when functions were seen and none matches
    sampler_->with_profile([&](const sampling::Profile& profile) {
      if (profile.frames.size() == 0) return;  // nothing seen yet: no reason to warn
      report::ChosenSet chosen(profile, {p});
      if (chosen.matched_functions(0).empty()) hint = report::closest_names_hint(p, chosen);
    });
    if (hint) {
      warnings.push_back(fmt::format(
          "no function seen so far matches '{}'{}; it stays listed and shows \"no data\" until "
          "it runs",
          p, *hint));
    }
  }
  return warnings;
}

std::vector<std::string> Session::remove_functions(const std::vector<std::string>& patterns) {
  std::vector<std::string> unknown;
  for (const auto& p : patterns) {
    auto it = std::find(functions_.begin(), functions_.end(), p);
    if (it == functions_.end()) {
      unknown.push_back(p);
    } else {
      functions_.erase(it);
    }
  }
  return unknown;
}

report::Results Session::results() const {
  report::Results results;
  auto status = sampler_->status();
  sampler_->with_profile([&](const sampling::Profile& profile) {
    results =
        sampling::chosen_function_results(profile, report::ChosenSet(profile, functions_), status);
  });
  if (status.failed_walks) {
    results.notes.push_back(fmt::format(
        "{} of {} samples could not be read consistently (the target changed under us) and "
        "were dropped",
        status.failed_walks, status.samples));
  }
  for (const auto& kept : sampler_->kept_runs()) {
    results.notes.push_back(fmt::format(
        "kept apart: {} samples over {:.2f} s in {} mode at {:g} Hz ('mode {}' and 'rate {:g}' "
        "show them)",
        kept.samples, kept.profiled_seconds, sampling::mode_name(kept.mode), kept.rate_hz,
        sampling::mode_name(kept.mode), kept.rate_hz));
  }
  if (status.target_exited) results.notes.push_back("the target process has exited");
  if (!status.error.empty()) results.notes.push_back("sampling stopped: " + status.error);
  return results;
}

report::TableStyle Session::table_style() const {
  report::TableStyle style;
  style.unicode = !options_.ascii.value_or(false) && report::terminal_is_utf8();
  style.per_thread = options_.per_thread.value_or(false);
  style.max_matches = options_.matches.value_or(report::TableStyle::kDefaultMaxMatches);
  style.max_width = terminal_width();
  return style;
}

std::string Session::tree(const std::string& function) const {
  std::string out;
  bool unicode = table_style().unicode;
  report::TreeOptions tree_options;
  if (!function.empty()) sampling::check_pattern(function);
  sampler_->with_profile([&](const sampling::Profile& profile) {
    std::vector<std::string> names = function.empty() ? functions_ : std::vector{function};
    if (names.empty()) {
      out = report::render_tree(report::build_program_tree(profile, tree_options), unicode);
      return;
    }
    const report::ChosenSet chosen(profile, names);
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string& name = names[i];
      auto trees = report::build_function_trees(
          profile, name, [&](const sampling::FrameInfo& f) { return chosen.matches(f, i); },
          tree_options);
      out += report::render_function_trees(trees, unicode);
      out += "\n";
    }
  });
  return out;
}

std::string Session::render(const std::string& format) const {
  if (format.empty() || format == "table") {
    return report::render_table(results(), table_style());
  }
  if (format == "json") return report::to_json(results()).dump(2) + "\n";
  auto export_format = report::format_from_name(format);
  if (!export_format) {
    throw Error(ErrorKind::kUsage, fmt::format("unknown format '{}': use table, json, {}", format,
                                               report::format_names()));
  }
  std::ostringstream out;
  report::ExportOptions export_options;
  export_options.merge_lines = options_.merge_lines.value_or(false);
  export_options.title = fmt::format("spyglass: process {}", target_->pid());
  sampler_->with_profile([&](const sampling::Profile& profile) {
    const report::ChosenSet chosen(profile, functions_);
    export_options.chosen = &chosen;
    report::write_profile(profile, *export_format, export_options, out);
  });
  return out.str();
}

void Session::write(const std::string& path, const std::string& format) const {
  std::string chosen = format;
  if (chosen.empty()) {
    if (auto f = report::format_from_extension(path)) {
      chosen = report::format_name(*f);
    } else if (ends_with(path, ".json")) {
      chosen = "json";
    } else {
      chosen = "table";
    }
  }
  if (chosen == "table") {  // a file takes the whole table, whatever the terminal's width
    report::TableStyle style = table_style();
    style.max_width = 0;
    return write_file(path, report::render_table(results(), style));
  }
  write_file(path, render(chosen));
}

}  // namespace spyglass::cli
