#include "sampling/thread_state.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <string_view>

#include "process/maps.h"

namespace spyglass::sampling {

ThreadStateReader::~ThreadStateReader() {
  for (auto& [tid, fd] : fds_) ::close(fd);
}

char ThreadStateReader::state(pid_t tid) {
  if (tid <= 0) return '?';
  auto it = fds_.find(tid);
  if (it == fds_.end()) {
    int fd = ::open(fmt::format("/proc/{}/task/{}/stat", pid_, tid).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return '?';
    it = fds_.emplace(tid, fd).first;
  }
  char buf[512];
  ssize_t n = ::pread(it->second, buf, sizeof(buf), 0);
  if (n <= 0) {
    ::close(it->second);
    fds_.erase(it);
    return '?';
  }
  auto stat = process::parse_stat(std::string_view(buf, static_cast<size_t>(n)));
  return stat ? stat->state : '?';
}

void ThreadStateReader::forget_missing() {
  for (auto it = fds_.begin(); it != fds_.end();) {
    char buf[64];
    if (::pread(it->second, buf, sizeof(buf), 0) <= 0) {
      ::close(it->second);
      it = fds_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace spyglass::sampling
