#include "cli/options.h"

#include <fmt/format.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "common/text.h"

namespace spyglass::cli {
namespace {

struct Config {
  toml::table table;
  std::string source;  // the file (and table) it came from, for warnings
};

// The config table: a file given with --config, else ./spyglass.toml, else [tool.spyglass] of
// ./pyproject.toml. Empty when there is none.
Config load_config(const std::string& explicit_path) {
  namespace fs = std::filesystem;
  auto parse = [](const std::string& path) {
    try {
      return toml::parse_file(path);
    } catch (const toml::parse_error& e) {
      throw Error(ErrorKind::kUsage,
                  fmt::format("{}:{}: {}", path, e.source().begin.line, e.description()));
    }
  };
  if (!explicit_path.empty()) {
    if (!fs::exists(explicit_path)) {
      throw Error(ErrorKind::kUsage, fmt::format("config file {} does not exist", explicit_path));
    }
    toml::table t = parse(explicit_path);
    if (auto* tool = t["tool"]["spyglass"].as_table()) {
      return {*tool, explicit_path + " [tool.spyglass]"};
    }
    return {t, explicit_path};
  }
  if (fs::exists("spyglass.toml")) return {parse("spyglass.toml"), "spyglass.toml"};
  if (fs::exists("pyproject.toml")) {
    toml::table t = parse("pyproject.toml");
    if (auto* tool = t["tool"]["spyglass"].as_table()) {
      return {*tool, "pyproject.toml [tool.spyglass]"};
    }
  }
  return {};
}

void warn_unknown_keys(const Config& config) {
  const auto& known = config_keys();
  for (const auto& [key, value] : config.table) {
    const std::string name(key.str());
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string closest = closest_word(name, known);
    fmt::print(stderr, "spyglass: warning: {}: unknown key '{}'{}; it is ignored\n", config.source,
               name, closest.empty() ? "" : fmt::format(" (did you mean '{}'?)", closest));
  }
}

template <typename T>
void fill(std::optional<T>& value, const toml::table& config, const char* key) {
  if (value || !config.contains(key)) return;
  if (auto v = config[key].value<T>()) {
    value = *v;
  } else {
    throw Error(ErrorKind::kUsage, fmt::format("config: '{}' has the wrong type", key));
  }
}

}  // namespace

void add_profile_options(CLI::App& cmd, ProfileOptions& opt, bool with_output) {
  cmd.add_option("-f,--function", opt.functions,
                 "Functions to time: name, Class.method, module:qualname, file.py:name, globs")
      ->expected(1, -1);
  auto* rate = cmd.add_option("-r,--rate", opt.rate_hz, "Samples per second (default 1000)");
  cmd.add_option("-i,--interval", opt.interval_seconds, "Seconds between samples")->excludes(rate);
  cmd.add_option("-m,--mode", opt.mode, "wall (default), cpu or gil");
  cmd.add_flag("--blocking", opt.blocking, "Pause the target's threads for each sample");
  cmd.add_flag("--no-realtime", opt.no_realtime,
               "Do not ask for real-time scheduling of the sampling thread");
  cmd.add_flag("--no-async", opt.no_async,
               "Wall mode: do not count suspended asyncio tasks (only what threads run)");
  cmd.add_flag("--no-task-links", opt.no_task_links,
               "Do not read who awaits each asyncio task (tasks drawn as roots)")
      ->group("Developer");
  cmd.add_flag("--any-cpu", opt.any_cpu,
               "Let the sampling thread wake on the CPU of the thread holding the GIL (by "
               "default it keeps off it)")
      ->group("Developer");
  cmd.add_option("--config", opt.config,
                 "TOML config file (default: spyglass.toml or "
                 "[tool.spyglass] in pyproject.toml)");
  cmd.add_flag("-s,--subprocesses", opt.subprocesses,
               "Also every Python process it starts (and they start), found while profiling");
  cmd.add_flag("--per-process", opt.per_process,
               "With --subprocesses: each process's results too, after those of all together");
  cmd.add_flag("--merge-processes", opt.merge_processes,
               "With --subprocesses: exports draw processes with the same command line as one");
  cmd.add_flag("--per-thread", opt.per_thread, "Show a row per thread under each function");
  cmd.add_flag("--ascii", opt.ascii, "Plain ASCII table");
  cmd.add_option("--matches", opt.matches,
                 "Functions listed, heaviest first, under a pattern that matched several "
                 "(default 10; the rest on one line)")
      ->check(CLI::PositiveNumber);
  if (with_output) {
    cmd.add_option("--format", opt.format,
                   "table, json, or a call-graph format: flamegraph, speedscope, collapsed, pprof, "
                   "chrome");
    cmd.add_option("-o,--output", opt.output, "Write the results to this file");
    cmd.add_option("-d,--duration", opt.duration, "Seconds to profile (default: until the end)");
    cmd.add_flag("--tree", opt.tree, "Also print the call tree of each chosen function");
    cmd.add_flag("--merge-lines", opt.merge_lines, "Fold lines into functions in exports");
  }
}

const std::vector<std::string>& config_keys() {
  static const std::vector<std::string> keys = {
      "functions", "rate",        "interval",     "mode",        "blocking",       "no_realtime",
      "no_async",  "format",      "output",       "duration",    "per_thread",     "ascii",
      "tree",      "merge_lines", "subprocesses", "per_process", "merge_processes"};
  return keys;
}

void add_pid_option(CLI::App& cmd, int& pid) {
  auto* positional = cmd.add_option("pid", pid, "Process id of the Python program");
  auto* option = cmd.add_option("-p,--pid", pid, "The same, as an option");
  positional->excludes(option);
  cmd.callback([&cmd, &pid] {
    if (pid == 0) {
      throw CLI::RequiredError(fmt::format("{}: the process id (PID or -p PID)", cmd.get_name()));
    }
  });
}

void resolve(ProfileOptions& opt) {
  Config loaded = load_config(opt.config);
  warn_unknown_keys(loaded);
  const toml::table& config = loaded.table;
  if (opt.functions.empty()) {
    if (auto* list = config["functions"].as_array()) {
      for (const auto& item : *list) {
        auto s = item.value<std::string>();
        if (!s) throw Error(ErrorKind::kUsage, "config: 'functions' must be a list of strings");
        opt.functions.push_back(*s);
      }
    }
  }
  if (!opt.rate_hz && !opt.interval_seconds) {
    fill(opt.rate_hz, config, "rate");
    if (!opt.rate_hz) fill(opt.interval_seconds, config, "interval");
  }
  fill(opt.mode, config, "mode");
  fill(opt.blocking, config, "blocking");
  fill(opt.no_realtime, config, "no_realtime");
  fill(opt.no_async, config, "no_async");
  fill(opt.format, config, "format");
  fill(opt.output, config, "output");
  fill(opt.duration, config, "duration");
  fill(opt.per_thread, config, "per_thread");
  fill(opt.ascii, config, "ascii");
  fill(opt.tree, config, "tree");
  fill(opt.merge_lines, config, "merge_lines");
  fill(opt.subprocesses, config, "subprocesses");
  fill(opt.per_process, config, "per_process");
  fill(opt.merge_processes, config, "merge_processes");
  if (!opt.matches && config.contains("matches")) {
    auto value = config["matches"].value<int64_t>();
    if (!value || *value < 1)
      throw Error(ErrorKind::kUsage, "config: 'matches' must be a positive number");
    opt.matches = static_cast<size_t>(*value);
  }
  if (opt.interval_seconds) {
    if (!(*opt.interval_seconds > 0)) {
      throw Error(ErrorKind::kUsage, "the interval must be a positive number of seconds");
    }
    opt.rate_hz = 1.0 / *opt.interval_seconds;
  }
  opt.sampler.rate_hz = opt.rate_hz.value_or(1000);
  sampling::check_rate(opt.sampler.rate_hz);
  opt.sampler.mode = sampling::parse_mode(opt.mode.value_or("wall"));
  opt.sampler.blocking = opt.blocking.value_or(false);
  opt.sampler.realtime = !opt.no_realtime.value_or(false);
  opt.sampler.async_tasks = !opt.no_async.value_or(false);
  opt.sampler.link_tasks = !opt.no_task_links;
  opt.sampler.keep_off_gil_cpu = !opt.any_cpu;
  if (opt.duration && !(*opt.duration > 0)) {
    throw Error(ErrorKind::kUsage, "the duration must be a positive number of seconds");
  }
}

}  // namespace spyglass::cli
