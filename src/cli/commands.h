// The spyglass subcommands. Each registers its options on the parser and returns the function
// that runs it and gives the exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "cli/options.h"

namespace spyglass::cli {

using Runner = std::function<int()>;
Runner add_dump_command(CLI::App& app);
Runner add_attach_command(CLI::App& app);
Runner add_record_command(CLI::App& app);
Runner add_run_command(CLI::App& app);
Runner add_top_command(CLI::App& app);

// `attach --exact`: the same prompt, driving exact mode in the target over its socket.
int run_exact_attach(int pid, const ProfileOptions& options);
// `record -p PID --exact -f FUNC... [-d S] [--format json -o F]`: times the functions exactly
// through the control socket (starting exact mode in the target when it has none).
int run_exact_record(int pid, ProfileOptions& options);
// `top -p PID --exact -f FUNC... [--refresh S] [--once]`: the exact table, refreshed.
int run_exact_top(int pid, ProfileOptions& options, double refresh, bool once);

}  // namespace spyglass::cli
