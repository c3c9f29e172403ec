// `spyglass attach PID --exact`: the same prompt, driving exact mode inside the target over its
// control socket (docs/protocol.md). The program must have opened it: spyglass.listen() or
// SPYGLASS_LISTEN=1. Its commands are a table like the sampling prompt's (command_table.h).
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <thread>

#include "cli/command_table.h"
#include "cli/commands.h"
#include "cli/exact_connection.h"
#include "cli/exact_family.h"
#include "cli/exact_inject.h"
#include "cli/line_reader.h"
#include "cli/options.h"
#include "cli/output.h"
#include "cli/session.h"
#include "cli/signals.h"
#include "common/error.h"
#include "extension/protocol_client.h"
#include "process/maps.h"
#include "report/results.h"

namespace spyglass::cli {
namespace {

using Takes = CommandOption::Takes;

class ExactPrompt {
 public:
  ExactPrompt(int pid, std::unique_ptr<exact::ControlClient> client, bool unicode)
      : pid_(pid), client_(std::move(client)), unicode_(unicode) {
    add_commands();
  }

  nlohmann::json call(const nlohmann::json& request) {
    nlohmann::json reply;
    try {
      reply = client_->request(request);
    } catch (const std::exception& e) {
      throw Error(ErrorKind::kNoSuchProcess,
                  fmt::format("the connection to process {} ended: {}", pid_, e.what()));
    }
    if (!reply.value("ok", false)) {
      throw Error(ErrorKind::kUsage, reply.value("error", std::string("request refused")));
    }
    return reply;
  }

  void close_injected(const Injection& injection) { close_injection(*client_, pid_, injection); }

  int run(const std::vector<std::string>& functions) {
    auto status = call({{"command", "status"}});
    write_stdout(fmt::format("Attached to process {} in exact mode (Python {}, {}). Type 'help'.\n",
                             pid_, status.value("python", std::string("?")),
                             status.value("backend", std::string("?"))));
    if (!functions.empty()) {
      call({{"command", "add"}, {"functions", functions}});
      write_stdout("chosen: " + nlohmann::json(functions).dump() + "; 'start' to begin\n");
    }
    install_stop_signals();
    LineReader reader("spyglass (exact)> ", isatty(STDIN_FILENO) != 0,
                      [this](const std::string& text, bool first) {
                        return first ? commands_.complete(text) : std::vector<std::string>{};
                      });
    reader.run([this](const std::string& line) { return execute(line); }, -1);
    return exit_code_;
  }

 private:
  bool execute(const std::string& line) {
    try {
      commands_.execute(line);
    } catch (const Error& e) {
      write_stdout(fmt::format("error: {}\n", e.what()));
      if (e.kind() == ErrorKind::kNoSuchProcess) {
        exit_code_ = e.exit_code();
        done_ = true;
      }
    }
    return !done_;
  }

  void check_pid(const CommandArgs& a) {
    if (auto pid = a.value("--pid"); pid && *pid != std::to_string(pid_)) {
      throw Error(ErrorKind::kUsage,
                  fmt::format("start -p {}: this prompt is attached to process {}; leave "
                              "('exit') and run 'spyglass attach {} --exact'",
                              *pid, pid_, *pid));
    }
  }

  void change(const std::string& command, const std::vector<std::string>& functions) {
    if (command != "start" && functions.empty()) {
      throw Error(ErrorKind::kUsage, fmt::format("{}: name at least one function", command));
    }
    auto reply = call({{"command", command}, {"functions", functions}});
    write_stdout(fmt::format("{}: chosen {}\n", command, reply["functions"].dump()));
  }

  void show(const std::string& command, bool json) {
    auto reply = call({{"command", command}, {"unicode", unicode_}, {"table", !json}});
    write_stdout(json ? reply["results"].dump(2) + "\n" : reply.value("table", std::string()));
  }

  void add_commands() {
    const CommandOption functions{"-f,--function", Takes::kList, "FUNC"};
    commands_.add({"start",
                   {},
                   {{"-p,--pid", Takes::kValue, "PID"}, functions},
                   "[FUNC...]",
                   0,
                   SIZE_MAX,
                   "start timing (the chosen functions plus these)",
                   [this](const CommandArgs& a) {
                     check_pid(a);
                     change("start", a.list_and_positionals("--function"));
                   }});
    commands_.add({"stop",
                   {},
                   {{"--json", Takes::kNothing, ""}},
                   "",
                   0,
                   0,
                   "stop timing and print the results",
                   [this](const CommandArgs& a) { show("stop", a.has("--json")); }});
    commands_.add(
        {"add",
         {},
         {functions},
         "FUNC...",
         0,
         SIZE_MAX,
         "choose more functions, also while running",
         [this](const CommandArgs& a) { change("add", a.list_and_positionals("--function")); }});
    commands_.add(
        {"remove",
         {"rm"},
         {functions},
         "FUNC...",
         0,
         SIZE_MAX,
         "stop timing these",
         [this](const CommandArgs& a) { change("remove", a.list_and_positionals("--function")); }});
    commands_.add({"results",
                   {},
                   {{"--json", Takes::kNothing, ""}},
                   "",
                   0,
                   0,
                   "the figures so far",
                   [this](const CommandArgs& a) { show("results", a.has("--json")); }});
    commands_.add({"reset", {}, {}, "", 0, 0, "zero the figures", [this](const CommandArgs&) {
                     call({{"command", "reset"}});
                     write_stdout("reset: figures zeroed\n");
                   }});
    commands_.add({"status",
                   {},
                   {},
                   "",
                   0,
                   0,
                   "state, backend, clock, chosen functions",
                   [this](const CommandArgs&) {
                     auto reply = call({{"command", "status"}});
                     write_stdout(fmt::format(
                         "running: {}\nbackend: {}\nclock: {}\nfunctions: {}\n",
                         reply.value("running", false), reply.value("backend", std::string("?")),
                         reply.value("clock", std::string("?")), reply["functions"].dump()));
                   }});
    commands_.add({"help", {"?"}, {}, "", 0, 0, "this list", [this](const CommandArgs&) {
                     write_stdout("(exact mode) " + commands_.help());
                   }});
    commands_.add({"exit", {"quit", "q"}, {}, "", 0, 0, "leave", [this](const CommandArgs&) {
                     done_ = true;
                   }});
  }

  int pid_;
  std::unique_ptr<exact::ControlClient> client_;
  bool unicode_;
  CommandTable commands_;
  bool done_ = false;
  int exit_code_ = 0;
};

}  // namespace

namespace {

// The table or JSON on stdout, or in `output` when given.
int write_results(const std::string& text, const std::string& output) {
  if (output.empty()) {
    write_stdout(text);
    return 0;
  }
  std::ofstream out(output, std::ios::binary);
  out << text;
  if (!out) throw Error(ErrorKind::kIo, fmt::format("cannot write {}", output));
  fmt::print(stderr, "spyglass: wrote {}\n", output);
  return 0;
}

}  // namespace

int run_exact_attach(int pid, const ProfileOptions& options) {
  if (options.subprocesses.value_or(false)) {
    throw Error(ErrorKind::kUsage,
                "attach --exact drives one process; for a process and its subprocesses use "
                "'spyglass record -p PID --exact -s -f FUNC...' or 'spyglass top -p PID --exact -s "
                "-f FUNC...'");
  }
  Connection connection = connect_or_inject(pid);
  const bool unicode = !options.ascii.value_or(false) && report::terminal_is_utf8();
  std::optional<Injection> injection = std::move(connection.injection);
  ExactPrompt prompt(pid, std::move(connection.client), unicode);
  if (injection) announce(pid, *injection, false);
  int code = 0;
  try {
    code = prompt.run(options.functions);
  } catch (...) {
    if (injection) prompt.close_injected(*injection);
    throw;
  }
  if (injection) prompt.close_injected(*injection);
  return code;
}

int run_exact_record(int pid, ProfileOptions& options) {
  resolve(options);
  if (options.functions.empty()) {
    throw Error(ErrorKind::kUsage, "record --exact: choose the functions to time with -f FUNC...");
  }
  const std::string output = options.output.value_or("");
  const OutputFormat format = resolve_output_format(options.format.value_or(""), output);
  if (format.kind == OutputFormat::Kind::kExport) {
    throw Error(ErrorKind::kUsage,
                fmt::format("record --exact writes the table or JSON, not {}", format.name()));
  }
  if (!output.empty()) check_writable(output);
  const bool json = format.kind == OutputFormat::Kind::kJson;
  if (options.subprocesses.value_or(false)) {
    const bool unicode = !options.ascii.value_or(false) && report::terminal_is_utf8();
    return write_results(record_exact_family(pid, options, json, unicode), output);
  }
  Connection connection = connect_or_inject(pid);
  const bool unicode = !options.ascii.value_or(false) && report::terminal_is_utf8();
  std::optional<Injection> injection = std::move(connection.injection);
  ExactPrompt prompt(pid, std::move(connection.client), unicode);
  if (injection) announce(pid, *injection, true);
  std::string text;
  try {
    prompt.call({{"command", "start"}, {"functions", options.functions}});
    install_stop_signals();
    fmt::print(stderr, "spyglass: timing {} in process {} exactly{}; Ctrl-C to stop\n",
               nlohmann::json(options.functions).dump(), pid,
               options.duration ? fmt::format(" for {:g} s", *options.duration) : "");
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::duration<double>(options.duration.value_or(1e9));
    while (!stop_requested() && std::chrono::steady_clock::now() < until) {
      if (!process::process_exists(pid)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    auto reply = prompt.call({{"command", "stop"},
                              {"table", !json},
                              {"unicode", unicode},
                              {"per_thread", options.per_thread.value_or(false)}});
    text = json ? reply["results"].dump(2) + "\n" : reply.value("table", std::string());
  } catch (...) {
    if (injection) prompt.close_injected(*injection);
    throw;
  }
  if (injection) prompt.close_injected(*injection);
  return write_results(text, output);
}

int run_exact_top(int pid, ProfileOptions& options, double refresh, bool once) {
  resolve(options);
  if (options.functions.empty()) {
    throw Error(ErrorKind::kUsage, "top --exact: choose the functions to time with -f FUNC...");
  }
  if (!(refresh >= 0.05 && refresh <= 3600)) {
    throw Error(ErrorKind::kUsage, "the refresh period must be 0.05 to 3600 seconds");
  }
  const bool unicode = !options.ascii.value_or(false) && report::terminal_is_utf8();
  if (options.subprocesses.value_or(false)) {
    return top_exact_family(pid, options, refresh, once, unicode);
  }
  Connection connection = connect_or_inject(pid);
  std::optional<Injection> injection = std::move(connection.injection);
  ExactPrompt prompt(pid, std::move(connection.client), unicode);
  if (injection) announce(pid, *injection, true);
  const bool tty = isatty(STDOUT_FILENO) != 0 && !once;
  bool was_running = false;
  try {
    was_running = prompt.call({{"command", "status"}}).value("running", false);
    prompt.call({{"command", "start"}, {"functions", options.functions}});
    install_stop_signals();
    while (!stop_requested()) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(refresh);
      while (!stop_requested() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (stop_requested() || !process::process_exists(pid)) break;
      auto reply = prompt.call({{"command", "results"},
                                {"unicode", unicode},
                                {"per_thread", options.per_thread.value_or(false)}});
      std::string screen = tty ? "\033[H\033[2J" : "";
      screen += reply.value("table", std::string());
      if (!write_stdout(screen) || once) break;
    }
    // Timing this command started ends with it.
    if (!injection && !was_running && process::process_exists(pid)) {
      prompt.call({{"command", "stop"}, {"table", false}});
    }
  } catch (...) {
    if (injection) prompt.close_injected(*injection);
    throw;
  }
  if (injection) prompt.close_injected(*injection);
  return 0;
}

}  // namespace spyglass::cli
