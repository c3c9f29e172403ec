#include "process/maps.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "common/error.h"
#include "process/access.h"

namespace spyglass::process {
namespace {

// Reads a whole /proc file (their sizes are unknown up front). Returns false with errno set.
bool read_proc_file(const std::string& path, std::string& out) {
  out.clear();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buffer[16384];
  while (true) {
    ssize_t got = ::read(fd, buffer, sizeof(buffer));
    if (got < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      close(fd);
      errno = saved;
      return false;
    }
    if (got == 0) break;
    out.append(buffer, static_cast<size_t>(got));
  }
  close(fd);
  return true;
}

// Takes the next field up to a single space; false when the line ends first.
bool next_field(std::string_view& rest, std::string_view& field) {
  size_t space = rest.find(' ');
  if (space == std::string_view::npos) return false;
  field = rest.substr(0, space);
  rest.remove_prefix(space + 1);
  return !field.empty();
}

bool parse_number(std::string_view text, uint64_t& value, int base) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  return ec == std::errc() && end == text.data() + text.size();
}

std::optional<Mapping> parse_maps_line(std::string_view line) {
  // start-end perms offset dev inode [spaces path]; the path may itself contain spaces.
  std::string_view range, perms, offset, device, inode;
  std::string_view rest = line;
  if (!next_field(rest, range) || !next_field(rest, perms) || !next_field(rest, offset) ||
      !next_field(rest, device)) {
    return std::nullopt;
  }
  size_t inode_end = rest.find(' ');
  inode = rest.substr(0, inode_end);
  rest = inode_end == std::string_view::npos ? std::string_view() : rest.substr(inode_end);

  Mapping mapping;
  size_t dash = range.find('-');
  if (dash == std::string_view::npos || !parse_number(range.substr(0, dash), mapping.start, 16) ||
      !parse_number(range.substr(dash + 1), mapping.end, 16) || mapping.end < mapping.start) {
    return std::nullopt;
  }
  if (perms.size() < 4 || !parse_number(offset, mapping.offset, 16) ||
      !parse_number(inode, mapping.inode, 10) || device.find(':') == std::string_view::npos) {
    return std::nullopt;
  }
  mapping.readable = perms[0] == 'r';
  mapping.writable = perms[1] == 'w';
  mapping.executable = perms[2] == 'x';

  size_t path_start = rest.find_first_not_of(' ');
  if (path_start != std::string_view::npos) {
    std::string_view path = rest.substr(path_start);
    constexpr std::string_view kDeleted = " (deleted)";
    if (path.size() > kDeleted.size() && path.ends_with(kDeleted)) {
      path.remove_suffix(kDeleted.size());
      mapping.deleted = true;
    }
    mapping.path = std::string(path);
  }
  return mapping;
}

}  // namespace

std::vector<Mapping> parse_maps(std::string_view text) {
  std::vector<Mapping> mappings;
  while (!text.empty()) {
    size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    if (auto mapping = parse_maps_line(line)) mappings.push_back(std::move(*mapping));
  }
  return mappings;
}

std::vector<Mapping> read_maps(pid_t pid) {
  std::string text;
  if (!read_proc_file(fmt::format("/proc/{}/maps", pid), text)) {
    throw access_error(pid, errno);
  }
  return parse_maps(text);
}

std::vector<pid_t> list_threads(pid_t pid) {
  std::vector<pid_t> threads;
  DIR* dir = opendir(fmt::format("/proc/{}/task", pid).c_str());
  if (!dir) return threads;
  while (struct dirent* entry = readdir(dir)) {
    uint64_t tid = 0;
    std::string_view name(entry->d_name);
    if (parse_number(name, tid, 10) && tid > 0 && tid <= INT32_MAX) {
      threads.push_back(static_cast<pid_t>(tid));
    }
  }
  closedir(dir);
  std::sort(threads.begin(), threads.end());
  return threads;
}

void ThreadIds::list(double now) {
  if (pid_ != 0) ids_ = list_threads(pid_);
  listed_at_ = now;
  listed_this_walk_ = true;
  ++listings_;
}

void ThreadIds::begin_walk(double now) {
  walk_started_ = now;
  listed_this_walk_ = false;
  if (listed_at_ < 0 || now - listed_at_ >= kMaxAgeSeconds) list(now);
}

bool ThreadIds::contains(pid_t tid) {
  if (std::binary_search(ids_.begin(), ids_.end(), tid)) return true;
  if (listed_this_walk_) return false;
  list(walk_started_);
  return std::binary_search(ids_.begin(), ids_.end(), tid);
}

std::optional<ThreadStat> parse_stat(std::string_view text) {
  // "tid (comm) state ppid ...": comm may hold spaces and ')' so fields start after the LAST ')'.
  size_t close_paren = text.rfind(')');
  if (close_paren == std::string_view::npos || text.find('(') > close_paren) return std::nullopt;
  std::string_view rest = text.substr(close_paren + 1);
  // Fields after comm, counted from 3 as in proc(5): state(3) ppid(4) ... utime(14) stime(15)
  // ... starttime(22) ... processor(39). Those up to stime must be there; the rest may not.
  constexpr int kStateField = 3, kPpidField = 4, kUtimeField = 14, kStimeField = 15,
                kStartField = 22, kProcessorField = 39;
  ThreadStat stat;
  int field = kStateField;
  while (field <= kProcessorField) {
    size_t start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos || rest[start] == '\n') {
      if (field > kStimeField) break;  // an older kernel's shorter line
      return std::nullopt;
    }
    rest.remove_prefix(start);
    size_t end = rest.find_first_of(" \n");
    std::string_view token = rest.substr(0, end);
    if (field == kStateField) {
      if (token.size() != 1) return std::nullopt;
      stat.state = token[0];
    } else if (field == kPpidField && !parse_number(token, stat.ppid, 10)) {
      return std::nullopt;
    } else if (field == kUtimeField && !parse_number(token, stat.utime_ticks, 10)) {
      return std::nullopt;
    } else if (field == kStimeField && !parse_number(token, stat.stime_ticks, 10)) {
      return std::nullopt;
    } else if (field == kStartField && !parse_number(token, stat.start_ticks, 10)) {
      stat.start_ticks = 0;
    } else if (field == kProcessorField) {
      uint64_t cpu = 0;
      if (parse_number(token, cpu, 10) && cpu < CPU_SETSIZE) stat.processor = static_cast<int>(cpu);
    }
    rest.remove_prefix(token.size());
    ++field;
  }
  return stat;
}

std::optional<ThreadStat> read_thread_stat(pid_t pid, pid_t tid) {
  // One read() of a small file: this runs for every thread at every sample.
  int fd = open(fmt::format("/proc/{}/task/{}/stat", pid, tid).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buffer[1024];
  ssize_t got = ::read(fd, buffer, sizeof(buffer));
  close(fd);
  if (got <= 0) return std::nullopt;
  return parse_stat(std::string_view(buffer, static_cast<size_t>(got)));
}

std::string thread_name_as_utf8(std::string_view name) {
  std::string out;
  size_t i = 0;
  while (i < name.size()) {
    const auto lead = static_cast<unsigned char>(name[i]);
    const size_t length = lead < 0x80           ? 1
                          : (lead >> 5) == 0x6  ? 2
                          : (lead >> 4) == 0xe  ? 3
                          : (lead >> 3) == 0x1e ? 4
                                                : 0;
    size_t good = length ? 1 : 0;
    while (good < length && i + good < name.size() &&
           (static_cast<unsigned char>(name[i + good]) & 0xc0) == 0x80) {
      ++good;
    }
    if (length && good == length) {
      out.append(name.substr(i, length));
      i += length;
    } else if (length && i + good == name.size()) {
      break;  // a character cut by the end of the name
    } else {
      out.push_back('?');
      i += good ? good : 1;
    }
  }
  return out;
}

std::string read_thread_name(pid_t pid, pid_t tid) {
  std::string name;
  if (!read_proc_file(fmt::format("/proc/{}/task/{}/comm", pid, tid), name)) return {};
  while (!name.empty() && (name.back() == '\n' || name.back() == '\0')) name.pop_back();
  return thread_name_as_utf8(name);
}

bool process_exists(pid_t pid) {
  if (pid <= 0) return false;
  struct stat info;
  return stat(fmt::format("/proc/{}", pid).c_str(), &info) == 0;
}

bool process_alive(pid_t pid) {
  if (!process_exists(pid)) return false;
  auto stat = read_thread_stat(pid, pid);
  return !stat || (stat->state != 'Z' && stat->state != 'X');
}

std::string path_in_process_root(pid_t pid, const std::string& path) {
  if (path.empty() || path[0] != '/') return path;
  std::string rooted = fmt::format("/proc/{}/root{}", pid, path);
  if (access(rooted.c_str(), R_OK) == 0) return rooted;
  return path;
}

}  // namespace spyglass::process
