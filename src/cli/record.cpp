// One-shot forms for scripts: `spyglass record -p PID ...` and `spyglass run ... -- cmd args`.
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/output.h"
#include "cli/session.h"
#include "cli/signals.h"
#include "process/error.h"
#include "process/maps.h"

namespace spyglass::cli {
namespace {

double monotonic_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Profiles until the duration passes, the target exits, or Ctrl-C; then prints or writes.
int profile_and_report(Session& session, const ProfileOptions& opt) {
  install_stop_signals();
  auto& sampler = session.sampler();
  sampler.start();
  const double deadline = opt.duration ? monotonic_seconds() + *opt.duration : 0;
  while (!stop_requested() && sampler.running()) {
    double wait = 0.05;
    if (deadline) {
      double left = deadline - monotonic_seconds();
      if (left <= 0) break;
      wait = std::min(wait, left);
    }
    sampler.wait_stopped(wait);
  }
  sampler.stop();
  auto status = sampler.status();
  if (!status.error.empty()) fmt::print(stderr, "spyglass: sampling stopped: {}\n", status.error);
  if (status.target_exited) {
    fmt::print(stderr, "spyglass: process {} exited; results up to its exit follow\n",
               session.target().pid());
  }
  const std::string format = opt.format.value_or("");
  if (opt.output) {
    session.write(*opt.output, format);
    fmt::print(stderr, "spyglass: wrote {}\n", *opt.output);
    if (format.empty() || format == "table" || format == "json") return 0;
  }
  // Without -o, print the table (or the format asked for) to stdout.
  std::string out = session.render(opt.output ? "table" : format);
  if (opt.tree.value_or(false)) out += "\n" + session.tree("");
  write_stdout(out);
  return 0;
}

struct RecordOptions {
  int pid = 0;
  ProfileOptions profile;
};

// Only the timeline formats need the sample-by-sample timeline: without them memory stays flat.
void keep_timeline_only_if_needed(ProfileOptions& opt) {
  std::string target = opt.format.value_or("") + " " + opt.output.value_or("");
  bool needed = target.find("chrome") != std::string::npos ||
                target.find("perfetto") != std::string::npos ||
                target.find("trace") != std::string::npos ||
                target.find("speedscope") != std::string::npos;
  if (!needed) opt.sampler.timeline_spans = 0;
}

int run_record(RecordOptions& opt) {
  resolve(opt.profile);
  keep_timeline_only_if_needed(opt.profile);
  Session session(opt.pid, opt.profile);
  for (const auto& w : session.add_functions({})) fmt::print(stderr, "spyglass: {}\n", w);
  return profile_and_report(session, opt.profile);
}

struct RunOptions {
  std::vector<std::string> command;
  ProfileOptions profile;
};

// Attaching races the program's start: its interpreter appears a few milliseconds after exec.
std::unique_ptr<Session> attach_when_ready(pid_t pid, const ProfileOptions& opt,
                                           const std::atomic<bool>& child_exited) {
  const double started = monotonic_seconds();
  const double give_up = started + 30;
  while (true) {
    try {
      return std::make_unique<Session>(pid, opt);
    } catch (const Error& e) {
      // While the program starts, its maps change under the reads (exec, the interpreter's
      // libraries being mapped): a failed read then is a reason to look again, for a while.
      bool starting_up = e.kind() == ErrorKind::kIo && monotonic_seconds() < started + 5;
      bool retry = e.kind() == ErrorKind::kNotPython || e.kind() == ErrorKind::kCorrupt ||
                   e.kind() == ErrorKind::kNoSuchProcess || starting_up;
      if (!retry || child_exited || monotonic_seconds() > give_up) {
        if (child_exited) {
          throw Error(ErrorKind::kNoSuchProcess,
                      fmt::format("the program exited before its Python interpreter could be "
                                  "read ({})",
                                  e.what()));
        }
        throw;
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

int run_run(RunOptions& opt) {
  resolve(opt.profile);
  keep_timeline_only_if_needed(opt.profile);
  if (opt.command.empty())
    throw Error(ErrorKind::kUsage,
                "run: give the program after --, e.g. spyglass run -f "
                "main -- python app.py");
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
    int st = 0;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
    }
    exit_status = st;
    exited = true;
  });
  int rc = 0;
  try {
    auto session = attach_when_ready(child, opt.profile, exited);
    for (const auto& w : session->add_functions({})) fmt::print(stderr, "spyglass: {}\n", w);
    rc = profile_and_report(*session, opt.profile);
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
  cmd->add_option("-p,--pid", opt->pid, "Process id of the Python program")->required();
  add_profile_options(*cmd, opt->profile, true);
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
