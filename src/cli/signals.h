// Ctrl-C and SIGTERM: stop cleanly and print what was gathered.
#pragma once

namespace spyglass::cli {

// Installs handlers for SIGINT and SIGTERM that only set a flag (no SA_RESTART, so blocking
// calls return with EINTR and the loop notices).
void install_stop_signals();
bool stop_requested();
void clear_stop_request();
// The signal that asked us to stop (0 when none).
int stop_signal();

}  // namespace spyglass::cli
