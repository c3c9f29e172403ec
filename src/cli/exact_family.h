// Exact mode across a process and every Python process it starts (`record --exact -s`,
// `top --exact -s`): each one's control socket (or exact mode started in it, 3.14+), its
// figures read while it runs (kept when it exits), and all of them added up into one table.
#pragma once

#include <string>

#include "cli/options.h"

namespace spyglass::cli {

// Times options.functions in process `pid` and its subprocesses until options.duration, Ctrl-C
// or the family's end; returns the table (or with `json`, the JSON with its `processes`).
std::string record_exact_family(int pid, const ProfileOptions& options, bool json, bool unicode);

// The table over the family, refreshed every `refresh` seconds until Ctrl-C (or once).
int top_exact_family(int pid, const ProfileOptions& options, double refresh, bool once,
                     bool unicode);

}  // namespace spyglass::cli
