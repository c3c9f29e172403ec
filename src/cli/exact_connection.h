// A connection to a process's exact-mode control socket (docs/protocol.md); when it has none,
// exact mode is started in it first (CPython 3.14+, exact_inject.h). Shared by `attach --exact`
// and by `record`/`top --exact`, on one process or a whole family (--subprocesses).
#pragma once

#include <memory>
#include <optional>

#include "cli/exact_inject.h"
#include "extension/protocol_client.h"

namespace spyglass::cli {

struct Connection {
  std::unique_ptr<exact::ControlClient> client;
  std::optional<Injection> injection;  // set when spyglass started exact mode in the process
};

// The process's socket, or exact mode started in it (3.14+). Throws Error with one line when
// neither works: no such process, no socket before 3.14, remote debugging turned off, ...
// `reply_timeout_seconds`: how long a request waits for the process's reply.
Connection connect_or_inject(int pid, int reply_timeout_seconds = 30);

// Turns exact mode off completely in a process spyglass started it in (`close`: timing stopped,
// the choice cleared, the socket closed and removed), then removes the injection's files.
// A process that exited meanwhile has nothing left to turn off. Never throws.
void close_injection(exact::ControlClient& client, int pid, const Injection& injection);

// "Started exact mode in process N through PEP 768 in S s ...", on stdout or stderr.
void announce(int pid, const Injection& injection, bool to_stderr);

}  // namespace spyglass::cli
