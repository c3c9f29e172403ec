// spyglass: time chosen functions of a running Python program.
#include <fmt/format.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.h"
#include "common/error.h"

int main(int argc, char** argv) {
  // Output to a closed pipe ends quietly: writes fail with EPIPE instead of killing us.
  signal(SIGPIPE, SIG_IGN);
  CLI::App app{"spyglass: how long chosen functions of a running Python program take"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "spyglass 0.1.0");
  std::vector<std::pair<CLI::App*, spyglass::cli::Runner>> commands;
  for (auto add : {spyglass::cli::add_attach_command, spyglass::cli::add_record_command,
                   spyglass::cli::add_run_command, spyglass::cli::add_top_command,
                   spyglass::cli::add_dump_command}) {
    auto runner = add(app);
    commands.emplace_back(app.get_subcommands({}).back(), runner);
  }
  // Everything after the first "--" is the program `run` starts, given to it after parsing:
  // CLI11 takes a "--" right after a list option (`-f a b -- python x.py --flag`) as the end of
  // that list only, and would then parse the program's own options as spyglass's.
  int own_argc = argc;
  std::vector<std::string> program;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--") {
      own_argc = i;
      program.assign(argv + i + 1, argv + argc);
      break;
    }
  }
  try {
    app.parse(own_argc, argv);
    if (own_argc != argc) {
      CLI::App* run = app.get_subcommand("run");
      if (!run->parsed()) throw CLI::ExtrasError({"--"});
      CLI::Option* command = run->get_option("command");
      for (auto& arg : program) command->add_result(arg);
      if (!program.empty()) command->run_callback();
    }
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, as every other error: what is wrong and where to look.
    fmt::print(stderr, "spyglass: {}; see 'spyglass --help'\n", e.what());
    return static_cast<int>(spyglass::ErrorKind::kUsage);
  }
  try {
    for (auto& [sub, run] : commands) {
      if (sub->parsed()) return run();
    }
    return 2;
  } catch (const spyglass::Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "spyglass: {}\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "spyglass: internal error: {}\n", e.what());
    return 1;
  }
}
