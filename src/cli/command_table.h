// The commands of a prompt (`attach`, `attach --exact`): each one's name, arguments, help and
// handler in one table, which also parses a typed line against the arguments (refusing what the
// command does not take, with its usage), writes `help`, and completes command names.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace spyglass::cli {

// One option of a command: a flag (`--json`), an option with a value (`-t SECONDS`) or a list
// (`-f FUNC...`, up to the next option).
struct CommandOption {
  enum class Takes { kNothing, kValue, kList };
  std::string names;  // "-t,--timeout" or "--json"
  Takes takes = Takes::kNothing;
  std::string value_name;  // "SECONDS", "FUNC"
};

// What a typed line gave a command, checked against its options.
struct CommandArgs {
  std::vector<std::string> positionals;
  std::map<std::string, std::vector<std::string>> options;  // by the option's first long name

  bool has(const std::string& option) const { return options.count(option) > 0; }
  // The option's value (the last one when given twice).
  std::optional<std::string> value(const std::string& option) const;
  // The option's values followed by the positionals (`add -f a b c`, `add a b c`).
  std::vector<std::string> list_and_positionals(const std::string& option) const;
};

struct Command {
  std::string name;
  std::vector<std::string> aliases;
  std::vector<CommandOption> options;
  std::string positionals;  // for usage: "FUNC...", "[HZ]", "FILE [FORMAT]"
  size_t min_positionals = 0;
  size_t max_positionals = 0;  // SIZE_MAX: any number
  std::string help;
  std::function<void(const CommandArgs&)> handler;

  std::string usage() const;  // "start [-p PID] [-f FUNC...] [-t SECONDS]"
};

class CommandTable {
 public:
  void add(Command command);
  // Splits `line` into words, finds the command, parses its arguments and runs it. Throws
  // Error(kUsage) for an unknown command, and with the command's usage for an argument it does
  // not take. Empty lines do nothing.
  void execute(const std::string& line) const;
  const Command* find(const std::string& name) const;
  // "Commands:" and one line per command: usage and help.
  std::string help() const;
  // Command names starting with `prefix`.
  std::vector<std::string> complete(const std::string& prefix) const;

 private:
  std::vector<Command> commands_;
};

// Parses `words` (the command's own, after its name) against `command`; throws Error(kUsage).
CommandArgs parse_command_args(const Command& command, const std::vector<std::string>& words);

}  // namespace spyglass::cli
