// `spyglass top PID`: a live view of the heaviest functions of the whole program.
#include <fmt/format.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/session.h"
#include "cli/signals.h"
#include "process/error.h"
#include "sampling/function_stats.h"

namespace spyglass::cli {
namespace {

struct TopOptions {
  int pid = 0;
  double refresh = 1.0;
  size_t rows = 25;
  bool once = false;  // one refresh, no screen clearing (for scripts and tests)
  ProfileOptions profile;
};

std::string render_top(Session& session, const TopOptions& opt, bool unicode) {
  std::vector<sampling::FunctionTotals> totals;
  session.sampler().with_profile(
      [&](const sampling::Profile& p) { totals = sampling::function_totals(p); });
  auto st = session.sampler().status();
  std::string out = fmt::format(
      "spyglass top — process {} (Python {}), {} mode, {:.0f} Hz, {:.1f} s, {} samples\n\n",
      session.target().pid(), session.target().runtime().layout.version.str(),
      sampling::mode_name(st.mode), st.achieved_rate_hz, st.profiled_seconds, st.samples);
  if (!unicode) out = "spyglass top - " + out.substr(out.find("process"));
  out += fmt::format("{:>7} {:>7} {:>10} {:>10}  {}\n", "%own", "%total", "own", "total",
                     "function (file:line)");
  // Own time first, like top: where the CPU is right now.
  std::sort(totals.begin(), totals.end(), [](const auto& a, const auto& b) {
    return a.self_seconds != b.self_seconds ? a.self_seconds > b.self_seconds
                                            : a.seconds > b.seconds;
  });
  double d = st.profiled_seconds > 0 ? st.profiled_seconds : 1;
  for (size_t i = 0; i < totals.size() && i < opt.rows; ++i) {
    const auto& t = totals[i];
    out += fmt::format("{:>6.1f}% {:>6.1f}% {:>10} {:>10}  {} ({}:{})\n",
                       100 * t.self_seconds / d, 100 * t.seconds / d,
                       report::format_seconds(t.self_seconds, unicode),
                       report::format_seconds(t.seconds, unicode), t.function, t.file,
                       t.firstlineno);
  }
  return out;
}

int run_top(TopOptions& opt) {
  resolve(opt.profile);
  // NaN fails both comparisons; a zero period would spin instead of refreshing.
  if (!(opt.refresh >= 0.05 && opt.refresh <= 3600)) {
    throw Error(ErrorKind::kUsage, "the refresh period must be 0.05 to 3600 seconds");
  }
  Session session(opt.pid, opt.profile);
  install_stop_signals();
  bool unicode = session.table_style().unicode;
  bool tty = isatty(STDOUT_FILENO) && !opt.once;
  session.sampler().start();
  while (!stop_requested()) {
    bool stopped = session.sampler().wait_stopped(opt.refresh);
    std::string screen = tty ? "\033[H\033[2J" : "";
    screen += render_top(session, opt, unicode);
    if (!write_stdout(screen)) break;
    if (stopped) {
      fmt::print(stderr, "spyglass: process {} exited\n", opt.pid);
      break;
    }
    if (opt.once) break;
  }
  session.sampler().stop();
  return 0;
}

}  // namespace

Runner add_top_command(CLI::App& app) {
  auto opt = std::make_shared<TopOptions>();
  auto* cmd = app.add_subcommand("top", "Live view of the heaviest functions of a process");
  cmd->add_option("pid", opt->pid, "Process id of the Python program")->required();
  cmd->add_option("--refresh", opt->refresh, "Seconds between refreshes (default 1)");
  cmd->add_option("-n,--rows", opt->rows, "Functions shown (default 25)");
  cmd->add_flag("--once", opt->once, "Print one refresh and exit");
  add_profile_options(*cmd, opt->profile, false);
  return [opt] { return run_top(*opt); };
}

}  // namespace spyglass::cli
