#include "cli/exact_connection.h"

#include <fmt/format.h>

#include <cstdlib>
#include <string>

#include "cli/output.h"
#include "cli/signals.h"
#include "common/error.h"
#include "process/maps.h"

namespace spyglass::cli {
namespace {

// How long to wait for the target to run the injected script: $SPYGLASS_INJECT_TIMEOUT
// seconds, else 5.
double inject_timeout() {
  const char* text = std::getenv("SPYGLASS_INJECT_TIMEOUT");
  if (text != nullptr && *text != '\0') {
    char* end = nullptr;
    double value = std::strtod(text, &end);
    if (end != text && *end == '\0' && value > 0 && value <= 3600) return value;
  }
  return 5.0;
}

}  // namespace

Connection connect_or_inject(int pid, int reply_timeout_seconds) {
  if (!process::process_exists(pid)) {
    throw Error(ErrorKind::kNoSuchProcess, fmt::format("no process with id {}", pid));
  }
  long uid = exact::process_uid(pid);
  if (uid < 0) throw Error(ErrorKind::kNoSuchProcess, fmt::format("no process with id {}", pid));
  const std::string path = exact::control_socket_path(pid, static_cast<unsigned>(uid));
  Connection out;
  try {
    out.client = std::make_unique<exact::ControlClient>(path, reply_timeout_seconds);
    return out;
  } catch (const std::exception& e) {
    const std::string no_socket = fmt::format(
        "process {} has no exact-mode socket ({}); in the program call "
        "spyglass.listen() or run it with SPYGLASS_LISTEN=1",
        pid, e.what());
    // No socket: start exact mode in the target (CPython 3.14+, docs/exact.md).
    install_stop_signals();
    try {
      out.injection = inject_exact_mode(pid, static_cast<unsigned>(uid), path, inject_timeout());
    } catch (const Error& inject_error) {
      if (inject_error.kind() == ErrorKind::kNotPython) {
        throw Error(ErrorKind::kNotPython, no_socket);
      }
      throw;
    }
  }
  try {
    out.client =
        std::make_unique<exact::ControlClient>(out.injection->socket_path, reply_timeout_seconds);
  } catch (const std::exception& connect_error) {
    remove_injection_files(*out.injection);
    throw Error(ErrorKind::kIo, fmt::format("process {} opened its exact-mode socket but it "
                                            "refused the connection: {}",
                                            pid, connect_error.what()));
  }
  return out;
}

void close_injection(exact::ControlClient& client, int pid, const Injection& injection) {
  try {
    nlohmann::json request = {{"command", "close"}};
    if (injection.program_imported_spyglass) request["keep_timing"] = true;
    auto reply = client.request(request);
    if (!reply.value("ok", false)) {
      fmt::print(stderr, "spyglass: process {} did not close exact mode: {}\n", pid,
                 reply.value("error", std::string("?")));
    }
  } catch (const std::exception&) {
    // The process exited, or the connection ended: nothing is left to turn off.
  }
  remove_injection_files(injection);
}

void announce(int pid, const Injection& injection, bool to_stderr) {
  const std::string text = fmt::format(
      "Started exact mode in process {} through {} in {:.3f} s (spyglass from {}); "
      "leaving turns it off.\n",
      pid, injection.how.empty() ? "PEP 768" : injection.how, injection.seconds,
      injection.package_folder);
  if (to_stderr) {
    fmt::print(stderr, "{}", text);
  } else {
    write_stdout(text);
  }
}

}  // namespace spyglass::cli
