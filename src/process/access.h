// Why reading another process failed, in one line that names the cause and the fix.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/error.h"

namespace spyglass::process {

// What decides why reading another process is refused; gathered from /proc and the system.
struct AccessFacts {
  uid_t my_euid = 0;
  std::optional<uid_t> target_uid;   // owner of /proc/PID, when visible
  bool have_cap_sys_ptrace = false;  // CapEff bit 19 of /proc/self/status
  bool in_container = false;         // /.dockerenv, /run/.containerenv, $container, cgroup names
  std::optional<int> ptrace_scope;   // kernel.yama.ptrace_scope; none without Yama
};
AccessFacts gather_access_facts(pid_t pid);
// The one-line message for EPERM/EACCES given the facts (pure, for tests).
std::string explain_permission_denied(pid_t pid, const AccessFacts& facts);

// A message for a failed attempt to read process `pid` that failed with `err` (an errno value):
// ESRCH names the missing process; EPERM/EACCES name the first cause that applies (another
// user's process, kernel.yama.ptrace_scope, a container without CAP_SYS_PTRACE) with its fix.
std::string explain_access_error(pid_t pid, int err);
// The Error to throw for that failure: kNoSuchProcess for ESRCH/ENOENT, kPermission for
// EPERM/EACCES, kIo otherwise.
Error access_error(pid_t pid, int err);

}  // namespace spyglass::process
