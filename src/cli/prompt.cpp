// `spyglass attach PID`: the interactive profiler. A prompt with line editing, history and
// completion (libedit); profiling runs in the background while commands are read.
#include <editline/readline.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/output.h"
#include "cli/session.h"
#include "cli/signals.h"
#include "process/error.h"
#include "process/maps.h"
#include "sampling/function_stats.h"

namespace spyglass::cli {
namespace {

struct CommandHelp {
  const char* name;
  const char* args;
  const char* help;
};

const CommandHelp kCommands[] = {
    {"start", "", "start (or resume) profiling"},
    {"stop", "", "stop profiling (results are kept)"},
    {"add", "FUNC...", "choose more functions (patterns: name, Class.method, module:qualname, "
                       "file.py:name, globs)"},
    {"remove", "FUNC...", "stop showing these functions"},
    {"results", "[--json] [--per-thread]", "the results so far (also while running)"},
    {"tree", "[FUNC]", "call paths into each chosen function and what it spends its time in"},
    {"export", "FILE [FORMAT]",
     "write flamegraph (.html), speedscope, collapsed, pprof, chrome, json or table"},
    {"watch", "[SECONDS]", "refresh the results every second until Enter"},
    {"reset", "", "forget everything gathered so far"},
    {"rate", "[HZ]", "show or change the sampling rate (also while running)"},
    {"interval", "SECONDS", "change the sampling rate as an interval"},
    {"mode", "[wall|cpu|gil]", "show or change what is counted"},
    {"status", "", "state, rate achieved, samples, late or missed samples, functions"},
    {"functions", "[PATTERN] [N]", "the functions seen so far, heaviest first"},
    {"threads", "", "the target's threads and what they are running"},
    {"help", "", "this list"},
    {"exit", "", "leave (prints the final results)"},
};

std::vector<std::string> split_words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

// What a mode or rate change did to the results (they are never mixed).
std::string run_switch_note(const sampling::RunSwitch& change) {
  std::string note;
  if (change.kept_samples > 0) {
    note += fmt::format("; the {} samples so far are kept apart (changing back shows them)",
                        change.kept_samples);
  }
  if (change.resumed_samples > 0) {
    note += fmt::format("; results go on from the {} samples taken before in this mode and rate",
                        change.resumed_samples);
  } else if (change.changed && change.kept_samples > 0) {
    note += "; results start afresh";
  }
  return note;
}

double parse_number(const std::string& text, const char* what) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  if (errno || end == text.c_str() || *end != '\0') {
    throw Error(ErrorKind::kUsage, fmt::format("'{}' is not a number of {}", text, what));
  }
  return v;
}

class Prompt;
Prompt* g_prompt = nullptr;  // for libedit's C callbacks

class Prompt {
 public:
  Prompt(Session& session, bool interactive) : session_(session), interactive_(interactive) {
    if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
      throw Error(ErrorKind::kIo, fmt::format("pipe: {}", std::strerror(errno)));
    }
    session_.sampler().on_exit([this] {
      char c = 'x';
      (void)!::write(wake_[1], &c, 1);
    });
  }
  ~Prompt() {
    session_.sampler().on_exit(nullptr);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  int run() {
    g_prompt = this;
    install_stop_signals();
    say(fmt::format("Attached to process {} (Python {}). Type 'help' for commands.",
                    session_.target().pid(), session_.target().runtime().layout.version.str()));
    if (!session_.functions().empty()) {
      say(fmt::format("Chosen: {}. Type 'start' to begin.", join(session_.functions())));
    }
    if (interactive_) setup_readline();
    while (!done_) {
      pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      int n = ::poll(fds, 2, -1);
      if (stop_requested()) {
        clear_stop_request();
        say("");
        finish("interrupted");
        break;
      }
      if (n < 0) continue;
      if (fds[1].revents & POLLIN) {
        finish("target exited");
        break;
      }
      if (fds[0].revents & (POLLIN | POLLHUP)) {
        if (interactive_) {
          rl_callback_read_char();
        } else if (!read_plain_lines()) {
          finish("end of input");
        }
      }
    }
    if (interactive_) {
      rl_callback_handler_remove();
      if (!history_file_.empty()) write_history(history_file_.c_str());
    }
    g_prompt = nullptr;
    return exit_code_;
  }

  // Called by libedit with each line (nullptr at end of input).
  void on_line(char* line) {
    if (!line) {
      say("");
      finish("end of input");
      return;
    }
    std::string text(line);
    std::free(line);
    if (!split_words(text).empty()) add_history(text.c_str());
    execute(text);
    // libedit leaves its unbuffered (character at a time) mode before calling us; without
    // this the next prompt would only be drawn once the next line had been typed.
    if (!done_) install_line_handler();
  }

  std::vector<std::string> completions(const std::string& text, bool first_word) {
    std::vector<std::string> out;
    if (first_word) {
      for (const auto& c : kCommands) {
        if (std::string(c.name).rfind(text, 0) == 0) out.push_back(c.name);
      }
      return out;
    }
    std::set<std::string> names;
    session_.sampler().with_profile([&](const sampling::Profile& profile) {
      for (sampling::FrameId f = 0; f < profile.frames.size(); ++f) {
        const auto& fn = profile.frames.get(f).function;
        if (fn.rfind(text, 0) == 0) names.insert(fn);
      }
    });
    for (const auto& f : session_.functions()) {
      if (f.rfind(text, 0) == 0) names.insert(f);
    }
    out.assign(names.begin(), names.end());
    return out;
  }

 private:
  static std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
    return out;
  }

  void say(const std::string& text) { write_stdout(text + "\n"); }

  void setup_readline() {
    const char* home = std::getenv("HOME");
    if (home) {
      history_file_ = std::string(home) + "/.spyglass_history";
      read_history(history_file_.c_str());
    }
    rl_attempted_completion_function = [](const char* text, int start, int) -> char** {
      rl_attempted_completion_over = 1;
      if (!g_prompt) return nullptr;
      static std::vector<std::string> matches;
      matches = g_prompt->completions(text, start == 0);
      static size_t next;
      next = 0;
      return rl_completion_matches(text, [](const char*, int) -> char* {
        return next < matches.size() ? strdup(matches[next++].c_str()) : nullptr;
      });
    };
    install_line_handler();
  }

  static void install_line_handler() {
    rl_callback_handler_install("spyglass> ", [](char* line) {
      if (g_prompt) g_prompt->on_line(line);
    });
  }

  // Without a terminal: whole lines from stdin, no editing. False at end of input.
  bool read_plain_lines() {
    char buf[4096];
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0) return errno == EINTR || errno == EAGAIN;
    if (n == 0) {
      if (!pending_.empty()) execute(std::exchange(pending_, ""));
      return false;
    }
    pending_.append(buf, static_cast<size_t>(n));
    for (size_t nl; !done_ && (nl = pending_.find('\n')) != std::string::npos;) {
      std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      execute(line);
    }
    return true;
  }

  void finish(const std::string& why) {
    if (done_) return;
    done_ = true;
    auto& sampler = session_.sampler();
    bool had_data = sampler.status().samples > 0;
    sampler.stop();
    if (why == "target exited") {
      say(fmt::format("\nProcess {} has exited. Final results:", session_.target().pid()));
    } else if (had_data) {
      say("Final results:");
    }
    if (had_data || why == "target exited") say(session_.render("table"));
  }

  void execute(const std::string& line) {
    auto words = split_words(line);
    if (words.empty()) return;
    const std::string cmd = words[0];
    std::vector<std::string> args(words.begin() + 1, words.end());
    try {
      dispatch(cmd, args);
    } catch (const Error& e) {
      say(fmt::format("error: {}", e.what()));
      if (e.kind() == ErrorKind::kNoSuchProcess) finish("target exited");
    }
  }

  void dispatch(const std::string& cmd, const std::vector<std::string>& args) {
    auto& sampler = session_.sampler();
    if (cmd == "help" || cmd == "?") {
      std::string out = "Commands:\n";
      for (const auto& c : kCommands) {
        out += fmt::format("  {:<34} {}\n", fmt::format("{} {}", c.name, c.args), c.help);
      }
      write_stdout(out);
    } else if (cmd == "start") {
      if (sampler.running()) return say("already running");
      sampler.start();
      auto st = sampler.status();
      say(fmt::format("profiling at {:g} Hz ({} mode){}", st.rate_hz, sampling::mode_name(st.mode),
                      session_.functions().empty()
                          ? "; no functions chosen yet: 'add FUNC' to choose"
                          : ""));
    } else if (cmd == "stop") {
      if (!sampler.running()) return say("not running");
      sampler.stop();
      auto st = sampler.status();
      say(fmt::format("stopped: {} samples over {:.2f} s; 'results' shows them", st.samples,
                      st.profiled_seconds));
    } else if (cmd == "add") {
      if (args.empty()) throw Error(ErrorKind::kUsage, "add: name at least one function");
      for (const auto& w : session_.add_functions(args)) say("warning: " + w);
      say(fmt::format("chosen: {}", join(session_.functions())));
    } else if (cmd == "remove" || cmd == "rm") {
      if (args.empty()) throw Error(ErrorKind::kUsage, "remove: name at least one function");
      for (const auto& u : session_.remove_functions(args)) {
        say(fmt::format("warning: '{}' was not chosen", u));
      }
      say(fmt::format("chosen: {}",
                      session_.functions().empty() ? "(none)" : join(session_.functions())));
    } else if (cmd == "results") {
      bool json = std::count(args.begin(), args.end(), "--json") > 0;
      if (json) return write_stdout(session_.render("json")), void();
      report::TableStyle style = session_.table_style();
      style.per_thread = std::count(args.begin(), args.end(), "--per-thread") > 0 ||
                         style.per_thread;
      write_stdout(report::render_table(session_.results(), style));
    } else if (cmd == "tree") {
      write_stdout(session_.tree(args.empty() ? "" : args[0]));
    } else if (cmd == "export") {
      if (args.empty()) throw Error(ErrorKind::kUsage, "export: give a file name");
      session_.write(args[0], args.size() > 1 ? args[1] : "");
      say(fmt::format("wrote {}", args[0]));
    } else if (cmd == "watch") {
      watch(args.empty() ? 1.0 : parse_number(args[0], "seconds"));
    } else if (cmd == "reset") {
      sampler.reset();
      say("reset: everything gathered so far is forgotten");
    } else if (cmd == "rate" || cmd == "interval") {
      if (args.empty()) {
        auto st = sampler.status();
        return say(fmt::format("rate {:g} Hz requested, {:.1f} Hz achieved", st.rate_hz,
                               st.achieved_rate_hz));
      }
      double v = parse_number(args[0], cmd == "rate" ? "Hz" : "seconds");
      if (cmd == "interval") {
        if (!(v > 0)) throw Error(ErrorKind::kUsage, "the interval must be positive");
        v = 1.0 / v;
      }
      say(fmt::format("rate set to {:g} Hz{}", v, run_switch_note(sampler.set_rate(v))));
    } else if (cmd == "mode") {
      if (args.empty()) {
        return say(fmt::format("mode {}", sampling::mode_name(sampler.status().mode)));
      }
      auto mode = sampling::parse_mode(args[0]);
      say(fmt::format("mode set to {}{}", sampling::mode_name(mode),
                      run_switch_note(sampler.set_mode(mode))));
    } else if (cmd == "status") {
      status();
    } else if (cmd == "functions") {
      functions(args);
    } else if (cmd == "threads") {
      threads();
    } else if (cmd == "exit" || cmd == "quit" || cmd == "q") {
      finish("exit");
    } else {
      say(fmt::format("error: unknown command '{}'; type 'help' for the list", cmd));
    }
  }

  void status() {
    auto st = session_.sampler().status();
    std::string out;
    out += fmt::format("state:      {}\n", st.target_exited ? "target exited"
                                           : st.running     ? "profiling"
                                                            : "stopped");
    out += fmt::format("target:     process {}, Python {}\n", session_.target().pid(),
                       session_.target().runtime().layout.version.str());
    out += fmt::format("mode:       {}\n", sampling::mode_name(st.mode));
    out += fmt::format("rate:       {:g} Hz requested, {:.1f} Hz achieved\n", st.rate_hz,
                       st.achieved_rate_hz);
    out += fmt::format("samples:    {} over {:.2f} s ({} thread stacks)\n", st.samples,
                       st.profiled_seconds, st.thread_samples);
    double pct = st.samples ? 100.0 * static_cast<double>(st.late) / static_cast<double>(st.samples)
                            : 0;
    out += fmt::format("late:       {} ({:.2f}%), missed {}, unreadable {}\n", st.late, pct,
                       st.missed, st.failed_walks);
    out += fmt::format("stacks:     {} read again (caught mid-change), {} left incomplete\n",
                       st.reread_stacks, st.incomplete_stacks);
    out += fmt::format(
        "walk:       {:.1f} µs per sample ({:.1f} µs of it reading memory), "
        "scheduling {}\n",
        st.mean_walk_us, st.mean_read_us, st.scheduling.empty() ? "not started" : st.scheduling);
    out += fmt::format("cost:       the sampling thread used {:.1f}% of a core\n",
                       st.profiled_seconds > 0
                           ? 100.0 * st.sampler_cpu_seconds / st.profiled_seconds
                           : 0.0);
    const auto& prefetch = session_.target().prefetch();
    uint64_t reads = prefetch.reads();
    out += fmt::format("reads:      {:.1f} system calls per sample, {:.1f}% of reads prefetched\n",
                       st.samples ? static_cast<double>(session_.target().memory().calls()) /
                                        static_cast<double>(st.samples)
                                  : 0.0,
                       reads ? 100.0 * static_cast<double>(prefetch.hits()) /
                                   static_cast<double>(reads)
                             : 0.0);
    out += fmt::format("functions:  {}\n", session_.functions().empty()
                                               ? "(none)"
                                               : join(session_.functions()));
    write_stdout(out);
  }

  void functions(const std::vector<std::string>& args) {
    std::string pattern;
    size_t limit = 20;
    for (const auto& a : args) {
      if (!a.empty() && std::all_of(a.begin(), a.end(), ::isdigit)) {
        limit = std::stoul(a);
      } else {
        pattern = a;
      }
    }
    std::vector<sampling::FunctionTotals> totals;
    session_.sampler().with_profile(
        [&](const sampling::Profile& p) { totals = sampling::function_totals(p, pattern); });
    if (totals.empty()) {
      return say(pattern.empty() ? "no functions seen yet: 'start' profiling first"
                                 : fmt::format("no function seen so far matches '{}'", pattern));
    }
    bool unicode = session_.table_style().unicode;
    std::string out = fmt::format("{:>10} {:>10} {:>8}  {}\n", "total", "self", "samples",
                                  "function (file:line)");
    for (size_t i = 0; i < totals.size() && i < limit; ++i) {
      const auto& t = totals[i];
      out += fmt::format("{:>10} {:>10} {:>8}  {} ({}:{})\n",
                         report::format_seconds(t.seconds, unicode),
                         report::format_seconds(t.self_seconds, unicode), t.samples, t.function,
                         t.file, t.firstlineno);
    }
    if (totals.size() > limit) out += fmt::format("... and {} more\n", totals.size() - limit);
    write_stdout(out);
  }

  void threads() {
    std::vector<cpython::ThreadStack> stacks;
    if (!session_.target().walk(stacks)) return say("could not read the threads; try again");
    auto names = session_.target().thread_names(stacks);
    std::string out;
    for (size_t i = 0; i < stacks.size(); ++i) {
      const auto& s = stacks[i];
      char state = '?';
      if (s.native_id) {
        if (auto st = process::read_thread_stat(session_.target().pid(), s.native_id))
          state = st->state;
      }
      out += fmt::format("{:>8}  {:<16} {}  {:<5} {}\n", s.native_id ? std::to_string(s.native_id) : "?",
                         names[i].empty() ? "-" : names[i], state,
                         s.holds_gil ? "GIL" : "",
                         s.frames.empty() ? "(no Python frames)"
                                          : fmt::format("{} ({}:{})", s.frames[0].code->qualname,
                                                        s.frames[0].code->filename,
                                                        s.frames[0].line));
    }
    write_stdout(out);
  }

  void watch(double seconds) {
    if (!(seconds > 0)) throw Error(ErrorKind::kUsage, "watch: the period must be positive");
    if (interactive_) rl_callback_handler_remove();
    while (!stop_requested()) {
      std::string screen = interactive_ ? "\033[H\033[2J" : "";
      screen += report::render_table(session_.results(), session_.table_style());
      screen += "(press Enter to return to the prompt)\n";
      write_stdout(screen);
      pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      int n = ::poll(fds, 2, static_cast<int>(seconds * 1000));
      if (n > 0 && (fds[1].revents & POLLIN)) break;  // target exited: the main loop reports
      if (n > 0 && (fds[0].revents & POLLIN)) {
        char buf[256];
        (void)!::read(STDIN_FILENO, buf, sizeof(buf));
        break;
      }
    }
    clear_stop_request();
    if (interactive_) install_line_handler();
  }

  Session& session_;
  bool interactive_;
  bool done_ = false;
  int exit_code_ = 0;
  int wake_[2] = {-1, -1};
  std::string pending_;
  std::string history_file_;
};

struct AttachOptions {
  int pid = 0;
  ProfileOptions profile;
};

int run_attach(AttachOptions& opt) {
  if (opt.profile.exact) return run_exact_attach(opt.pid, opt.profile);
  resolve(opt.profile);
  Session session(opt.pid, opt.profile);
  Prompt prompt(session, isatty(STDIN_FILENO) != 0);
  return prompt.run();
}

}  // namespace

Runner add_attach_command(CLI::App& app) {
  auto opt = std::make_shared<AttachOptions>();
  auto* cmd = app.add_subcommand("attach", "Profile a running process interactively");
  cmd->add_option("pid", opt->pid, "Process id of the Python program")->required();
  add_profile_options(*cmd, opt->profile, false);
  cmd->add_flag("--exact", opt->profile.exact,
                "Drive exact mode in the target (it must have spyglass's module listening)");
  return [opt] { return run_attach(*opt); };
}

}  // namespace spyglass::cli
