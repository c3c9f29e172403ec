// `spyglass attach PID --exact`: the same prompt, driving exact mode inside the target over its
// control socket (docs/protocol.md). The program must have opened it: spyglass.listen() or
// SPYGLASS_LISTEN=1.
#include <editline/readline.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/output.h"
#include "extension/protocol_client.h"
#include "process/error.h"
#include "process/maps.h"
#include "report/results.h"

namespace spyglass::cli {
namespace {

std::vector<std::string> words_of(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

const char* kExactHelp =
    "Commands (exact mode):\n"
    "  start [FUNC...]     start timing (the chosen functions plus these)\n"
    "  stop                stop timing and print the results\n"
    "  add FUNC...         choose more functions, also while running\n"
    "  remove FUNC...      stop timing these\n"
    "  results [--json]    the figures so far\n"
    "  reset               zero the figures\n"
    "  status              state, backend, clock, chosen functions\n"
    "  help, exit\n";

// Reads one line: libedit on a terminal, plain stdin otherwise. False at end of input.
bool read_line(bool interactive, std::string& line) {
  if (interactive) {
    char* raw = readline("spyglass (exact)> ");
    if (!raw) return false;
    line = raw;
    std::free(raw);
    if (!words_of(line).empty()) add_history(line.c_str());
    return true;
  }
  return static_cast<bool>(std::getline(std::cin, line));
}

}  // namespace

int run_exact_attach(int pid, const ProfileOptions& options) {
  if (!process::process_exists(pid)) {
    throw Error(ErrorKind::kNoSuchProcess, fmt::format("no process with id {}", pid));
  }
  long uid = exact::process_uid(pid);
  if (uid < 0) throw Error(ErrorKind::kNoSuchProcess, fmt::format("no process with id {}", pid));
  std::unique_ptr<exact::ControlClient> client;
  try {
    client = std::make_unique<exact::ControlClient>(
        exact::control_socket_path(pid, static_cast<unsigned>(uid)));
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kNotPython,
                fmt::format("process {} has no exact-mode socket ({}); in the program call "
                            "spyglass.listen() or run it with SPYGLASS_LISTEN=1",
                            pid, e.what()));
  }
  const bool unicode = !options.ascii.value_or(false) && report::terminal_is_utf8();
  auto call = [&](const nlohmann::json& request) {
    nlohmann::json reply;
    try {
      reply = client->request(request);
    } catch (const std::exception& e) {
      throw Error(ErrorKind::kNoSuchProcess,
                  fmt::format("the connection to process {} ended: {}", pid, e.what()));
    }
    if (!reply.value("ok", false)) {
      throw Error(ErrorKind::kUsage, reply.value("error", std::string("request refused")));
    }
    return reply;
  };
  auto status = call({{"command", "status"}});
  write_stdout(fmt::format("Attached to process {} in exact mode (Python {}, {}). Type 'help'.\n",
                           pid, status.value("python", std::string("?")),
                           status.value("backend", std::string("?"))));
  if (!options.functions.empty()) {
    call({{"command", "add"}, {"functions", options.functions}});
    write_stdout("chosen: " + nlohmann::json(options.functions).dump() + "; 'start' to begin\n");
  }
  const bool interactive = isatty(STDIN_FILENO) != 0;
  std::string line;
  while (read_line(interactive, line)) {
    auto words = words_of(line);
    if (words.empty()) continue;
    std::string cmd = words[0];
    std::vector<std::string> args(words.begin() + 1, words.end());
    try {
      if (cmd == "exit" || cmd == "quit") break;
      if (cmd == "help") {
        write_stdout(kExactHelp);
      } else if (cmd == "results" || cmd == "stop") {
        bool json = !args.empty() && args[0] == "--json";
        auto reply = call({{"command", cmd}, {"unicode", unicode}, {"table", !json}});
        write_stdout(json ? reply["results"].dump(2) + "\n" : reply.value("table", std::string()));
      } else if (cmd == "start" || cmd == "add" || cmd == "remove") {
        if (cmd != "start" && args.empty()) {
          throw Error(ErrorKind::kUsage, fmt::format("{}: name at least one function", cmd));
        }
        auto reply = call({{"command", cmd}, {"functions", args}});
        write_stdout(fmt::format("{}: chosen {}\n", cmd, reply["functions"].dump()));
      } else if (cmd == "reset") {
        call({{"command", "reset"}});
        write_stdout("reset: figures zeroed\n");
      } else if (cmd == "status") {
        auto reply = call({{"command", "status"}});
        write_stdout(fmt::format("running: {}\nbackend: {}\nclock: {}\nfunctions: {}\n",
                                 reply.value("running", false),
                                 reply.value("backend", std::string("?")),
                                 reply.value("clock", std::string("?")),
                                 reply["functions"].dump()));
      } else {
        write_stdout(fmt::format("error: unknown command '{}'; type 'help' for the list\n", cmd));
      }
    } catch (const Error& e) {
      write_stdout(fmt::format("error: {}\n", e.what()));
      if (e.kind() == ErrorKind::kNoSuchProcess) return e.exit_code();
    }
  }
  return 0;
}

}  // namespace spyglass::cli
