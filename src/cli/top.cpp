// `spyglass top PID`: a live view of the heaviest functions of the whole program, chosen
// functions (-f) first. Like py-spy's, it counts threads on a CPU only unless --idle is given;
// keys: q quits, s changes the order, ? shows them.
#include <fmt/format.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/session.h"
#include "cli/signals.h"
#include "common/error.h"
#include "process/maps.h"
#include "sampling/function_stats.h"

namespace spyglass::cli {
namespace {

enum class SortBy { kOwn, kTotal, kName };
constexpr const char* kSortNames[] = {"own time", "total time", "name"};

struct TopOptions {
  int pid = 0;
  double refresh = 1.0;
  size_t rows = 25;
  bool once = false;  // one refresh, no screen clearing (for scripts and tests)
  bool idle = false;  // count threads that sleep too (wall mode)
  bool full_paths = false;
  bool idle_hidden = false;  // the mode is cpu because none was named
  ProfileOptions profile;
};

// "app/handlers.py" of "/srv/app/handlers.py": the file and its folder, enough to tell files
// apart in a narrow column.
std::string short_file(const std::string& path) {
  auto last = path.rfind('/');
  if (last == std::string::npos || last == 0) return path;
  auto before = path.rfind('/', last - 1);
  return before == std::string::npos ? path : path.substr(before + 1);
}

class TopView {
 public:
  TopView(Session& session, const TopOptions& opt, bool unicode)
      : session_(session), opt_(opt), unicode_(unicode) {}

  void next_sort() { sort_ = static_cast<SortBy>((static_cast<int>(sort_) + 1) % 3); }
  void toggle_help() { help_ = !help_; }

  std::string render() {
    const auto st = session_.status();
    sampling::Profile profile = session_.snapshot();
    std::vector<sampling::ThreadSnapshot> threads;
    session_.threads(threads);
    std::string out = header(st, profile, threads);
    if (help_) {
      out += "\nkeys: q quit · s sort by own time, total time or name · ? this help\n";
    }
    out += "\n";
    const double d = st.profiled_seconds > 0 ? st.profiled_seconds : 1;
    out += fmt::format("{:>7} {:>7} {:>10} {:>10}  {}\n", "%own", "%total", "own", "total",
                       "function (file:line)");
    // The chosen functions first, as the other commands show them.
    if (!session_.functions().empty()) {
      for (const auto& f : session_.results().functions) {
        out += fmt::format("{:>6.1f}% {:>6.1f}% {:>10} {:>10}  * {}{}\n",
                           100 * f.figures.self_seconds / d, 100 * f.figures.seconds / d,
                           report::format_seconds(f.figures.self_seconds, unicode_),
                           report::format_seconds(f.figures.seconds, unicode_), f.name,
                           f.has_data ? "" : " (no data)");
      }
      out += "\n";
    }
    if (!session_.options().per_thread.value_or(false)) {
      out += rows(sampling::function_totals(profile), d, opt_.rows);
      return out;
    }
    // --per-thread: each thread's heaviest functions under its name.
    auto weights = std::move(profile.weights);
    for (size_t t = 0; t < weights.size() && t < profile.threads.size(); ++t) {
      profile.weights.assign(1, weights[t]);
      auto totals = sampling::function_totals(profile);
      if (totals.empty()) continue;
      const auto& info = profile.threads[t];
      out += fmt::format("thread {}{}\n", info.native_id,
                         info.name.empty() ? "" : fmt::format(" \"{}\"", info.name));
      out += rows(std::move(totals), d, std::max<size_t>(opt_.rows / 3, 5));
    }
    return out;
  }

 private:
  std::string header(const sampling::SamplerStatus& st, const sampling::Profile& profile,
                     const std::vector<sampling::ThreadSnapshot>& threads) {
    const char* dash = unicode_ ? "—" : "-";
    const char* dot = unicode_ ? "·" : "-";
    std::string family;
    if (session_.follows_subprocesses()) {
      const auto processes = session_.processes();
      const auto read = std::count_if(processes.begin(), processes.end(), [](const auto& p) {
        return p.sampled && p.state == "profiling";
      });
      family = fmt::format(" and its subprocesses ({} Python processes read)", read);
    }
    std::string out = fmt::format(
        "spyglass top {} process {}{} (Python {}), {} mode, {:.0f} Hz, {:.1f} s, {} samples\n",
        dash, session_.pid(), family, session_.python_version(), sampling::mode_name(st.mode),
        st.achieved_rate_hz, st.profiled_seconds, st.samples);
    size_t running = 0;
    std::string gil = "none seen";
    for (const auto& t : threads) {
      if (t.native_id) {
        auto stat = process::read_thread_stat(session_.pid(), t.native_id);
        if (stat && stat->state == 'R') ++running;
      }
      if (t.holds_gil) {
        gil = t.name.empty() ? fmt::format("thread {}", t.native_id)
                             : fmt::format("{} ({})", t.name, t.native_id);
      }
    }
    bool gil_known =
        std::any_of(threads.begin(), threads.end(), [](const auto& t) { return t.gil_known; });
    out += fmt::format("threads: {} ({} on a CPU now) {} GIL: {} {} {} profiled {} sorted by {}",
                       threads.size(), running, dot, gil_known ? gil : "unknown", dot,
                       profile.threads.size(), dot, kSortNames[static_cast<int>(sort_)]);
    if (st.mode == sampling::Mode::kCpu && opt_.idle_hidden) {
      out += fmt::format(" {} idle threads not counted (--idle counts them)", dot);
    }
    out += "\n";
    if (!opt_.once) out += "keys: q quit, s sort, ? help\n";
    return out;
  }

  std::string rows(std::vector<sampling::FunctionTotals> totals, double d, size_t limit) {
    std::sort(totals.begin(), totals.end(), [this](const auto& a, const auto& b) {
      switch (sort_) {
        case SortBy::kOwn:
          if (a.self_seconds != b.self_seconds) return a.self_seconds > b.self_seconds;
          return a.seconds > b.seconds;
        case SortBy::kTotal:
          if (a.seconds != b.seconds) return a.seconds > b.seconds;
          return a.self_seconds > b.self_seconds;
        case SortBy::kName:
          return a.function < b.function;
      }
      return false;
    });
    std::string out;
    for (size_t i = 0; i < totals.size() && i < limit; ++i) {
      const auto& t = totals[i];
      out +=
          fmt::format("{:>6.1f}% {:>6.1f}% {:>10} {:>10}  {} ({}:{})\n", 100 * t.self_seconds / d,
                      100 * t.seconds / d, report::format_seconds(t.self_seconds, unicode_),
                      report::format_seconds(t.seconds, unicode_), t.function,
                      opt_.full_paths ? t.file : short_file(t.file), t.firstlineno);
    }
    return out;
  }

  Session& session_;
  const TopOptions& opt_;
  bool unicode_;
  SortBy sort_ = SortBy::kOwn;
  bool help_ = false;
};

// Keys without Enter and without echo while top runs; the terminal is restored on the way out.
class RawKeys {
 public:
  RawKeys() {
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    active_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~RawKeys() {
    if (active_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  bool active() const { return active_; }

 private:
  termios saved_{};
  bool active_ = false;
};

int run_top(TopOptions& opt) {
  if (opt.profile.exact) return run_exact_top(opt.pid, opt.profile, opt.refresh, opt.once);
  resolve(opt.profile);
  // Like py-spy: threads asleep do not count unless asked (--idle, or a mode named).
  if (!opt.profile.mode) {
    opt.profile.sampler.mode = opt.idle ? sampling::Mode::kWall : sampling::Mode::kCpu;
    opt.idle_hidden = !opt.idle;
  }
  // NaN fails both comparisons; a zero period would spin instead of refreshing.
  if (!(opt.refresh >= 0.05 && opt.refresh <= 3600)) {
    throw Error(ErrorKind::kUsage, "the refresh period must be 0.05 to 3600 seconds");
  }
  opt.profile.sampler.timeline_spans = 0;
  Session session(opt.pid, opt.profile);
  install_stop_signals();
  TopView view(session, opt, session.table_style().unicode);
  const bool tty = isatty(STDOUT_FILENO) && !opt.once;
  RawKeys keys;
  session.start();
  bool quit = false;
  while (!stop_requested() && !quit) {
    bool stopped = false;
    if (keys.active() && !opt.once) {
      pollfd fd{STDIN_FILENO, POLLIN, 0};
      if (::poll(&fd, 1, static_cast<int>(opt.refresh * 1000)) > 0) {
        char c = 0;
        if (::read(STDIN_FILENO, &c, 1) == 1) {
          if (c == 'q' || c == 'Q') quit = true;
          if (c == 's' || c == 'S') view.next_sort();
          if (c == '?' || c == 'h') view.toggle_help();
        }
      }
      stopped = !session.running();
    } else {
      stopped = session.wait_stopped(opt.refresh);
    }
    if (quit) break;
    std::string screen = tty ? "\033[H\033[2J" : "";
    screen += view.render();
    if (!write_stdout(screen)) break;
    if (stopped) {
      fmt::print(stderr, "spyglass: process {} exited\n", opt.pid);
      break;
    }
    if (opt.once) break;
  }
  session.stop();
  return 0;
}

}  // namespace

Runner add_top_command(CLI::App& app) {
  auto opt = std::make_shared<TopOptions>();
  auto* cmd = app.add_subcommand("top", "Live view of the heaviest functions of a process");
  add_pid_option(*cmd, opt->pid);
  cmd->add_option("--refresh", opt->refresh, "Seconds between refreshes (default 1)");
  cmd->add_option("-n,--rows", opt->rows, "Functions shown (default 25)");
  cmd->add_flag("--once", opt->once, "Print one refresh and exit");
  cmd->add_flag("--idle", opt->idle, "Count threads that sleep or wait too (wall mode)");
  cmd->add_flag("--full-paths", opt->full_paths, "Show whole file paths");
  add_profile_options(*cmd, opt->profile, false);
  cmd->add_flag("--exact", opt->profile.exact,
                "The chosen functions timed exactly inside the target (its control socket; "
                "started by spyglass on CPython 3.14+)");
  return [opt] { return run_top(*opt); };
}

}  // namespace spyglass::cli
