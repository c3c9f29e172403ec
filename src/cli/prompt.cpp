// `spyglass attach PID`: the interactive profiler. A prompt with line editing, history and
// completion; profiling runs in the background while commands are read. The commands are one
// table (cli/command_table.h), as are those of `attach --exact` (exact_attach.cpp).
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "cli/command_table.h"
#include "cli/commands.h"
#include "cli/line_reader.h"
#include "cli/options.h"
#include "cli/output.h"
#include "cli/session.h"
#include "cli/signals.h"
#include "common/error.h"
#include "process/maps.h"

namespace spyglass::cli {
namespace {

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

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

void say(const std::string& text) {
  write_stdout(text + "\n");
}

using Takes = CommandOption::Takes;
const CommandOption kFunctionList{"-f,--function", Takes::kList, "FUNC"};
constexpr size_t kAny = SIZE_MAX;
// Piped input: how long after the target's exit (and after each line since) commands are still
// answered (see Prompt::answer_the_rest).
constexpr time_t kAnswerAfterExitSeconds = 2;

class Prompt {
 public:
  Prompt(Session& session, bool interactive)
      : session_(session),
        reader_("spyglass> ", interactive,
                [this](const std::string& text, bool first) { return complete(text, first); }) {
    if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
      throw Error(ErrorKind::kIo, fmt::format("pipe: {}", std::strerror(errno)));
    }
    session_.on_exit([this] {
      char c = 'x';
      (void)!::write(wake_[1], &c, 1);
    });
    add_commands();
  }
  ~Prompt() {
    session_.on_exit(nullptr);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  int run() {
    install_stop_signals();
    say(fmt::format("Attached to process {}{} (Python {}). Type 'help' for commands.",
                    session_.pid(), session_.follows_subprocesses() ? " and its subprocesses" : "",
                    session_.python_version()));
    if (!session_.functions().empty()) {
      say(fmt::format("Chosen: {}. Type 'start' to begin.", join(session_.functions())));
    }
    auto end = reader_.run([this](const std::string& line) { return execute(line); }, wake_[0]);
    switch (end) {
      case LineReader::End::kHandler:
        break;  // finished by a command
      case LineReader::End::kEndOfInput:
        if (reader_.interactive()) say("");
        finish("end of input");
        break;
      case LineReader::End::kInterrupted:
        say("");
        finish("interrupted");
        break;
      case LineReader::End::kWoken:
        finish("target exited");
        if (!reader_.interactive()) answer_the_rest();
        break;
    }
    return 0;
  }

 private:
  std::vector<std::string> complete(const std::string& text, bool first_word) {
    if (first_word) return commands_.complete(text);
    return session_.function_names(text);
  }

  void finish(const std::string& why) {
    if (done_) return;
    done_ = true;
    bool had_data = session_.status().samples > 0;
    session_.stop();
    if (why == "target exited") {
      say(fmt::format("\nProcess {} has exited. Final results:", session_.pid()));
    } else if (had_data) {
      say("Final results:");
    }
    if (had_data || why == "target exited") write_stdout(session_.table(session_.table_style()));
  }

  // Piped input, after the target exited: the commands a script wrote before it could know
  // (`stop`, `results --json`, `exit`) are still answered, from the results kept, up to `exit`,
  // the end of the input, or kAnswerAfterExitSeconds without a line. Without this a script got
  // the final table instead of its JSON whenever the target's exit was seen first (the test
  // suite's attach accuracy test, once, on a loaded machine); a script that keeps its pipe open
  // still sees spyglass end on its own.
  void answer_the_rest() {
    const int timer = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    if (timer < 0) return;
    auto arm = [timer] {
      itimerspec at{};
      at.it_value.tv_sec = kAnswerAfterExitSeconds;
      ::timerfd_settime(timer, 0, &at, nullptr);
    };
    arm();
    leaving_ = false;
    reader_.run(
        [&](const std::string& line) {
          execute(line);
          arm();
          return !leaving_;
        },
        timer);
    ::close(timer);
  }

  // False when the prompt is done.
  bool execute(const std::string& line) {
    try {
      commands_.execute(line);
    } catch (const Error& e) {
      say(fmt::format("error: {}", e.what()));
      if (e.kind() == ErrorKind::kNoSuchProcess) finish("target exited");
    }
    return !done_;
  }

  void add_commands() {
    commands_.add({"start",
                   {},
                   {{"-p,--pid", Takes::kValue, "PID"},
                    kFunctionList,
                    {"-t,--timeout", Takes::kValue, "SECONDS"}},
                   "",
                   0,
                   0,
                   "start (or resume) profiling; -f chooses functions, -t sets the interval",
                   [this](const CommandArgs& a) { start(a); }});
    commands_.add(
        {"stop", {}, {}, "", 0, 0, "stop profiling (results are kept)", [this](const CommandArgs&) {
           stop();
         }});
    commands_.add({"add",
                   {},
                   {kFunctionList},
                   "FUNC...",
                   0,
                   kAny,
                   "choose more functions (name, Class.method, module:qualname, file.py:name, "
                   "globs)",
                   [this](const CommandArgs& a) { add(a.list_and_positionals("--function")); }});
    commands_.add({"remove",
                   {"rm"},
                   {kFunctionList},
                   "FUNC...",
                   0,
                   kAny,
                   "stop showing these functions",
                   [this](const CommandArgs& a) { remove(a.list_and_positionals("--function")); }});
    commands_.add({"processes",
                   {"ps"},
                   {},
                   "",
                   0,
                   0,
                   "the processes profiled (--subprocesses): pid, state, samples, command line",
                   [this](const CommandArgs&) { processes(); }});
    commands_.add({"results",
                   {},
                   {{"--json", Takes::kNothing, ""},
                    {"--per-thread", Takes::kNothing, ""},
                    {"--per-process", Takes::kNothing, ""},
                    {"--pid", Takes::kValue, "PID"}},
                   "",
                   0,
                   0,
                   "the results so far (also while running)",
                   [this](const CommandArgs& a) { results(a); }});
    commands_.add({"tree",
                   {},
                   {},
                   "[FUNC]",
                   0,
                   1,
                   "call paths into each chosen function and what it spends its time in",
                   [this](const CommandArgs& a) {
                     write_stdout(session_.tree(a.positionals.empty() ? "" : a.positionals[0]));
                   }});
    commands_.add({"export",
                   {},
                   {{"--format", Takes::kValue, "FORMAT"}},
                   "FILE [FORMAT]",
                   1,
                   2,
                   "write flamegraph (.html), svg, speedscope, collapsed, pprof, chrome, json "
                   "or table (.txt)",
                   [this](const CommandArgs& a) { export_to(a); }});
    commands_.add({"watch",
                   {},
                   {},
                   "[SECONDS]",
                   0,
                   1,
                   "refresh the results every second until Enter",
                   [this](const CommandArgs& a) {
                     watch(a.positionals.empty() ? 1.0 : parse_number(a.positionals[0], "seconds"));
                   }});
    commands_.add({"reset",
                   {},
                   {},
                   "",
                   0,
                   0,
                   "forget everything gathered so far",
                   [this](const CommandArgs&) {
                     session_.reset();
                     say("reset: everything gathered so far is forgotten");
                   }});
    commands_.add({"rate",
                   {},
                   {},
                   "[HZ]",
                   0,
                   1,
                   "show or change the sampling rate (also while running)",
                   [this](const CommandArgs& a) { rate(a, false); }});
    commands_.add({"interval",
                   {},
                   {},
                   "[SECONDS]",
                   0,
                   1,
                   "show or change the sampling rate as an interval",
                   [this](const CommandArgs& a) { rate(a, true); }});
    commands_.add({"mode",
                   {},
                   {},
                   "[wall|cpu|gil]",
                   0,
                   1,
                   "show or change what is counted",
                   [this](const CommandArgs& a) { mode(a); }});
    commands_.add({"status",
                   {},
                   {},
                   "",
                   0,
                   0,
                   "state, rate achieved, samples, late or missed samples, functions",
                   [this](const CommandArgs&) { status(); }});
    commands_.add({"functions",
                   {},
                   {},
                   "[PATTERN] [N]",
                   0,
                   2,
                   "the functions seen so far, heaviest first",
                   [this](const CommandArgs& a) { functions(a.positionals); }});
    commands_.add({"threads",
                   {},
                   {},
                   "",
                   0,
                   0,
                   "the target's threads and what they are running",
                   [this](const CommandArgs&) { threads(); }});
    commands_.add({"help", {"?"}, {}, "", 0, 0, "this list", [this](const CommandArgs&) {
                     write_stdout(commands_.help());
                   }});
    commands_.add({"exit",
                   {"quit", "q"},
                   {},
                   "",
                   0,
                   0,
                   "leave (prints the final results)",
                   [this](const CommandArgs&) {
                     leaving_ = true;
                     finish("exit");
                   }});
  }

  // The earlier prototype's form too: `start -p PID -f a b -t 0.02`.
  void start(const CommandArgs& a) {
    if (auto pid = a.value("--pid")) {
      if (*pid != std::to_string(session_.pid())) {
        throw Error(ErrorKind::kUsage,
                    fmt::format("start -p {}: this prompt is attached to process {}; to profile "
                                "process {}, leave ('exit') and run 'spyglass attach {}'",
                                *pid, session_.pid(), *pid, *pid));
      }
    }
    if (auto seconds = a.value("--timeout")) set_interval(*seconds);
    if (a.has("--function")) add(a.options.at("--function"));
    if (session_.running()) return say("already running");
    session_.start();
    auto st = session_.status();
    say(fmt::format(
        "profiling at {:g} Hz ({} mode){}", st.rate_hz, sampling::mode_name(st.mode),
        session_.functions().empty() ? "; no functions chosen yet: 'add FUNC' to choose" : ""));
  }

  void stop() {
    if (!session_.running()) return say("not running");
    session_.stop();
    auto st = session_.status();
    say(fmt::format("stopped: {} samples over {:.2f} s; 'results' shows them", st.samples,
                    st.profiled_seconds));
  }

  void add(const std::vector<std::string>& functions) {
    if (functions.empty()) throw Error(ErrorKind::kUsage, "add: name at least one function");
    for (const auto& w : session_.add_functions(functions)) say("warning: " + w);
    say(fmt::format("chosen: {}", join(session_.functions())));
  }

  void remove(const std::vector<std::string>& functions) {
    if (functions.empty()) throw Error(ErrorKind::kUsage, "remove: name at least one function");
    for (const auto& u : session_.remove_functions(functions)) {
      say(fmt::format("warning: '{}' was not chosen", u));
    }
    say(fmt::format("chosen: {}",
                    session_.functions().empty() ? "(none)" : join(session_.functions())));
  }

  void results(const CommandArgs& a) {
    report::TableStyle style = session_.table_style();
    style.per_thread = style.per_thread || a.has("--per-thread");
    if (auto pid = a.value("--pid")) {
      const double number = parse_number(*pid, "a process id");
      if (a.has("--json")) {
        return write_stdout(
                   report::to_json(session_.results_of(static_cast<pid_t>(number))).dump(2) + "\n"),
               void();
      }
      return write_stdout(session_.table_of(static_cast<pid_t>(number), style)), void();
    }
    if (a.has("--json")) return write_stdout(session_.render("json")), void();
    write_stdout(a.has("--per-process") ? session_.table_per_process(style)
                                        : session_.table(style));
  }
  void processes() {
    const auto list = session_.processes();
    const bool unicode = session_.table_style().unicode;
    std::string out = fmt::format("{:>8}  {:<22} {:>9} {:>10} {:>9}  {}\n", "PID", "state",
                                  "samples", "walk", "found", "command");
    for (const auto& p : list) {
      std::string state = p.state.size() > 22 ? p.state.substr(0, 21) + "~" : p.state;
      out += fmt::format(
          "{:>8}  {:<22} {:>9} {:>10} {:>9}  {}\n", p.pid, state,
          p.sampled ? std::to_string(p.status.samples) : "-",
          p.sampled ? fmt::format("{:.1f} {}s", p.status.mean_walk_us, unicode ? "µ" : "u") : "-",
          p.found_after_seconds > 0 ? fmt::format("+{:.0f} ms", p.found_after_seconds * 1000) : "-",
          p.command.size() > 100 ? p.command.substr(0, 97) + "..." : p.command);
    }
    if (!session_.follows_subprocesses()) {
      out += "(one process: attach with -s/--subprocesses to follow the processes it starts)\n";
    }
    write_stdout(out);
  }

  void export_to(const CommandArgs& a) {
    const std::string& file = a.positionals[0];
    std::string format =
        a.value("--format").value_or(a.positionals.size() > 1 ? a.positionals[1] : "");
    auto resolved = resolve_output_format(format, file);  // refuses before writing anything
    session_.write(file, resolved.name());
    say(fmt::format("wrote {} ({})", file, resolved.name()));
  }

  sampling::RunSwitch set_interval(const std::string& text) {
    double seconds = parse_number(text, "seconds");
    if (!(seconds > 0)) throw Error(ErrorKind::kUsage, "the interval must be positive");
    return session_.set_rate(1.0 / seconds);
  }

  void rate(const CommandArgs& a, bool as_interval) {
    if (a.positionals.empty()) {
      auto st = session_.status();
      return say(fmt::format("rate {:g} Hz requested, {:.1f} Hz achieved (interval {:g} s)",
                             st.rate_hz, st.achieved_rate_hz, 1.0 / st.rate_hz));
    }
    const sampling::RunSwitch change =
        as_interval ? set_interval(a.positionals[0])
                    : session_.set_rate(parse_number(a.positionals[0], "Hz"));
    say(fmt::format("rate set to {:g} Hz{}", session_.status().rate_hz, run_switch_note(change)));
  }

  void mode(const CommandArgs& a) {
    if (a.positionals.empty()) {
      return say(fmt::format("mode {}", sampling::mode_name(session_.status().mode)));
    }
    const sampling::Mode mode = sampling::parse_mode(a.positionals[0]);
    const sampling::RunSwitch change = session_.set_mode(mode);
    say(fmt::format("mode set to {}{}", sampling::mode_name(mode), run_switch_note(change)));
  }

  void status() {
    auto st = session_.status();
    std::string out;
    out += fmt::format("state:      {}\n", st.target_exited ? "target exited"
                                           : st.running     ? "profiling"
                                                            : "stopped");
    out += fmt::format("target:     process {}, Python {}\n", session_.pid(),
                       session_.python_version());
    out += fmt::format("mode:       {}\n", sampling::mode_name(st.mode));
    out += fmt::format("rate:       {:g} Hz requested, {:.1f} Hz achieved\n", st.rate_hz,
                       st.achieved_rate_hz);
    out += fmt::format("samples:    {} over {:.2f} s ({} thread stacks)\n", st.samples,
                       st.profiled_seconds, st.thread_samples);
    double pct =
        st.samples ? 100.0 * static_cast<double>(st.late) / static_cast<double>(st.samples) : 0;
    out += fmt::format("late:       {} ({:.2f}%), missed {}, unreadable {}\n", st.late, pct,
                       st.missed, st.failed_walks);
    if (!explained_late_) {
      explained_late_ = true;
      out +=
          "            (late: taken over half a period after its time; missed: a sampling time\n"
          "            skipped while the sampler woke a period or more late, its time to the next "
          "one;\n"
          "            unreadable: the target changed under the walk, dropped)\n";
    }
    out += fmt::format(
        "stacks:     {} read again (caught mid-change), {} left incomplete, {} read from the "
        "caller of a newest frame that had just returned, {} frames read again alone, {} "
        "caught returning (freeing their locals) and counted to them\n",
        st.reread_stacks, st.incomplete_stacks, st.returned_frames, st.frames_read_again,
        st.returning_frames);
    out += fmt::format(
        "threads:    thread list read again {} times (a thread ended under us), "
        "cut short {} times, not paused {} (--blocking: exiting or ended, or slow to stop)\n",
        st.reread_thread_lists, st.cut_thread_lists, st.unpaused_threads);
    if (st.async_aware) {
      out += fmt::format(
          "tasks:      {} suspended asyncio task stacks ({}), {} tasks unreadable, {} chains "
          "cut short, {} task lists cut short; {} drawn under their awaiter, {} awaiter "
          "records unreadable\n",
          st.task_samples, st.tasks_source.empty() ? "no tasks yet" : st.tasks_source,
          st.unreadable_tasks, st.cut_task_chains, st.cut_task_lists, st.linked_task_samples,
          st.unreadable_task_links);
    }
    out += fmt::format(
        "walk:       {:.1f} µs per sample ({:.1f} µs of it reading memory), "
        "scheduling {}\n",
        st.mean_walk_us, st.mean_read_us, st.scheduling.empty() ? "not started" : st.scheduling);
    out += fmt::format(
        "cost:       the sampling thread used {:.1f}% of a core\n",
        st.profiled_seconds > 0 ? 100.0 * st.sampler_cpu_seconds / st.profiled_seconds : 0.0);
    out += fmt::format(
        "reads:      {:.1f} system calls per sample, {:.1f}% of reads prefetched\n",
        st.samples ? static_cast<double>(st.read_calls) / static_cast<double>(st.samples) : 0.0,
        st.memory_reads ? 100.0 * static_cast<double>(st.prefetched_reads) /
                              static_cast<double>(st.memory_reads)
                        : 0.0);
    out += fmt::format(
        "code:       {} code objects read, {} known unchanged without a read (3.12+: no code "
        "object made since they were last read); {} counter readings that could not be "
        "right{}\n",
        st.code_reads, st.code_proofs, st.counter_faults,
        st.counter_off ? " (so the counter is no longer used)" : "");
    out += fmt::format(
        "unchanged:  {} of {} thread stacks known unchanged without a read (no other thread "
        "took the GIL since they were read)\n",
        st.unchanged_stacks, st.stacks_read + st.unchanged_stacks);
    if (session_.follows_subprocesses()) {
      for (const auto& p : session_.processes()) {
        if (!p.sampled) continue;
        out += fmt::format(
            "process:    {} {}: {} samples, {:.1f} µs per sample, {:.2f}% of a core{}\n", p.pid,
            p.state, p.status.samples, p.status.mean_walk_us,
            p.status.profiled_seconds > 0
                ? 100.0 * p.status.sampler_cpu_seconds / p.status.profiled_seconds
                : 0.0,
            p.found_after_seconds > 0
                ? fmt::format(", found {:.0f} ms after it started", p.found_after_seconds * 1000)
                : "");
      }
    }
    out += fmt::format("functions:  {}\n",
                       session_.functions().empty() ? "(none)" : join(session_.functions()));
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
    auto totals = session_.function_totals(pattern);
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
    std::vector<sampling::ThreadSnapshot> threads;
    if (!session_.threads(threads)) return say("could not read the threads; try again");
    std::string out = fmt::format("{:>8}  {:<20} {}  {:<5} {}\n", "TID", "name", "S", "GIL",
                                  "running (innermost frame)");
    for (const auto& t : threads) {
      char state = '?';
      if (t.native_id) {
        if (auto st = process::read_thread_stat(session_.pid(), t.native_id)) state = st->state;
      }
      out += fmt::format("{:>8}  {:<20} {}  {:<5} {}\n",
                         t.native_id ? std::to_string(t.native_id) : "?",
                         t.name.empty() ? "-" : t.name, state, t.holds_gil ? "GIL" : "",
                         t.frames.empty() ? "(no Python frames)"
                                          : fmt::format("{} ({}:{})", t.frames[0].function,
                                                        t.frames[0].file, t.frames[0].line));
    }
    write_stdout(out);
  }

  void watch(double seconds) {
    if (!(seconds > 0)) throw Error(ErrorKind::kUsage, "watch: the period must be positive");
    reader_.suspend();
    while (!stop_requested()) {
      std::string screen = reader_.interactive() ? "\033[H\033[2J" : "";
      screen += session_.table(session_.table_style());
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
    reader_.resume();
  }

  Session& session_;
  LineReader reader_;
  CommandTable commands_;
  bool done_ = false;
  bool leaving_ = false;  // `exit` was asked
  bool explained_late_ = false;
  int wake_[2] = {-1, -1};
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
  add_pid_option(*cmd, opt->pid);
  add_profile_options(*cmd, opt->profile, false);
  cmd->add_flag("--exact", opt->profile.exact,
                "Drive exact mode in the target (it must have spyglass's module listening)");
  return [opt] { return run_attach(*opt); };
}

}  // namespace spyglass::cli
