#include "cli/command_table.h"

#include <fmt/format.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>

#include "common/error.h"
#include "common/text.h"

namespace spyglass::cli {
namespace {

std::vector<std::string> names_of(const CommandOption& option) {
  std::vector<std::string> names;
  size_t start = 0;
  while (start <= option.names.size()) {
    size_t comma = option.names.find(',', start);
    if (comma == std::string::npos) comma = option.names.size();
    if (comma > start) names.push_back(option.names.substr(start, comma - start));
    start = comma + 1;
  }
  return names;
}

// The name an option is stored under: its long name, else its only one.
std::string key_of(const CommandOption& option) {
  auto names = names_of(option);
  for (const auto& n : names) {
    if (n.starts_with("--")) return n;
  }
  return names.empty() ? std::string() : names.front();
}

bool looks_like_number(const std::string& word) {
  char* end = nullptr;
  errno = 0;
  std::strtod(word.c_str(), &end);
  return end != word.c_str() && *end == '\0';
}

const CommandOption* option_named(const Command& command, const std::string& word) {
  for (const auto& option : command.options) {
    for (const auto& name : names_of(option)) {
      if (name == word) return &option;
    }
  }
  return nullptr;
}

}  // namespace

std::optional<std::string> CommandArgs::value(const std::string& option) const {
  auto it = options.find(option);
  if (it == options.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> CommandArgs::list_and_positionals(const std::string& option) const {
  std::vector<std::string> out;
  if (auto it = options.find(option); it != options.end()) out = it->second;
  out.insert(out.end(), positionals.begin(), positionals.end());
  return out;
}

std::string Command::usage() const {
  std::string out = name;
  for (const auto& option : options) {
    auto names = names_of(option);
    std::string shown = names.empty() ? option.names : names.front();
    switch (option.takes) {
      case CommandOption::Takes::kNothing:
        out += fmt::format(" [{}]", shown);
        break;
      case CommandOption::Takes::kValue:
        out += fmt::format(" [{} {}]", shown, option.value_name);
        break;
      case CommandOption::Takes::kList:
        out += fmt::format(" [{} {}...]", shown, option.value_name);
        break;
    }
  }
  if (!positionals.empty()) out += " " + positionals;
  return out;
}

CommandArgs parse_command_args(const Command& command, const std::vector<std::string>& words) {
  auto refuse = [&](const std::string& why) {
    throw Error(ErrorKind::kUsage,
                fmt::format("{}: {}; usage: {}", command.name, why, command.usage()));
  };
  CommandArgs args;
  const CommandOption* list = nullptr;  // the list option being filled
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& word = words[i];
    // "-1" and "-0.5" are values (a rate the command itself refuses), not options.
    if (word.size() > 1 && word[0] == '-' && !looks_like_number(word)) {
      // --name=value is --name value.
      std::string name = word, inline_value;
      bool has_inline = false;
      if (auto eq = word.find('='); word.starts_with("--") && eq != std::string::npos) {
        name = word.substr(0, eq);
        inline_value = word.substr(eq + 1);
        has_inline = true;
      }
      const CommandOption* option = option_named(command, name);
      if (!option) refuse(fmt::format("unknown option '{}'", word));
      auto& values = args.options[key_of(*option)];
      list = nullptr;
      switch (option->takes) {
        case CommandOption::Takes::kNothing:
          if (has_inline) refuse(fmt::format("{} takes no value", name));
          break;
        case CommandOption::Takes::kValue:
          if (has_inline) {
            values.push_back(inline_value);
          } else if (i + 1 < words.size()) {
            values.push_back(words[++i]);
          } else {
            refuse(fmt::format("{} needs a value ({})", name, option->value_name));
          }
          break;
        case CommandOption::Takes::kList:
          if (has_inline) values.push_back(inline_value);
          list = option;
          break;
      }
      continue;
    }
    if (list) {
      args.options[key_of(*list)].push_back(word);
    } else {
      args.positionals.push_back(word);
    }
  }
  for (const auto& option : command.options) {
    if (option.takes == CommandOption::Takes::kList && args.has(key_of(option)) &&
        args.options[key_of(option)].empty()) {
      refuse(fmt::format("{} needs at least one {}", names_of(option).front(), option.value_name));
    }
  }
  if (args.positionals.size() > command.max_positionals) {
    refuse(
        command.max_positionals == 0
            ? fmt::format("it takes no argument ('{}')", args.positionals.front())
            : fmt::format("too many arguments ('{}')", args.positionals[command.max_positionals]));
  }
  if (args.positionals.size() < command.min_positionals) refuse("missing argument");
  return args;
}

void CommandTable::add(Command command) {
  commands_.push_back(std::move(command));
}

const Command* CommandTable::find(const std::string& name) const {
  for (const auto& c : commands_) {
    if (c.name == name) return &c;
    for (const auto& alias : c.aliases) {
      if (alias == name) return &c;
    }
  }
  return nullptr;
}

void CommandTable::execute(const std::string& line) const {
  auto words = split_words(line);
  if (words.empty()) return;
  const Command* command = find(words[0]);
  if (!command) {
    throw Error(ErrorKind::kUsage,
                fmt::format("unknown command '{}'; type 'help' for the list", words[0]));
  }
  command->handler(parse_command_args(*command, {words.begin() + 1, words.end()}));
}

std::string CommandTable::help() const {
  std::string out = "Commands:\n";
  size_t width = 0;
  for (const auto& c : commands_) width = std::max(width, c.usage().size());
  width = std::min<size_t>(width, 40);
  for (const auto& c : commands_) {
    std::string usage = c.usage();
    if (usage.size() > width) {
      out += fmt::format("  {}\n  {:<{}}  {}\n", usage, "", width, c.help);
    } else {
      out += fmt::format("  {:<{}}  {}\n", usage, width, c.help);
    }
  }
  return out;
}

std::vector<std::string> CommandTable::complete(const std::string& prefix) const {
  std::vector<std::string> out;
  for (const auto& c : commands_) {
    if (c.name.starts_with(prefix)) out.push_back(c.name);
  }
  return out;
}

}  // namespace spyglass::cli
