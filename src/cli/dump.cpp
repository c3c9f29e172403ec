// `spyglass dump PID`: every thread's current Python stack, like a traceback.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/output.h"
#include "cpython/capture.h"
#include "cpython/target.h"
#include "process/error.h"

namespace spyglass::cli {
namespace {

struct DumpOptions {
  int pid = 0;
  bool json = false;
  std::string capture;  // developers: save the memory image of the walk here
};

nlohmann::json thread_json(const cpython::ThreadStack& t, const std::string& name) {
  nlohmann::json frames = nlohmann::json::array();
  for (const auto& f : t.frames) {
    frames.push_back({{"function", f.code->qualname},
                      {"name", f.code->name},
                      {"file", f.code->filename},
                      {"line", f.line},
                      {"first_line", f.code->firstlineno}});
  }
  return {{"thread_id", t.thread_id},
          {"native_id", t.native_id ? nlohmann::json(t.native_id) : nlohmann::json()},
          {"name", name.empty() ? nlohmann::json() : nlohmann::json(name)},
          {"holds_gil", t.gil_known ? nlohmann::json(t.holds_gil) : nlohmann::json()},
          {"interpreter_id", t.interpreter_id},
          {"truncated", t.truncated},
          {"frames", std::move(frames)}};
}

int run_dump(const DumpOptions& opt) {
  cpython::Target target(opt.pid);
  if (!opt.capture.empty()) {
    cpython::capture_target(target, opt.capture);
    fmt::print(stderr, "spyglass: saved the memory image of process {} to {}\n", opt.pid,
               opt.capture);
  }
  std::vector<cpython::ThreadStack> stacks;
  // A thread may appear or vanish mid-walk; one retry gives a consistent picture.
  if (!target.walk(stacks) && !target.walk(stacks)) {
    throw Error(ErrorKind::kCorrupt,
                fmt::format("could not read the stacks of process {}: its memory changed or did "
                            "not check out; try again",
                            opt.pid));
  }
  auto names = target.thread_names(stacks);
  const auto& rt = target.runtime();
  if (opt.json) {
    nlohmann::json threads = nlohmann::json::array();
    for (size_t i = 0; i < stacks.size(); ++i) threads.push_back(thread_json(stacks[i], names[i]));
    nlohmann::json doc = {{"pid", opt.pid},
                          {"python",
                           {{"version", rt.layout.version.str()},
                            {"binary", rt.binary},
                            {"runtime_address", fmt::format("{:#x}", rt.runtime_addr)},
                            {"found_by", rt.how}}},
                          {"threads", std::move(threads)}};
    write_stdout(doc.dump(2) + "\n");
    return 0;
  }
  std::string out = fmt::format("Process {}: Python {} ({})\n", opt.pid, rt.layout.version.str(),
                                rt.binary);
  for (size_t i = 0; i < stacks.size(); ++i) {
    const auto& t = stacks[i];
    out += "\n";
    out += t.native_id ? fmt::format("Thread {}", t.native_id)
                       : fmt::format("Thread {:#x}", t.thread_id);
    if (!names[i].empty()) out += fmt::format(" \"{}\"", names[i]);
    if (t.holds_gil) out += " (holds the GIL)";
    out += t.frames.empty() ? " (no Python frames)\n" : "\n";
    for (const auto& f : t.frames) {
      out += fmt::format("  File \"{}\", line {}, in {}\n", f.code->filename, f.line,
                         f.code->qualname);
    }
    if (t.truncated) out += "  ... (stack truncated: too deep or changed while read)\n";
  }
  write_stdout(out);
  return 0;
}

}  // namespace

Runner add_dump_command(CLI::App& app) {
  auto opt = std::make_shared<DumpOptions>();
  auto* cmd = app.add_subcommand("dump", "Print each thread's current Python stack");
  cmd->add_option("pid", opt->pid, "Process id of the Python program")->required();
  cmd->add_flag("--json", opt->json, "Print JSON instead of text");
  cmd->add_option("--capture", opt->capture,
                  "Save the memory the walk reads to FILE (for tests and benchmarks)")
      ->group("Developer");
  return [opt] { return run_dump(*opt); };
}

}  // namespace spyglass::cli
