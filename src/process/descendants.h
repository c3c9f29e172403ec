// A process's family: the processes it started, and theirs (--subprocesses), what each runs,
// and whether a process is still running the program it ran before (exec replaces it).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace spyglass::process {

// The processes `pid` started and theirs, nearest first, at most `limit` of them. Read from
// /proc/PID/task/*/children (every thread's own children), or when the kernel lacks those
// files, from every process's parent in /proc/*/stat.
std::vector<pid_t> descendants(pid_t pid, size_t limit = 4096);
// /proc/PID/cmdline: the program's arguments, argv[0] first (empty when gone or a kernel thread).
std::vector<std::string> command_arguments(pid_t pid);
// /proc/PID/cmdline with its arguments joined by spaces (a program that rewrote its title, as
// gunicorn's workers do, shows that); the command's name (comm) when empty; "?" when gone.
std::string command_line(pid_t pid);
// /proc/PID/comm: the command's short name ("?" when gone).
std::string command_name(pid_t pid);
// A number that changes when the process runs a new program (execve), the same pid: the
// address of the kernel's random bytes on its new stack (auxv AT_RANDOM), placed anew at each
// exec; 0 when unreadable (the process has gone, or is not ours to read).
uint64_t exec_identity(pid_t pid);
// Whether any file the process has mapped has "python" in its name (the interpreter, its
// library, or an extension of a program embedding it): without one it cannot be Python.
// nullopt when no mapping could be read (the process is gone, or in the middle of an exec).
std::optional<bool> maps_python(pid_t pid);
// How long ago the process started (its start time in /proc/PID/stat against /proc/uptime,
// both in clock ticks of 10 ms); nullopt when it has gone.
std::optional<double> seconds_since_start(pid_t pid);

}  // namespace spyglass::process
