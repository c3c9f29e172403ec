#include "extension/protocol_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace spyglass::exact {

std::string control_socket_path(int pid, unsigned uid) {
  const char* folder = std::getenv("SPYGLASS_SOCKET_DIR");
  std::string base = folder != nullptr && *folder != '\0'
                         ? std::string(folder)
                         : "/tmp/spyglass-" + std::to_string(uid);
  return base + "/" + std::to_string(pid) + ".sock";
}

long process_uid(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Uid:", 0) == 0) return std::strtol(line.c_str() + 4, nullptr, 10);
  }
  return -1;
}

ControlClient::ControlClient(const std::string& path, int timeout_seconds) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) {
    throw std::runtime_error("control socket path too long: " + path);
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  timeval timeout{timeout_seconds, 0};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  if (connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    int error = errno;
    close(fd_);
    fd_ = -1;
    std::string why = std::strerror(error);
    if (error == ENOENT || error == ECONNREFUSED) {
      why += " (is exact mode listening? spyglass.listen() or SPYGLASS_LISTEN=1 in the program)";
    }
    throw std::runtime_error("cannot connect to " + path + ": " + why);
  }
}

ControlClient::~ControlClient() {
  if (fd_ >= 0) close(fd_);
}

nlohmann::json ControlClient::request(const nlohmann::json& message) {
  std::string line = message.dump() + "\n";
  size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("control socket: send: ") + std::strerror(errno));
    }
    sent += static_cast<size_t>(n);
  }
  char chunk[65536];
  size_t newline;
  while ((newline = buffer_.find('\n')) == std::string::npos) {
    if (buffer_.size() > kMaxReply) throw std::runtime_error("control socket: reply too long");
    ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("control socket: recv: ") + std::strerror(errno));
    }
    if (n == 0) throw std::runtime_error("control socket: the program closed the connection");
    buffer_.append(chunk, static_cast<size_t>(n));
  }
  std::string reply = buffer_.substr(0, newline);
  buffer_.erase(0, newline + 1);
  nlohmann::json parsed = nlohmann::json::parse(reply, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    throw std::runtime_error("control socket: the reply is not a JSON object");
  }
  return parsed;
}

nlohmann::json ControlClient::command(const std::string& name,
                                      const std::vector<std::string>& functions) {
  nlohmann::json message = {{"command", name}};
  if (!functions.empty()) message["functions"] = functions;
  return request(message);
}

}  // namespace spyglass::exact
