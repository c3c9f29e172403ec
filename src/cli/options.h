// Options shared by attach, record, run and top, from the command line and a TOML config
// (--config FILE, else spyglass.toml or [tool.spyglass] in pyproject.toml in this folder).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "sampling/sampler.h"

namespace spyglass::cli {

struct ProfileOptions {
  std::vector<std::string> functions;
  std::optional<double> rate_hz;
  std::optional<double> interval_seconds;
  std::optional<std::string> mode;
  std::optional<bool> blocking;
  std::optional<bool> no_realtime;
  std::optional<bool> no_async;
  // Developers: do not read who awaits each task (trees and exports then draw every task as
  // a root; no figure changes either way), to compare and to measure its cost.
  bool no_task_links = false;
  bool any_cpu = false;
  std::optional<std::string> format;  // table, json, or an export format
  std::optional<std::string> output;  // -o FILE
  std::optional<double> duration;
  std::optional<bool> per_thread;
  std::optional<bool> ascii;
  std::optional<bool> tree;
  std::optional<bool> merge_lines;
  std::optional<size_t> matches;  // functions listed under a pattern that matched several
  // --subprocesses: the process's Python descendants too; --per-process: their results one
  // by one as well; --merge-processes: exports draw identical workers as one.
  std::optional<bool> subprocesses;
  std::optional<bool> per_process;
  std::optional<bool> merge_processes;
  std::string config;
  bool exact = false;  // attach --exact

  // Filled by resolve(): the effective values.
  sampling::SamplerOptions sampler;
};

void add_profile_options(CLI::App& cmd, ProfileOptions& opt, bool with_output);
// The target's process id, as `PID` or `-p/--pid PID` (every command takes both); parsing fails
// when neither is given.
void add_pid_option(CLI::App& cmd, int& pid);
// Merges the config file under the command line's values and checks them. Throws Error(kUsage).
// Keys the config file has but spyglass does not know are warned about on stderr, with the
// closest known key.
void resolve(ProfileOptions& opt);
// The keys a config file may hold.
const std::vector<std::string>& config_keys();

}  // namespace spyglass::cli
