// A client for exact mode's control socket (docs/protocol.md), with no Python dependency: what
// `spyglass attach PID --exact` links. Requests and replies are JSON objects, one per line.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace spyglass::exact {

// The socket of process `pid` run by `uid`: $SPYGLASS_SOCKET_DIR/<pid>.sock when set, else
// /tmp/spyglass-<uid>/<pid>.sock.
std::string control_socket_path(int pid, unsigned uid);

// The uid owning process `pid` (from /proc/PID/status), or -1.
long process_uid(int pid);

class ControlClient {
 public:
  static constexpr size_t kMaxReply = 64u << 20;  // results of many functions stay far below

  // Connects; throws std::runtime_error with a readable message (no socket: the program has not
  // called spyglass.listen() / SPYGLASS_LISTEN=1).
  explicit ControlClient(const std::string& path, int timeout_seconds = 30);
  ~ControlClient();
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  // Sends one request, waits for its reply. Throws std::runtime_error on I/O errors, on a reply
  // that is not JSON, and when the server closed the connection.
  nlohmann::json request(const nlohmann::json& message);
  // {"command": name, "functions": [...]} shorthand.
  nlohmann::json command(const std::string& name, const std::vector<std::string>& functions = {});

 private:
  int fd_ = -1;
  std::string buffer_;  // bytes received after the last reply's newline
};

}  // namespace spyglass::exact
