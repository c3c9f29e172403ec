#include "cli/exact_family.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include "cli/exact_connection.h"
#include "cli/output.h"
#include "cli/signals.h"
#include "common/error.h"
#include "process/descendants.h"
#include "process/maps.h"
#include "report/exact_merge.h"
#include "report/results.h"

namespace spyglass::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// A worker forked from a process with its socket open opens its own at once; a spawned one when
// its program imports spyglass. Until it is this old, a process without a socket is looked at
// again rather than judged (or, on 3.14+, exact mode started in it from outside).
constexpr double kSocketGraceSeconds = 2.0;
// The script of a pending injection gives up after this long (or when spyglass has gone).
constexpr double kScriptDeadlineSeconds = 24 * 3600.0;
// A request waits this long for a process's reply (its control thread needs the GIL).
constexpr int kReplyTimeoutSeconds = 10;

enum class MemberState {
  kStarting,   // found, no socket yet
  kTimed,      // timing; its figures read while it runs
  kExited,     // timed, then exited: its figures as last read
  kNotPython,  // not Python (its children are still followed)
  kNotTimed,   // Python, but exact mode could not be reached in it (`reason`)
  kGone,       // exited before it could be timed
};

const char* label(MemberState state) {
  switch (state) {
    case MemberState::kStarting:
      return "starting";
    case MemberState::kTimed:
      return "timed";
    case MemberState::kExited:
      return "exited";
    case MemberState::kNotPython:
      return "not Python";
    case MemberState::kNotTimed:
      return "not timed";
    case MemberState::kGone:
      return "exited before it was timed";
  }
  return "?";
}

// A command line as notes show it: the program without its folder, the first 60 characters
// (the JSON has it whole).
std::string shortened(std::string command) {
  constexpr size_t kShown = 60;
  const size_t first_space = command.find(' ');
  const size_t slash = command.rfind('/', first_space);
  if (!command.empty() && command[0] == '/' && slash != std::string::npos) {
    command.erase(0, slash + 1);
  }
  if (command.size() <= kShown) return command;
  size_t cut = kShown;
  while (cut > 0 && (static_cast<unsigned char>(command[cut]) & 0xC0) == 0x80) --cut;
  return command.substr(0, cut) + "...";
}

struct Member {
  int pid = 0;
  std::string command;
  Clock::time_point found_at;
  MemberState state = MemberState::kStarting;
  std::string reason;  // kNotTimed: why; kTimed: the last read that failed, if any
  std::unique_ptr<exact::ControlClient> client;
  std::unique_ptr<PendingInjection> pending;  // exact mode asked for, not started yet (3.14+)
  std::optional<Injection> injection;         // exact mode started by spyglass
  bool started_by_spyglass = false;           // (injection is let go of at the end)
  std::optional<report::Results> figures;     // the last read
  Clock::time_point read_at, ended_at;
};

class ExactFamily {
 public:
  ExactFamily(int root, std::vector<std::string> functions)
      : root_(root), functions_(std::move(functions)), started_(Clock::now()) {}
  ExactFamily(const ExactFamily&) = delete;
  ExactFamily& operator=(const ExactFamily&) = delete;
  ~ExactFamily() { close(); }

  // Finds new members and reaches each one still starting: its socket, or exact mode asked for
  // in it (3.14+; before, a process without a socket is judged once kSocketGraceSeconds old),
  // then timing started.
  void look() {
    std::vector<pid_t> pids{root_};
    for (pid_t child : process::descendants(root_)) pids.push_back(child);
    const auto now = Clock::now();
    for (pid_t pid : pids) {
      if (members_.count(pid) != 0) continue;
      Member member;
      member.pid = pid;
      member.command = process::command_line(pid);
      member.found_at = now;
      members_.emplace(pid, std::move(member));
    }
    for (auto& [pid, member] : members_) {
      if (member.state == MemberState::kStarting) reach(member);
    }
  }

  // Reads every timed member's figures so far; a member that has exited keeps its last.
  void poll() {
    for (auto& [pid, member] : members_) {
      if (member.state == MemberState::kTimed) read(member, "results");
    }
  }

  // Stops timing in every member (their final figures), then turns off what spyglass started.
  void stop() {
    for (auto& [pid, member] : members_) {
      if (member.state == MemberState::kTimed) read(member, "stop");
    }
    close();
  }

  // The followed process has gone, and every member it left too.
  bool over() const {
    if (process::process_alive(root_)) return false;
    for (const auto& [pid, member] : members_) {
      if (member.state == MemberState::kTimed && process::process_alive(pid)) return false;
    }
    return true;
  }

  // Nothing timed and nothing left to wait for: every member judged and none reached.
  std::optional<std::string> nothing_timed() const {
    std::string reasons;
    for (const auto& [pid, member] : members_) {
      if (member.state == MemberState::kStarting || member.state == MemberState::kTimed ||
          member.state == MemberState::kExited) {
        return std::nullopt;
      }
      if (member.state == MemberState::kNotTimed) reasons += "; " + member.reason;
    }
    return fmt::format("no process of process {}'s family could be timed exactly{}", root_,
                       reasons.empty() ? ": none is Python" : reasons);
  }

  report::Results merged() const {
    std::vector<report::Results> parts;
    for (const auto& [pid, member] : members_) {
      if (member.figures) parts.push_back(*member.figures);
    }
    report::Results results = report::merge_exact_results(parts);
    results.pid = root_;
    results.target_exited = !process::process_alive(root_);
    std::vector<std::string> notes;
    size_t timed = 0, not_python = 0;
    for (const auto& [pid, member] : members_) {
      if (member.figures) ++timed;
      if (member.state == MemberState::kNotPython) ++not_python;
    }
    notes.push_back(
        fmt::format("exact mode in {} Python {} of process {} and its subprocesses, "
                    "added up{}",
                    timed, timed == 1 ? "process" : "processes", root_,
                    not_python ? fmt::format(" ({} not Python)", not_python) : ""));
    for (const auto& [pid, member] : members_) {
      if (member.state == MemberState::kExited && member.figures) {
        notes.push_back(fmt::format(
            "process {} ({}) exited during the run: its figures are those read {} before", pid,
            shortened(member.command),
            report::format_seconds(
                std::max(0.0, seconds_between(member.read_at, member.ended_at)))));
      } else if (member.state == MemberState::kNotTimed) {
        notes.push_back(fmt::format("process {} ({}) not timed: {}", pid, shortened(member.command),
                                    member.reason));
      } else if (member.state == MemberState::kStarting) {
        notes.push_back(fmt::format(
            "process {} ({}) not timed (yet): it has opened no exact-mode socket{}", pid,
            shortened(member.command),
            member.pending ? "; exact mode is asked for, to start at its next Python code" : ""));
      } else if (member.state == MemberState::kGone) {
        notes.push_back(fmt::format("process {} ({}) exited before it could be timed", pid,
                                    shortened(member.command)));
      } else if (member.state == MemberState::kTimed && !member.reason.empty()) {
        notes.push_back(
            fmt::format("process {} ({}): {}", pid, shortened(member.command), member.reason));
      }
    }
    notes.insert(notes.end(), results.notes.begin(), results.notes.end());
    results.notes = std::move(notes);
    return results;
  }

  nlohmann::json processes_json() const {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [pid, member] : members_) {
      nlohmann::json entry = {{"pid", pid},
                              {"command", member.command},
                              {"state", label(member.state)},
                              {"found_after_seconds", seconds_between(started_, member.found_at)},
                              {"exact_mode_started_by_spyglass", member.started_by_spyglass}};
      if (!member.reason.empty()) entry["reason"] = member.reason;
      if (member.figures) {
        entry["python_version"] = member.figures->python_version;
        entry["duration_seconds"] = member.figures->duration_seconds;
        entry["functions"] = report::to_json(*member.figures)["functions"];
      } else {
        entry["functions"] = nlohmann::json::array();
      }
      list.push_back(std::move(entry));
    }
    return list;
  }

  // Each timed process's own table, under a line naming it.
  std::string per_process_tables(const report::TableStyle& style) const {
    std::string out;
    for (const auto& [pid, member] : members_) {
      if (!member.figures) continue;
      out += fmt::format("\nprocess {}: {} ({})\n", pid, member.command, label(member.state));
      out += report::render_table(*member.figures, style);
    }
    return out;
  }

 private:
  void reach(Member& member) {
    const int pid = member.pid;
    if (!process::process_alive(pid)) {
      member.state = MemberState::kGone;
      return;
    }
    std::optional<bool> python = process::maps_python(pid);
    if (!python) return;  // in the middle of an exec: looked at again
    if (!*python) {
      member.state = MemberState::kNotPython;
      return;
    }
    long uid = exact::process_uid(pid);
    if (uid < 0) return;
    try {
      // Once exact mode is asked for, the socket is the script's, known from its answer.
      if (member.pending) throw std::runtime_error("asked for");
      member.client = std::make_unique<exact::ControlClient>(
          exact::control_socket_path(pid, static_cast<unsigned>(uid)), kReplyTimeoutSeconds);
    } catch (const std::exception&) {
      // No socket yet. A young worker may be about to open one; else, ask for one (3.14+):
      // a process blocked in C takes the request when it next runs Python code, so it is left
      // pending while the others are looked after.
      const double age = process::seconds_since_start(pid).value_or(1e9);
      const bool young = pid != root_ && age < kSocketGraceSeconds;
      try {
        if (!member.pending) {
          try {
            member.pending = std::make_unique<PendingInjection>(
                pid, static_cast<unsigned>(uid),
                exact::control_socket_path(pid, static_cast<unsigned>(uid)),
                kScriptDeadlineSeconds);
          } catch (const Error&) {
            if (young) return;  // not 3.14+, or still starting: its own socket may come
            throw;
          }
        }
        std::optional<Injection> injection = member.pending->answer();
        if (!injection) return;
        member.pending.reset();
        member.injection = std::move(injection);
        member.started_by_spyglass = true;
        member.client = std::make_unique<exact::ControlClient>(member.injection->socket_path,
                                                               kReplyTimeoutSeconds);
      } catch (const std::exception& e) {
        member.pending.reset();
        if (!process::process_alive(pid)) {
          member.state = MemberState::kGone;
        } else {
          member.state = MemberState::kNotTimed;
          member.reason = e.what();
        }
        return;
      }
    }
    try {
      auto reply = member.client->request({{"command", "start"}, {"functions", functions_}});
      if (!reply.value("ok", false)) {
        member.state = MemberState::kNotTimed;
        member.reason = reply.value("error", std::string("start refused"));
        return;
      }
    } catch (const std::exception& e) {
      member.state = process::process_alive(pid) ? MemberState::kNotTimed : MemberState::kGone;
      member.reason = e.what();
      return;
    }
    member.state = MemberState::kTimed;
    fmt::print(stderr, "spyglass: timing process {} ({}){}\n", pid, shortened(member.command),
               member.injection ? fmt::format(", exact mode started in it in {:.3f} s",
                                              member.injection->seconds)
                                : std::string());
    read(member, "results");
  }

  // One `results` or `stop` request: the member's figures now. A member whose connection ended
  // has exited (its figures stay those last read), or stopped answering (said so).
  void read(Member& member, const char* command) {
    try {
      auto reply = member.client->request({{"command", command}, {"table", false}});
      if (!reply.value("ok", false)) {
        member.reason =
            fmt::format("'{}' refused: {}", command, reply.value("error", std::string("?")));
        return;
      }
      auto it = reply.find("results");
      if (it == reply.end()) throw std::invalid_argument("no results in the reply");
      member.figures = report::exact_results_from_json(*it);
      member.read_at = Clock::now();
      member.reason.clear();
    } catch (const std::invalid_argument& e) {
      member.reason = fmt::format("its results could not be read ({}): left out", e.what());
      member.figures.reset();
    } catch (const std::exception& e) {
      if (!process::process_alive(member.pid)) {
        member.state = MemberState::kExited;
        member.ended_at = Clock::now();
        member.client.reset();
      } else {
        member.reason = fmt::format("no reply to '{}': {}", command, e.what());
      }
    }
  }

  void close() {
    for (auto& [pid, member] : members_) {
      if (member.pending) {
        try {
          // Answered at the last moment: closed as any other; else withdrawn.
          if (auto injection = member.pending->answer()) {
            member.injection = std::move(injection);
            member.client = std::make_unique<exact::ControlClient>(member.injection->socket_path,
                                                                   kReplyTimeoutSeconds);
          }
        } catch (const std::exception&) {
        }
        member.pending.reset();
        if (member.state == MemberState::kStarting) {
          member.state = MemberState::kNotTimed;
          member.reason =
              "exact mode was asked for, but the process ran no Python code while timed (blocked "
              "in a C call)";
        }
      }
      if (member.injection && member.client)
        close_injection(*member.client, pid, *member.injection);
      member.injection.reset();
      member.client.reset();
    }
  }

  int root_;
  std::vector<std::string> functions_;
  Clock::time_point started_;
  std::map<int, Member> members_;
};

constexpr auto kLookPeriod = std::chrono::milliseconds(50);
constexpr auto kReadPeriod = std::chrono::milliseconds(250);

// Looks for new members every 50 ms and reads figures every 250 ms until `until`, Ctrl-C or the
// family's end. False when the family has ended.
bool follow_until(ExactFamily& family, Clock::time_point until) {
  auto next_read = Clock::now() + kReadPeriod;
  while (!stop_requested() && Clock::now() < until) {
    if (family.over()) return false;
    std::this_thread::sleep_for(kLookPeriod);
    family.look();
    if (Clock::now() >= next_read) {
      family.poll();
      next_read = Clock::now() + kReadPeriod;
    }
  }
  return true;
}

report::TableStyle style_of(const ProfileOptions& options, bool unicode) {
  report::TableStyle style;
  style.unicode = unicode;
  style.per_thread = options.per_thread.value_or(false);
  style.max_matches = options.matches.value_or(report::TableStyle::kDefaultMaxMatches);
  style.max_width = terminal_width();
  return style;
}

void start_family(ExactFamily& family, int pid) {
  if (!process::process_exists(pid)) {
    throw Error(ErrorKind::kNoSuchProcess, fmt::format("no process with id {}", pid));
  }
  family.look();
  if (auto none = family.nothing_timed()) throw Error(ErrorKind::kNotPython, *none);
}

}  // namespace

std::string record_exact_family(int pid, const ProfileOptions& options, bool json, bool unicode) {
  ExactFamily family(pid, options.functions);
  install_stop_signals();
  fmt::print(stderr,
             "spyglass: timing {} exactly in process {} and its subprocesses{}; Ctrl-C to stop\n",
             nlohmann::json(options.functions).dump(), pid,
             options.duration ? fmt::format(" for {:g} s", *options.duration) : "");
  start_family(family, pid);
  follow_until(family,
               Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(options.duration.value_or(1e9))));
  family.poll();
  family.stop();
  report::Results results = family.merged();
  if (json) {
    nlohmann::json document = report::to_json(results);
    document["processes"] = family.processes_json();
    return document.dump(2) + "\n";
  }
  const report::TableStyle style = style_of(options, unicode);
  std::string text = report::render_table(results, style);
  if (options.per_process.value_or(false)) text += family.per_process_tables(style);
  return text;
}

int top_exact_family(int pid, const ProfileOptions& options, double refresh, bool once,
                     bool unicode) {
  ExactFamily family(pid, options.functions);
  install_stop_signals();
  start_family(family, pid);
  const bool tty = isatty(STDOUT_FILENO) != 0 && !once;
  const report::TableStyle style = style_of(options, unicode);
  while (true) {
    const bool going =
        follow_until(family, Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                std::chrono::duration<double>(refresh)));
    if (stop_requested()) break;
    family.poll();
    std::string screen = tty ? "\033[H\033[2J" : "";
    screen += report::render_table(family.merged(), style);
    if (options.per_process.value_or(false)) screen += family.per_process_tables(style);
    if (!write_stdout(screen) || once || !going) break;
  }
  family.stop();
  return 0;
}

}  // namespace spyglass::cli
