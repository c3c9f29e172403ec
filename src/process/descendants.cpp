#include "process/descendants.h"

#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <unordered_map>

#include "process/maps.h"

namespace spyglass::process {
namespace {

// Every process's parent, from /proc/*/stat.
std::unordered_multimap<pid_t, pid_t> children_by_parent() {
  std::unordered_multimap<pid_t, pid_t> out;
  DIR* dir = ::opendir("/proc");
  if (!dir) return out;
  while (dirent* entry = ::readdir(dir)) {
    if (!std::isdigit(static_cast<unsigned char>(entry->d_name[0]))) continue;
    const pid_t pid = std::stoi(entry->d_name);
    if (auto stat = read_thread_stat(pid, pid)) out.emplace(static_cast<pid_t>(stat->ppid), pid);
  }
  ::closedir(dir);
  return out;
}

bool has_children_files() {
  static const bool has =
      ::access(fmt::format("/proc/{}/task/{}/children", getpid(), getpid()).c_str(), R_OK) == 0;
  return has;
}

}  // namespace

std::vector<pid_t> descendants(pid_t pid, size_t limit) {
  std::vector<pid_t> out;
  std::vector<pid_t> queue{pid};
  if (!has_children_files()) {
    const auto children = children_by_parent();
    for (size_t i = 0; i < queue.size() && out.size() < limit; ++i) {
      auto [first, last] = children.equal_range(queue[i]);
      for (auto it = first; it != last && out.size() < limit; ++it) {
        queue.push_back(it->second);
        out.push_back(it->second);
      }
    }
    return out;
  }
  for (size_t i = 0; i < queue.size() && out.size() < limit; ++i) {
    const std::string tasks = fmt::format("/proc/{}/task", queue[i]);
    DIR* dir = ::opendir(tasks.c_str());
    if (!dir) continue;
    while (dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] == '.') continue;
      std::ifstream children(tasks + "/" + entry->d_name + "/children");
      for (pid_t child; children >> child && out.size() < limit;) {
        queue.push_back(child);
        out.push_back(child);
      }
    }
    ::closedir(dir);
  }
  return out;
}

std::string command_name(pid_t pid) {
  const std::string name = read_thread_name(pid, pid);  // the main thread's is the process's
  return name.empty() ? "?" : name;
}

std::vector<std::string> command_arguments(pid_t pid) {
  std::ifstream file(fmt::format("/proc/{}/cmdline", pid), std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::vector<std::string> out;
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\0', at);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

std::string command_line(pid_t pid) {
  std::string text;
  for (const std::string& argument : command_arguments(pid)) {
    text += (text.empty() ? "" : " ") + argument;
  }
  for (char& c : text) {
    if (c == '\n' || c == '\t') c = ' ';
  }
  return text.empty() ? command_name(pid) : text;
}

uint64_t exec_identity(pid_t pid) {
  const int fd = ::open(fmt::format("/proc/{}/auxv", pid).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  Elf64_auxv_t entries[64];
  const ssize_t n = ::read(fd, entries, sizeof(entries));
  ::close(fd);
  if (n <= 0) return 0;
  for (size_t i = 0; i < static_cast<size_t>(n) / sizeof(Elf64_auxv_t); ++i) {
    if (entries[i].a_type == AT_NULL) break;
    if (entries[i].a_type == AT_RANDOM) return entries[i].a_un.a_val;
  }
  return 0;
}

std::optional<bool> maps_python(pid_t pid) {
  std::ifstream maps(fmt::format("/proc/{}/maps", pid));
  bool any = false;
  for (std::string line; std::getline(maps, line);) {
    any = true;
    const auto slash = line.find('/');
    if (slash != std::string::npos && line.find("python", slash) != std::string::npos) return true;
  }
  if (!any) return std::nullopt;
  return false;
}

std::optional<double> seconds_since_start(pid_t pid) {
  auto stat = read_thread_stat(pid, pid);
  if (!stat || stat->start_ticks == 0) return std::nullopt;
  std::ifstream uptime_file("/proc/uptime");
  double uptime = 0;
  if (!(uptime_file >> uptime)) return std::nullopt;
  const long ticks = ::sysconf(_SC_CLK_TCK);
  if (ticks <= 0) return std::nullopt;
  return std::max(0.0,
                  uptime - static_cast<double>(stat->start_ticks) / static_cast<double>(ticks));
}

}  // namespace spyglass::process
