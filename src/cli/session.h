// A profiling session on one target: the attached process, its sampler, the chosen functions,
// and the ways to show what was gathered. Shared by attach, record, run and top, and their one
// door to the sampler: reports render from a snapshot of the profile (sampling goes on
// meanwhile), and status, rate and mode go through the sampler's own interface.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/options.h"
#include "cpython/target.h"
#include "report/export.h"
#include "report/results.h"
#include "sampling/function_stats.h"
#include "sampling/sampler.h"

namespace spyglass::cli {

// What an output is written as: the results table, their JSON, or a call-graph export.
struct OutputFormat {
  enum class Kind { kTable, kJson, kExport } kind = Kind::kTable;
  report::Format export_format = report::Format::kCollapsed;  // for kExport
  std::string name() const;
  bool binary() const { return kind == Kind::kExport && export_format == report::Format::kPprof; }
};

// The format named by --format (when given), else by the extension of `path` (when given), else
// the table. Throws Error(kUsage) for an unknown name, or an extension no format has.
OutputFormat resolve_output_format(const std::string& format, const std::string& path);
// Checks, before any sampling, that `path` can be written: its folder exists and takes a new
// file, and it is not a folder itself. Throws Error(kIo) naming the path.
void check_writable(const std::string& path);

class Session {
 public:
  Session(pid_t pid, const ProfileOptions& options);
  pid_t pid() const { return target_->pid(); }
  std::string python_version() const;
  const ProfileOptions& options() const { return options_; }

  // --- Sampling (all safe while sampling runs) -------------------------------------------
  void start() { sampler_->start(); }
  void stop() { sampler_->stop(); }
  bool running() const { return sampler_->running(); }
  sampling::RunSwitch set_rate(double hz) { return sampler_->set_rate(hz); }
  sampling::RunSwitch set_mode(sampling::Mode mode) { return sampler_->set_mode(mode); }
  void reset() { sampler_->reset(); }
  sampling::SamplerStatus status() const { return sampler_->status(); }
  // Waits until sampling stops by itself (target exit) or `seconds` pass; true if stopped.
  bool wait_stopped(double seconds) { return sampler_->wait_stopped(seconds); }
  // Called from the sampling thread once, when the target has exited.
  void on_exit(std::function<void()> callback) { sampler_->on_exit(std::move(callback)); }
  // Every thread's stack now, with its name (false when no consistent walk came in time).
  bool threads(std::vector<sampling::ThreadSnapshot>& out) {
    return sampler_->threads_now(out, 2.0);
  }

  // --- Chosen functions -------------------------------------------------------------------
  const std::vector<std::string>& functions() const { return functions_; }
  // Adds patterns (checked); returns warnings for those that match nothing seen so far.
  std::vector<std::string> add_functions(const std::vector<std::string>& patterns);
  // Removes patterns; returns those that were not chosen.
  std::vector<std::string> remove_functions(const std::vector<std::string>& patterns);

  // --- Reports, each from one snapshot ----------------------------------------------------
  // A copy of the profile so far (run information filled in), taken under the sampler's lock.
  sampling::Profile snapshot() const { return sampler_->snapshot(); }
  report::Results results() const;
  report::TableStyle table_style() const;
  // The results table, with the explanations a first reader needs.
  std::string table(const report::TableStyle& style) const;
  // The results as a table, JSON, or an export format (flamegraph, speedscope, ...).
  std::string render(const OutputFormat& format) const;
  std::string render(const std::string& format) const {
    return render(resolve_output_format(format, ""));
  }
  // Writes the results to `path` (format from `format`, else the file's extension).
  void write(const std::string& path, const std::string& format) const;
  // The call tree of each chosen function (or of the whole program when none is chosen).
  std::string tree(const std::string& function) const;
  // Every function seen, heaviest first (only those matching `pattern` when given).
  std::vector<sampling::FunctionTotals> function_totals(const std::string& pattern = "") const;
  // Names of the functions seen so far that start with `prefix` (for completion).
  std::vector<std::string> function_names(const std::string& prefix) const;

 private:
  ProfileOptions options_;
  std::unique_ptr<cpython::Target> target_;
  std::unique_ptr<sampling::Sampler> sampler_;
  std::vector<std::string> functions_;
  mutable bool explained_late_ = false;  // "late" and "missed" are explained once
};

}  // namespace spyglass::cli
