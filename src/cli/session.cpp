#include "cli/session.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <sstream>

#include "cli/output.h"
#include "common/error.h"
#include "common/text.h"
#include "report/chosen.h"
#include "report/export.h"
#include "report/tree.h"
#include "sampling/function_stats.h"
#include "sampling/thread_pauser.h"

namespace spyglass::cli {
namespace {

// A command line cut to what a terminal line holds.
std::string short_command(const std::string& command, size_t width = 80) {
  if (command.size() <= width) return command;
  return command.substr(0, width - 3) + "...";
}

std::string folder_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::string OutputFormat::name() const {
  switch (kind) {
    case Kind::kTable:
      return "table";
    case Kind::kJson:
      return "json";
    case Kind::kExport:
      return report::format_name(export_format);
  }
  return "table";
}

OutputFormat resolve_output_format(const std::string& format, const std::string& path) {
  OutputFormat out;
  const std::string name = to_lower(format);
  if (!name.empty()) {
    if (name == "table" || name == "text" || name == "txt") return out;
    if (name == "json") {
      out.kind = OutputFormat::Kind::kJson;
      return out;
    }
    auto f = report::format_from_name(name);
    if (!f) {
      throw Error(ErrorKind::kUsage, fmt::format("unknown format '{}': use table, json, {}", format,
                                                 report::format_names()));
    }
    out.kind = OutputFormat::Kind::kExport;
    out.export_format = *f;
    return out;
  }
  if (path.empty()) return out;
  if (auto f = report::format_from_extension(path)) {
    out.kind = OutputFormat::Kind::kExport;
    out.export_format = *f;
    return out;
  }
  const std::string file = to_lower(path);
  if (file.ends_with(".json")) {
    out.kind = OutputFormat::Kind::kJson;
    return out;
  }
  if (file.ends_with(".txt") || file.ends_with(".table")) return out;
  throw Error(ErrorKind::kUsage,
              fmt::format("cannot tell the format of {} from its name: use .txt (table), .json, "
                          "{}; or say it with --format",
                          path, report::extension_names()));
}

void check_writable(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    throw Error(ErrorKind::kIo, fmt::format("cannot write {}: it is a folder", path));
  }
  const std::string folder = folder_of(path);
  if (::stat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(ErrorKind::kIo,
                fmt::format("cannot write {}: the folder {} does not exist", path, folder));
  }
  // What write_file() will do, tried now: create the temporary file beside it (this catches
  // permissions, read-only file systems and full inode tables, which access() does not).
  const std::string probe = path + ".tmp";
  bool existed = ::access(probe.c_str(), F_OK) == 0;
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw Error(ErrorKind::kIo, fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  }
  ::close(fd);
  if (!existed) ::unlink(probe.c_str());
  if (::access(path.c_str(), F_OK) == 0 && ::access(path.c_str(), W_OK) != 0 && geteuid() != 0) {
    // Replaced by a rename, a read-only file can still be written over; say so up front
    // rather than surprise anyone.
    throw Error(ErrorKind::kIo, fmt::format("cannot write {}: the file is read-only", path));
  }
}

Session::Session(pid_t pid, const ProfileOptions& options) : options_(options) {
  processes_ = std::make_unique<sampling::ProcessSet>(pid, options_.sampler,
                                                      options_.subprocesses.value_or(false));
  add_functions(options_.functions);
}

std::vector<std::string> Session::add_functions(const std::vector<std::string>& patterns) {
  std::vector<std::string> warnings;
  std::optional<sampling::Profile> seen_so_far;
  for (const auto& p : patterns) {
    sampling::check_pattern(p);
    if (std::find(functions_.begin(), functions_.end(), p) != functions_.end()) continue;
    functions_.push_back(p);
    if (!seen_so_far) seen_so_far = processes_->snapshot();
    std::optional<std::string> hint;        // set when functions were seen and none matches
    if (seen_so_far->frames.size() != 0) {  // nothing seen yet: no reason to warn
      report::ChosenSet chosen(*seen_so_far, {p});
      if (chosen.matched_functions(0).empty()) hint = report::closest_names_hint(p, chosen);
    }
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
  // The status first, then the profile: the profile then holds at least the samples counted.
  auto status = processes_->status();
  const sampling::Profile profile = processes_->snapshot();
  report::Results results = results_from(profile, status);
  if (processes_->follow()) {
    results.python_version = processes_->python_version();
    const auto entries = processes_->processes();
    size_t read = 0, exited = 0, late = 0;
    double unseen = 0;
    std::string unread;
    for (const auto& e : entries) {
      if (e.sampled) {
        ++read;
        if (e.found_after_seconds > 0) {
          ++late;
          unseen += e.found_after_seconds;
        }
        if (e.status.target_exited) ++exited;
        if (!e.status.error.empty()) {
          results.notes.push_back(fmt::format("process {} ({}): sampling stopped: {}", e.pid,
                                              e.command, e.status.error));
        }
      } else if (e.state != "not Python" && e.state != "exited" &&
                 e.state != "ran another program" && e.state != "starting") {
        unread += fmt::format("; {} ({}): {}", e.pid, e.command, e.state);
      }
    }
    results.notes.insert(
        results.notes.begin(),
        fmt::format("{} Python {} of process {} and its subprocesses together{}{}", read,
                    read == 1 ? "process" : "processes", processes_->root(),
                    exited ? fmt::format(" ({} exited, their results kept)", exited) : "",
                    options_.per_process.value_or(false) ? "; each process's own follow"
                                                         : "; --per-process shows each"));
    if (!unread.empty()) {
      results.notes.push_back("processes that could not be read" + unread);
    }
    if (read == 0) {
      results.notes.push_back(fmt::format(
          "no Python process was found: process {} ({}) is not Python{}", processes_->root(),
          entries.empty() ? std::string("?") : short_command(entries.front().command, 60),
          entries.size() > 1 ? ", nor are the processes it started" : " and started none"));
    }
    if (late > 0) {
      results.notes.push_back(fmt::format(
          "{} {} started while profiling and {} found {:.0f} ms after {} start on average: "
          "that time ({:.2f} s in all) is not in the results",
          late, late == 1 ? "process" : "processes", late == 1 ? "was" : "were",
          unseen / static_cast<double>(late) * 1000, late == 1 ? "its" : "their", unseen));
    }
  }
  return results;
}

std::vector<ProcessResults> Session::process_results() const {
  // A pid that ran several programs (an exec) is one process to the user: listed once, with
  // its newest program's state, and the results of all it ran, as `results --pid` gives them.
  std::vector<ProcessResults> out;
  for (auto& entry : processes_->processes()) {
    auto listed = std::find_if(out.begin(), out.end(), [&](const ProcessResults& r) {
      return r.process.pid == entry.pid && r.process.sampled && entry.sampled;
    });
    ProcessResults& one = listed != out.end() ? *listed : out.emplace_back();
    one.process = entry;
    if (entry.sampled) one.results = results_of(entry.pid);
  }
  return out;
}

report::Results Session::results_of(pid_t pid) const {
  auto status = processes_->status_of(pid);
  auto profile = processes_->snapshot_of(pid);
  if (!status || !profile) {
    throw Error(ErrorKind::kUsage,
                fmt::format("no Python process {} in this session ('processes' lists them)", pid));
  }
  return results_from(*profile, *status);
}

report::Results Session::results_from(const sampling::Profile& profile,
                                      const sampling::SamplerStatus& status) const {
  report::Results results =
      sampling::chosen_function_results(profile, report::ChosenSet(profile, functions_), status);
  if (status.failed_walks) {
    results.notes.push_back(fmt::format(
        "{} of {} samples could not be read consistently (the target changed under us) and "
        "were dropped",
        status.failed_walks, status.samples));
  }
  if (status.slow_samples) {
    results.notes.push_back(fmt::format(
        "{} of {} samples took over {:.0f} ms to read ({:.3f} s in all): each stands for that "
        "time with what it read, so what ran meanwhile may be counted elsewhere",
        status.slow_samples, status.samples, 1e3 * sampling::slow_read_seconds(status.rate_hz),
        status.slow_seconds));
  }
  if (status.incomplete_stacks) {
    results.notes.push_back(
        fmt::format("{} of {} thread stacks were kept incomplete (still changing after {} reads, "
                    "unreadable, or "
                    "deeper than the depth bound): their outer frames are missing",
                    status.incomplete_stacks, status.thread_samples,
                    1 + cpython::WalkerConfig{}.max_torn_retries));
  }
  // Re-reads are counted, not lost, but a re-read lands later than its sample: where stacks
  // change every few microseconds that leans toward what runs next (docs/accuracy.md).
  if (status.thread_samples > 0 && !options_.blocking.value_or(false) &&
      status.reread_stacks * 10 > status.thread_samples) {
    results.notes.push_back(fmt::format(
        "{} re-reads for {} thread stacks: the stacks changed while they were read. Functions "
        "whose stacks change every few microseconds may read low (most on CPython 3.8-3.10); "
        "--blocking reads them exactly",
        status.reread_stacks, status.thread_samples));
  }
  if (status.unreadable_tasks || status.cut_task_lists) {
    results.notes.push_back(fmt::format(
        "asyncio: {} task readings could not be read (a task class without asyncio's C layout, "
        "or damaged) and {} task lists broke off: their time is not counted",
        status.unreadable_tasks, status.cut_task_lists));
  }
  if (status.cut_thread_lists) {
    results.notes.push_back(fmt::format(
        "in {} samples the thread list broke off while threads ended: the threads after the "
        "break were not read",
        status.cut_thread_lists));
  }
  if (status.unpaused_threads) {
    results.notes.push_back(fmt::format(
        "--blocking: a thread could not be paused for a sample {} {} (it was exiting, or did not "
        "stop within {:g} ms): those samples read it running",
        status.unpaused_threads, status.unpaused_threads == 1 ? "time" : "times",
        sampling::ThreadPauser::kPauseSeconds * 1000));
  }
  for (const auto& kept : processes_->kept_runs()) {
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

std::string Session::table_of(pid_t pid, const report::TableStyle& style) const {
  return report::render_table(results_of(pid), style);
}

namespace {

std::string process_heading(const sampling::ProcessEntry& e) {
  std::string head = fmt::format("process {}: {}", e.pid, short_command(e.command));
  if (e.sampled) {
    head += fmt::format(
        " (Python {}, {}, {} samples, {:.1f} µs a sample{})", e.python_version, e.state,
        e.status.samples, e.status.mean_walk_us,
        e.found_after_seconds > 0
            ? fmt::format(", found {:.0f} ms after it started", e.found_after_seconds * 1000)
            : "");
  } else {
    head += fmt::format(" ({})", e.state);
  }
  return head;
}

}  // namespace

std::string Session::table(const report::TableStyle& style) const {
  if (processes_->follow() && options_.per_process.value_or(false)) {
    return table_per_process(style);
  }
  return table_together(style);
}

std::string Session::table_per_process(const report::TableStyle& style) const {
  std::string per_process;
  if (processes_->follow()) {
    for (const auto& one : process_results()) {
      if (!one.process.sampled) continue;
      per_process += "\n" + process_heading(one.process) + "\n";
      per_process += report::render_table(one.results, style);
    }
  }
  return table_together(style) + per_process;
}

std::string Session::table_together(const report::TableStyle& style) const {
  report::Results r = results();
  if (!explained_late_ && (r.late_samples > 0 || r.missed_samples > 0)) {
    explained_late_ = true;
    r.notes.push_back(
        "late: samples taken over half a period after their time; missed: sampling times "
        "skipped because the sampler woke a period or more late (their time goes to the sample "
        "taken next, nothing is lost)");
  }
  return report::render_table(r, style);
}

std::string Session::tree(const std::string& function) const {
  std::string out;
  bool unicode = table_style().unicode;
  report::TreeOptions tree_options;
  if (!function.empty()) sampling::check_pattern(function);
  const sampling::Profile profile = drawing_snapshot();
  std::vector<std::string> names = function.empty() ? functions_ : std::vector{function};
  if (names.empty()) {
    return report::render_tree(report::build_program_tree(profile, tree_options), unicode);
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
  return out;
}

std::string Session::render(const OutputFormat& format) const {
  switch (format.kind) {
    case OutputFormat::Kind::kTable:
      return table(table_style());
    case OutputFormat::Kind::kJson: {
      nlohmann::json doc = report::to_json(results());
      if (processes_->follow()) {
        nlohmann::json list = nlohmann::json::array();
        for (const auto& one : process_results()) {
          const auto& e = one.process;
          nlohmann::json entry = {{"pid", e.pid},
                                  {"command", e.command},
                                  {"state", e.state},
                                  {"python_version", e.python_version},
                                  {"samples", e.status.samples},
                                  {"duration_seconds", e.status.profiled_seconds},
                                  {"mean_walk_us", e.status.mean_walk_us},
                                  {"sampler_cpu_seconds", e.status.sampler_cpu_seconds},
                                  {"found_after_seconds", e.found_after_seconds}};
          entry["functions"] =
              e.sampled ? report::to_json(one.results)["functions"] : nlohmann::json::array();
          list.push_back(std::move(entry));
        }
        doc["processes"] = std::move(list);
      }
      return doc.dump(2) + "\n";
    }
    case OutputFormat::Kind::kExport:
      break;
  }
  std::ostringstream out;
  report::ExportOptions export_options;
  export_options.merge_lines = options_.merge_lines.value_or(false);
  export_options.title =
      processes_->follow()
          ? fmt::format("spyglass: process {} and its subprocesses", processes_->root())
          : fmt::format("spyglass: process {}", processes_->root());
  sampling::Profile profile = drawing_snapshot();
  profile.chosen = functions_;
  const report::ChosenSet chosen(profile, functions_);
  export_options.chosen = &chosen;
  report::write_profile(profile, format.export_format, export_options, out);
  return out.str();
}

void Session::write(const std::string& path, const std::string& format) const {
  const OutputFormat resolved = resolve_output_format(format, path);
  if (resolved.kind == OutputFormat::Kind::kTable) {
    report::TableStyle style = table_style();
    style.max_width = 0;  // a file takes the whole table, whatever the terminal's width
    return write_file(path, table(style));
  }
  write_file(path, render(resolved));
}

sampling::Profile Session::drawing_snapshot() const {
  return processes_->snapshot(processes_->follow(), options_.merge_processes.value_or(false));
}

std::vector<sampling::FunctionTotals> Session::function_totals(const std::string& pattern) const {
  return sampling::function_totals(processes_->snapshot(), pattern);
}

std::vector<std::string> Session::function_names(const std::string& prefix) const {
  std::set<std::string> names;
  const sampling::Profile profile = processes_->snapshot();
  for (sampling::FrameId f = 0; f < profile.frames.size(); ++f) {
    const auto& fn = profile.frames.get(f).function;
    if (fn.starts_with(prefix)) names.insert(fn);
  }
  for (const auto& f : functions_) {
    if (f.starts_with(prefix)) names.insert(f);
  }
  return {names.begin(), names.end()};
}

}  // namespace spyglass::cli
