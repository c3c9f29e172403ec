// One-shot forms for scripts: `spyglass record -p PID ...` and `spyglass run ... -- cmd args`.
#include <fmt/format.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/output.h"
#include "cli/session.h"
#include "cli/signals.h"
#include "common/clock.h"
#include "common/error.h"
#include "process/descendants.h"
#include "process/maps.h"

namespace spyglass::cli {
namespace {

std::string plural(size_t n, const char* one, const char* many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

// Everything about the output that can be wrong is found before sampling starts: a bad format,
// a name no format has, a folder that does not exist or cannot be written, binary data for a
// terminal. Returns the format the results will be written (or printed) in.
OutputFormat check_output(const ProfileOptions& opt) {
  const std::string output = opt.output.value_or("");
  OutputFormat format = resolve_output_format(opt.format.value_or(""), output);
  if (!output.empty()) {
    check_writable(output);
  } else if (format.binary() && isatty(STDOUT_FILENO)) {
    throw Error(ErrorKind::kUsage,
                fmt::format("{} is binary and stdout is a terminal: write it to a file with -o "
                            "FILE, or redirect stdout",
                            format.name()));
  }
  return format;
}

// "recording process 1234 (Python 3.12.1) at 1000 Hz, wall mode: 3 functions, for 5 s".
std::string start_line(const char* what, Session& session, const ProfileOptions& opt) {
  auto st = session.status();
  std::string functions = session.functions().empty()
                              ? std::string("no functions chosen (the call graph is kept)")
                              : plural(session.functions().size(), "function", "functions");
  std::string until = opt.duration
                          ? fmt::format("for {:g} s (Ctrl-C to stop earlier)", *opt.duration)
                          : std::string("until Ctrl-C");
  if (std::string(what) == "profiling" && !opt.duration)
    until = "until it exits (Ctrl-C to stop earlier)";
  const std::string family =
      session.follows_subprocesses() ? " and its subprocesses" : std::string();
  return fmt::format("spyglass: {} process {}{} (Python {}) at {:g} Hz, {} mode, {}, {}\n", what,
                     session.pid(), family, session.python_version(), st.rate_hz,
                     sampling::mode_name(st.mode), functions, until);
}

// On a terminal, one line redrawn in place: elapsed time and samples so far.
class LiveLine {
 public:
  explicit LiveLine(const ProfileOptions& opt)
      : enabled_(isatty(STDERR_FILENO) != 0), duration_(opt.duration.value_or(0)) {}
  ~LiveLine() { clear(); }
  void update(const sampling::SamplerStatus& st) {
    if (!enabled_) return;
    const double now = monotonic_seconds();
    if (now < next_) return;
    next_ = now + 0.25;
    std::string of = duration_ > 0 ? fmt::format(" of {:g} s", duration_) : "";
    std::string line = fmt::format("\r  {:.1f} s{}, {} samples ({} late, {} missed)\033[K",
                                   st.profiled_seconds, of, st.samples, st.late, st.missed);
    (void)!::write(STDERR_FILENO, line.data(), line.size());
    shown_ = true;
  }
  void clear() {
    if (!shown_) return;
    shown_ = false;
    (void)!::write(STDERR_FILENO, "\r\033[K", 4);
  }

 private:
  bool enabled_;
  double duration_;
  double next_ = 0;
  bool shown_ = false;
};

// A file beside the temporary folder's others for a recording that could not be written where
// asked: the same format and extension, a name that says what it is.
std::string fallback_path(const Session& session, const std::string& output) {
  const char* tmp = std::getenv("TMPDIR");
  std::string folder = tmp && *tmp ? tmp : "/tmp";
  std::string name =
      output.substr(output.rfind('/') == std::string::npos ? 0 : output.rfind('/') + 1);
  return fmt::format("{}/spyglass-{}-{}-{}", folder, session.pid(),
                     static_cast<long>(std::time(nullptr)), name);
}

// Profiles until the duration passes, the target exits, or Ctrl-C; then prints or writes.
int profile_and_report(Session& session, const ProfileOptions& opt, const OutputFormat& format,
                       const char* what) {
  install_stop_signals();
  // Said when the run has no end of its own (it waits for Ctrl-C or the program) or someone
  // watches the terminal; a script's timed run stays quiet on stderr.
  if (!opt.duration || isatty(STDERR_FILENO)) {
    fmt::print(stderr, "{}", start_line(what, session, opt));
    std::fflush(stderr);
  }
  session.start();
  const double deadline = opt.duration ? monotonic_seconds() + *opt.duration : 0;
  {
    LiveLine live(opt);
    while (!stop_requested() && session.running()) {
      double wait = 0.05;
      if (deadline) {
        double left = deadline - monotonic_seconds();
        if (left <= 0) break;
        wait = std::min(wait, left);
      }
      session.wait_stopped(wait);
      live.update(session.status());
    }
  }
  session.stop();
  auto status = session.status();
  if (!status.error.empty()) fmt::print(stderr, "spyglass: sampling stopped: {}\n", status.error);
  if (status.target_exited) {
    fmt::print(stderr, "spyglass: process {} exited; results up to its exit follow\n",
               session.pid());
  }
  std::string out;
  int rc = 0;
  if (opt.output) {
    try {
      session.write(*opt.output, format.name());
      fmt::print(stderr, "spyglass: wrote {}\n", *opt.output);
      if (format.kind != OutputFormat::Kind::kExport) return 0;
    } catch (const Error& e) {
      // Never lose a recording: the table goes to the terminal, the data to a file that can
      // be written, and the message says where.
      std::string saved;
      if (format.kind == OutputFormat::Kind::kExport || format.kind == OutputFormat::Kind::kJson) {
        std::string fallback = fallback_path(session, *opt.output);
        try {
          session.write(fallback, format.name());
          saved = fmt::format("; the {} data is saved in {} instead", format.name(), fallback);
        } catch (const Error&) {
          saved = "; it could not be saved elsewhere either: the table below is all that is left";
        }
      }
      fmt::print(stderr, "spyglass: {}{}\n", e.what(), saved);
      rc = e.exit_code();
    }
    out = session.render("table");
  } else {
    // Without -o, print the table (or the format asked for) to stdout.
    out = session.render(format);
  }
  if (opt.tree.value_or(false)) out += "\n" + session.tree("");
  write_stdout(out);
  return rc;
}

struct RecordOptions {
  int pid = 0;
  ProfileOptions profile;
};

// Only the timeline formats need the sample-by-sample timeline: without them memory stays flat.
void keep_timeline_only_if_needed(ProfileOptions& opt, const OutputFormat& format) {
  bool needed = format.kind == OutputFormat::Kind::kExport &&
                (format.export_format == report::Format::kChromeTrace ||
                 format.export_format == report::Format::kSpeedscope);
  if (!needed) opt.sampler.timeline_spans = 0;
}

int run_record(RecordOptions& opt) {
  if (opt.profile.exact) return run_exact_record(opt.pid, opt.profile);
  resolve(opt.profile);
  OutputFormat format = check_output(opt.profile);
  keep_timeline_only_if_needed(opt.profile, format);
  Session session(opt.pid, opt.profile);
  for (const auto& w : session.add_functions({})) fmt::print(stderr, "spyglass: {}\n", w);
  return profile_and_report(session, opt.profile, format, "recording");
}

struct RunOptions {
  std::vector<std::string> command;
  ProfileOptions profile;
};

// Attaching races the program's start: its interpreter appears a few milliseconds after exec,
// or later still when a wrapper (a shell script, a launcher) starts Python as its child; then
// the first Python process below it is profiled. Says within a second what it waits for.
std::unique_ptr<Session> attach_when_ready(pid_t child, const ProfileOptions& opt,
                                           const std::atomic<bool>& child_exited) {
  const double started = monotonic_seconds();
  const double give_up = started + 30;
  bool said_waiting = false;
  double pause = 0.0005;
  std::string last_problem;
  while (true) {
    std::vector<pid_t> candidates{child};
    if (monotonic_seconds() > started + 0.05) {
      for (pid_t p : process::descendants(child, 256)) candidates.push_back(p);
    }
    for (pid_t pid : candidates) {
      try {
        auto session = std::make_unique<Session>(pid, opt);
        if (pid != child) {
          fmt::print(stderr,
                     "spyglass: process {} ({}) started Python as process {}: profiling "
                     "that one\n",
                     child, process::command_name(child), pid);
        }
        return session;
      } catch (const Error& e) {
        // While the program starts, its maps change under the reads (exec, the interpreter's
        // libraries being mapped): a failed read then is a reason to look again, for a while.
        bool starting_up = e.kind() == ErrorKind::kIo && monotonic_seconds() < started + 5;
        bool retry = e.kind() == ErrorKind::kNotPython || e.kind() == ErrorKind::kCorrupt ||
                     e.kind() == ErrorKind::kNoSuchProcess || starting_up;
        if (!retry) throw;
        if (pid == child) last_problem = e.what();
      }
    }
    if (child_exited) {
      throw Error(ErrorKind::kNoSuchProcess,
                  fmt::format("the program exited before a Python interpreter could be read in "
                              "it or its children ({})",
                              last_problem));
    }
    if (stop_requested()) {
      throw Error(ErrorKind::kNotPython, "interrupted while waiting for Python to start");
    }
    const double now = monotonic_seconds();
    if (!said_waiting && now > started + 0.8) {
      said_waiting = true;
      fmt::print(stderr,
                 "spyglass: waiting for Python in process {} ({}) or a process it starts: {}; "
                 "Ctrl-C to give up. A program that is not Python cannot be profiled; to profile "
                 "a Python program that some launcher starts, attach to it instead: spyglass "
                 "record -p PID\n",
                 child, process::command_name(child), last_problem);
    }
    if (now > give_up) {
      throw Error(ErrorKind::kNotPython,
                  fmt::format("no Python interpreter appeared in process {} ({}) or its children "
                              "within 30 s ({})",
                              child, process::command_name(child), last_problem));
    }
    // Every half millisecond while a program usually starts (a late attach misses the start
    // of the run), then no busier than 20 looks a second.
    std::this_thread::sleep_for(std::chrono::duration<double>(pause));
    if (now > started + 2) pause = std::min(pause * 2, 0.05);
  }
}

// The exit status of `child`, once it has exited. With --blocking the sampling thread
// ptraces the child, and the kernel reports those ptrace stops to every thread of spyglass that
// waits for the child, whatever the wait's options: a blocking waitpid here took the stops
// meant for the sampler, which then waited for ever. So wait for the exit alone first (a pidfd
// becomes readable only then; /proc tells on kernels before 5.3), then reap it. The sampler
// never reaps the child's main thread (thread_pauser.cpp), so the status is still here.
int wait_for_exit(pid_t child) {
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  if (pidfd >= 0) {
    pollfd pfd{pidfd, POLLIN, 0};
    while (poll(&pfd, 1, -1) < 0 && errno == EINTR) {
    }
    close(pidfd);
  } else {
    for (;;) {
      auto stat = process::read_thread_stat(child, child);
      if (!stat || stat->state == 'Z' || stat->state == 'X') break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  siginfo_t info{};
  while (waitid(P_PID, static_cast<id_t>(child), &info, WEXITED) != 0 && errno == EINTR) {
  }
  if (info.si_code == CLD_EXITED) return W_EXITCODE(info.si_status, 0);
  return W_EXITCODE(0, info.si_status);
}

int run_run(RunOptions& opt) {
  resolve(opt.profile);
  if (opt.command.empty())
    throw Error(ErrorKind::kUsage,
                "run: give the program after --, e.g. spyglass run -f "
                "main -- python app.py");
  OutputFormat format = check_output(opt.profile);
  keep_timeline_only_if_needed(opt.profile, format);
  pid_t child = fork();
  if (child < 0) throw Error(ErrorKind::kIo, fmt::format("fork failed: {}", std::strerror(errno)));
  if (child == 0) {
    std::vector<char*> argv;
    for (auto& a : opt.command) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    fmt::print(stderr, "spyglass: cannot run {}: {}\n", opt.command[0], std::strerror(errno));
    _exit(127);
  }
  // Reap the child as soon as it exits, so the sampler sees it gone.
  std::atomic<bool> exited{false};
  int exit_status = 0;
  std::thread reaper([&] {
    exit_status = wait_for_exit(child);
    exited = true;
  });
  int rc = 0;
  try {
    install_stop_signals();
    auto session = attach_when_ready(child, opt.profile, exited);
    for (const auto& w : session->add_functions({})) fmt::print(stderr, "spyglass: {}\n", w);
    rc = profile_and_report(*session, opt.profile, format, "profiling");
  } catch (...) {
    if (!exited) kill(child, SIGTERM);
    reaper.join();
    throw;
  }
  // A duration ended the profiling: the program goes on; wait for it as a shell would, and
  // exit as it did, so that scripts see its failures.
  reaper.join();
  if (rc != 0) return rc;
  if (WIFEXITED(exit_status) && WEXITSTATUS(exit_status) != 0) {
    fmt::print(stderr, "spyglass: the program exited with status {}\n", WEXITSTATUS(exit_status));
    return WEXITSTATUS(exit_status);
  }
  if (WIFSIGNALED(exit_status)) {
    fmt::print(stderr, "spyglass: the program was killed by signal {}\n", WTERMSIG(exit_status));
    return 128 + WTERMSIG(exit_status);
  }
  return rc;
}

}  // namespace

Runner add_record_command(CLI::App& app) {
  auto opt = std::make_shared<RecordOptions>();
  auto* cmd = app.add_subcommand("record", "Profile a running process and print the results");
  add_pid_option(*cmd, opt->pid);
  add_profile_options(*cmd, opt->profile, true);
  cmd->add_flag("--exact", opt->profile.exact,
                "Time the chosen functions exactly inside the target (its control socket; "
                "started by spyglass on CPython 3.14+)");
  return [opt] { return run_record(*opt); };
}

Runner add_run_command(CLI::App& app) {
  auto opt = std::make_shared<RunOptions>();
  auto* cmd = app.add_subcommand("run", "Start a program and profile it to its end");
  add_profile_options(*cmd, opt->profile, true);
  // Not required here: main() hands over what follows "--" after parsing; run_run() says
  // when there is none.
  cmd->add_option("command", opt->command, "The program and its arguments, after --");
  return [opt] { return run_run(*opt); };
}

}  // namespace spyglass::cli
