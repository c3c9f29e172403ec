// A profiling session on one target (with --subprocesses, a process and its Python
// descendants): the processes sampled, the chosen functions, and the ways to show what was
// gathered. Shared by attach, record, run and top, and their one
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
#include "sampling/process_set.h"
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

// One process's results, for --per-process, `results --pid` and the JSON's `processes`.
struct ProcessResults {
  sampling::ProcessEntry process;
  report::Results results;  // empty of functions when the process is not read
};

class Session {
 public:
  Session(pid_t pid, const ProfileOptions& options);
  pid_t pid() const { return processes_->root(); }
  std::string python_version() const { return processes_->python_version(); }
  const ProfileOptions& options() const { return options_; }
  bool follows_subprocesses() const { return processes_->follow(); }

  // --- Sampling (all safe while sampling runs) -------------------------------------------
  void start() { processes_->start(); }
  void stop() { processes_->stop(); }
  bool running() const { return processes_->running(); }
  sampling::RunSwitch set_rate(double hz) { return processes_->set_rate(hz); }
  sampling::RunSwitch set_mode(sampling::Mode mode) { return processes_->set_mode(mode); }
  void reset() { processes_->reset(); }
  sampling::SamplerStatus status() const { return processes_->status(); }
  // Waits until sampling stops by itself (targets exited) or `seconds` pass; true if stopped.
  bool wait_stopped(double seconds) { return processes_->wait_stopped(seconds); }
  // Called from the sampling thread once, when the target (every process) has exited.
  void on_exit(std::function<void()> callback) { processes_->on_exit(std::move(callback)); }
  // Every thread's stack now, with its name (false when no consistent walk came in time), of
  // process `pid` (0: the first process read).
  bool threads(std::vector<sampling::ThreadSnapshot>& out, pid_t pid = 0) {
    return processes_->threads_now(pid, out, 2.0);
  }
  // The processes sampled or seen (--subprocesses), with their state.
  std::vector<sampling::ProcessEntry> processes() const { return processes_->processes(); }

  // --- Chosen functions -------------------------------------------------------------------
  const std::vector<std::string>& functions() const { return functions_; }
  // Adds patterns (checked); returns warnings for those that match nothing seen so far.
  std::vector<std::string> add_functions(const std::vector<std::string>& patterns);
  // Removes patterns; returns those that were not chosen.
  std::vector<std::string> remove_functions(const std::vector<std::string>& patterns);

  // --- Reports, each from one snapshot ----------------------------------------------------
  // A copy of the profile so far (run information filled in), every process's together.
  sampling::Profile snapshot() const { return processes_->snapshot(); }
  report::Results results() const;
  // Each process's own results (--subprocesses), in the order they were found.
  std::vector<ProcessResults> process_results() const;
  // One process's results; Error(kUsage) when the set has no such process read as Python.
  report::Results results_of(pid_t pid) const;
  report::TableStyle table_style() const;
  // The results table, with the explanations a first reader needs (and with --per-process,
  // each process's table after it).
  std::string table(const report::TableStyle& style) const;
  // The table with each process's after it, whatever --per-process says.
  std::string table_per_process(const report::TableStyle& style) const;
  // One process's table (`results --pid N`).
  std::string table_of(pid_t pid, const report::TableStyle& style) const;
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
  // The results of one profile and status, with the notes a reader needs.
  report::Results results_from(const sampling::Profile& profile,
                               const sampling::SamplerStatus& status) const;
  // Trees and exports: each process under a root of its own when several are followed.
  sampling::Profile drawing_snapshot() const;
  std::string table_together(const report::TableStyle& style) const;
  ProfileOptions options_;
  std::unique_ptr<sampling::ProcessSet> processes_;
  std::vector<std::string> functions_;
  mutable bool explained_late_ = false;  // "late" and "missed" are explained once
};

}  // namespace spyglass::cli
