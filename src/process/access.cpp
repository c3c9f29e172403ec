#include "process/access.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string_view>

namespace spyglass::process {
namespace {

constexpr int kCapSysPtraceBit = 19;

std::string read_small_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text;
}

std::optional<int> ptrace_scope() {
  std::string text = read_small_file("/proc/sys/kernel/yama/ptrace_scope");
  if (text.empty()) return std::nullopt;  // Yama not built in: no restriction from it.
  return std::atoi(text.c_str());
}

bool have_cap_sys_ptrace() {
  std::string status = read_small_file("/proc/self/status");
  size_t pos = status.find("\nCapEff:");
  if (pos == std::string::npos) return geteuid() == 0;
  unsigned long long caps = std::strtoull(status.c_str() + pos + 8, nullptr, 16);
  return (caps >> kCapSysPtraceBit) & 1;
}

bool in_container() {
  if (access("/.dockerenv", F_OK) == 0 || access("/run/.containerenv", F_OK) == 0) return true;
  if (const char* env = std::getenv("container"); env && *env) return true;
  std::string cgroup = read_small_file("/proc/1/cgroup");
  for (std::string_view marker : {"docker", "kubepods", "containerd", "lxc", "libpod"}) {
    if (cgroup.find(marker) != std::string::npos) return true;
  }
  return false;
}

std::string user_name(uid_t uid) {
  struct passwd pwd;
  struct passwd* result = nullptr;
  char buffer[1024];
  if (getpwuid_r(uid, &pwd, buffer, sizeof(buffer), &result) == 0 && result) {
    return fmt::format("{} (uid {})", result->pw_name, uid);
  }
  return fmt::format("uid {}", uid);
}

}  // namespace

AccessFacts gather_access_facts(pid_t pid) {
  AccessFacts facts;
  facts.my_euid = geteuid();
  struct stat proc_stat;
  if (stat(fmt::format("/proc/{}", pid).c_str(), &proc_stat) == 0) {
    facts.target_uid = proc_stat.st_uid;
  }
  facts.have_cap_sys_ptrace = have_cap_sys_ptrace();
  facts.in_container = in_container();
  facts.ptrace_scope = ptrace_scope();
  return facts;
}

std::string explain_permission_denied(pid_t pid, const AccessFacts& facts) {
  const bool has_cap = facts.have_cap_sys_ptrace;
  if (facts.my_euid != 0 && !has_cap && facts.target_uid && *facts.target_uid != facts.my_euid) {
    return fmt::format(
        "permission denied reading process {}: it belongs to user {} and you are {}; run as that "
        "user or with sudo",
        pid, user_name(*facts.target_uid), user_name(facts.my_euid));
  }
  if (!has_cap && facts.in_container) {
    return fmt::format(
        "permission denied reading process {}: this container lacks the SYS_PTRACE capability; "
        "add --cap-add SYS_PTRACE to docker run (or capabilities: add: [SYS_PTRACE] in "
        "Kubernetes)",
        pid);
  }
  const std::optional<int>& scope = facts.ptrace_scope;
  if (scope == 3) {
    return fmt::format(
        "permission denied reading process {}: kernel.yama.ptrace_scope is 3, which forbids "
        "reading other processes until the next reboot; boot with a lower ptrace_scope",
        pid);
  }
  if (scope && *scope >= 1 && !has_cap) {
    return fmt::format(
        "permission denied reading process {}: kernel.yama.ptrace_scope is {} ({}); run as root "
        "(sudo) or allow it with `sudo sysctl kernel.yama.ptrace_scope=0`",
        pid, *scope,
        *scope == 1 ? "only a parent may read its children" : "only root may read processes");
  }
  return fmt::format(
      "permission denied reading process {} (a seccomp, SELinux or AppArmor policy, or a "
      "non-dumpable target); try running with sudo",
      pid);
}

std::string explain_access_error(pid_t pid, int err) {
  switch (err) {
    case ESRCH:
    case ENOENT:
      return fmt::format("process {} does not exist (or has exited)", pid);
    case EPERM:
    case EACCES:
      return explain_permission_denied(pid, gather_access_facts(pid));
    default:
      return fmt::format("cannot read the memory of process {}: {}", pid, std::strerror(err));
  }
}

Error access_error(pid_t pid, int err) {
  ErrorKind kind = ErrorKind::kIo;
  if (err == ESRCH || err == ENOENT) kind = ErrorKind::kNoSuchProcess;
  if (err == EPERM || err == EACCES) kind = ErrorKind::kPermission;
  return Error(kind, explain_access_error(pid, err));
}

}  // namespace spyglass::process
