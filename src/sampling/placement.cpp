#include "sampling/placement.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <string_view>

#include "process/maps.h"

namespace spyglass::sampling {

CpuPlacement::CpuPlacement() {
  CPU_ZERO(&allowed_);
  if (sched_getaffinity(0, sizeof allowed_, &allowed_) == 0) allowed_count_ = CPU_COUNT(&allowed_);
}

CpuPlacement::~CpuPlacement() {
  close_stat();
}

void CpuPlacement::close_stat() {
  if (stat_fd_ >= 0) ::close(stat_fd_);
  stat_fd_ = -1;
  stat_tid_ = 0;
}

void CpuPlacement::keep_off(pid_t pid, pid_t tid) {
  if (allowed_count_ < 2 || tid <= 0) return;
  if (tid != stat_tid_) {
    close_stat();
    stat_fd_ = ::open(fmt::format("/proc/{}/task/{}/stat", pid, tid).c_str(), O_RDONLY | O_CLOEXEC);
    if (stat_fd_ < 0) return;
    stat_tid_ = tid;
  }
  char buf[1024];
  const ssize_t n = ::pread(stat_fd_, buf, sizeof buf, 0);
  if (n <= 0) {  // the thread has ended
    close_stat();
    return;
  }
  const auto stat = process::parse_stat(std::string_view(buf, static_cast<size_t>(n)));
  if (!stat || stat->processor < 0 || stat->processor == avoided_cpu_ ||
      !CPU_ISSET(stat->processor, &allowed_)) {
    return;
  }
  cpu_set_t elsewhere = allowed_;
  CPU_CLR(stat->processor, &elsewhere);
  if (sched_setaffinity(0, sizeof elsewhere, &elsewhere) != 0) return;
  avoided_cpu_ = stat->processor;
  ++moves_;
}

}  // namespace spyglass::sampling
