// The spyglass subcommands. Each registers its options on the parser and runs when chosen.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace spyglass::cli {

// Registers a subcommand; the returned function runs it and gives the exit code.
using Runner = std::function<int()>;
Runner add_dump_command(CLI::App& app);

}  // namespace spyglass::cli
