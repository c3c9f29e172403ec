// Why reading another process failed, in one line that names the cause and the fix.
#pragma once

#include <sys/types.h>

#include <string>

#include "process/error.h"

namespace spyglass::process {

// A message for a failed attempt to read process `pid` that failed with `err` (an errno value):
// ESRCH names the missing process; EPERM/EACCES name the first cause that applies (another
// user's process, kernel.yama.ptrace_scope, a container without CAP_SYS_PTRACE) with its fix.
std::string explain_access_error(pid_t pid, int err);
// The Error to throw for that failure: kNoSuchProcess for ESRCH/ENOENT, kPermission for
// EPERM/EACCES, kIo otherwise.
Error access_error(pid_t pid, int err);

}  // namespace spyglass::process
