// A profiling session on one target: the attached process, its sampler, the chosen functions,
// and the ways to show what was gathered. Shared by attach, record, run and top.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "cli/options.h"
#include "cpython/target.h"
#include "report/results.h"
#include "sampling/sampler.h"

namespace spyglass::cli {

class Session {
 public:
  Session(pid_t pid, const ProfileOptions& options);
  cpython::Target& target() { return *target_; }
  sampling::Sampler& sampler() { return *sampler_; }
  const std::vector<std::string>& functions() const { return functions_; }
  // Adds patterns (checked); returns warnings for those that match nothing seen so far.
  std::vector<std::string> add_functions(const std::vector<std::string>& patterns);
  // Removes patterns; returns those that were not chosen.
  std::vector<std::string> remove_functions(const std::vector<std::string>& patterns);
  report::Results results() const;
  report::TableStyle table_style() const;
  // The results as a table, JSON, or an export format (flamegraph, speedscope, ...).
  std::string render(const std::string& format) const;
  // Writes the results to `path` (format from `format`, else the file's extension).
  void write(const std::string& path, const std::string& format) const;
  // The call tree of each chosen function (or of the whole program when none is chosen).
  std::string tree(const std::string& function) const;
  const ProfileOptions& options() const { return options_; }

 private:
  ProfileOptions options_;
  std::unique_ptr<cpython::Target> target_;
  std::unique_ptr<sampling::Sampler> sampler_;
  std::vector<std::string> functions_;
};

}  // namespace spyglass::cli
