// `spyglass dump PID`: every thread's current Python stack, like a traceback.
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <unordered_map>
#include <utility>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/output.h"
#include "common/error.h"
#include "cpython/capture.h"
#include "cpython/target.h"
#include "process/descendants.h"

namespace spyglass::cli {
namespace {

struct DumpOptions {
  int pid = 0;
  bool subprocesses = false;  // every Python process the process started, and theirs, too
  bool json = false;
  bool locals = false;
  bool no_async = false;
  std::string capture;  // developers: save the memory image of the walk here
};

// Bounds of --locals: a frame with thousands of variables, or a huge string, stays readable.
constexpr size_t kMaxLocalsPerFrame = 32;

// Each frame's local variables, when asked: read after the walk, each checked (the target runs
// on meanwhile: a variable caught mid-change shows as unreadable, never as garbage).
struct FrameLocals {
  std::vector<cpython::LocalVariable> variables;
  size_t more = 0;
};

std::vector<std::vector<FrameLocals>> read_locals(cpython::Target& target,
                                                  const std::vector<cpython::ThreadStack>& stacks) {
  std::vector<std::vector<FrameLocals>> out(stacks.size());
  for (size_t t = 0; t < stacks.size(); ++t) {
    for (const auto& f : stacks[t].frames) {
      FrameLocals locals;
      locals.variables = target.objects().locals(f, kMaxLocalsPerFrame, locals.more);
      out[t].push_back(std::move(locals));
    }
  }
  return out;
}

nlohmann::json thread_json(const cpython::ThreadStack& t, const std::string& name,
                           const std::vector<FrameLocals>* locals) {
  nlohmann::json frames = nlohmann::json::array();
  for (size_t i = 0; i < t.frames.size(); ++i) {
    const auto& f = t.frames[i];
    nlohmann::json frame{{"function", f.code->qualname},
                         {"name", f.code->name},
                         {"file", f.code->filename},
                         {"line", f.line},
                         {"first_line", f.code->firstlineno}};
    if (locals && i < locals->size()) {
      nlohmann::json variables = nlohmann::json::object();
      for (const auto& v : (*locals)[i].variables) variables[v.name] = v.value;
      frame["locals"] = std::move(variables);
      if ((*locals)[i].more) frame["locals_left_out"] = (*locals)[i].more;
    }
    frames.push_back(std::move(frame));
  }
  return {{"thread_id", t.thread_id},
          {"native_id", t.native_id ? nlohmann::json(t.native_id) : nlohmann::json()},
          {"name", name.empty() ? nlohmann::json() : nlohmann::json(name)},
          {"holds_gil", t.gil_known ? nlohmann::json(t.holds_gil) : nlohmann::json()},
          {"interpreter_id", t.interpreter_id},
          {"truncated", t.truncated},
          {"frames", std::move(frames)}};
}

// Who awaits each suspended task (cpython/task_links.h), and where `dump` nests it.
struct TaskTree {
  std::vector<std::vector<uint64_t>> awaited_by;  // per task: the awaiters' addresses
  std::vector<size_t> parent;                     // per task: the task it is listed under
  std::unordered_map<uint64_t, size_t> index;     // task address -> index
};

TaskTree task_tree(cpython::Target& target, const std::vector<cpython::TaskStack>& tasks) {
  TaskTree tree;
  target.task_links().link(tasks, tree.awaited_by);
  std::vector<uint64_t> addrs;
  for (size_t i = 0; i < tasks.size(); ++i) {
    addrs.push_back(tasks[i].task_addr);
    tree.index.emplace(tasks[i].task_addr, i);
  }
  tree.parent = cpython::TaskLinker::choose_parents(addrs, tree.awaited_by);
  return tree;
}

// An awaiter by name when it is one of the suspended tasks listed, else by address (a task
// running on its thread, or read in another state).
std::string awaiter_name(const TaskTree& tree, const std::vector<cpython::TaskStack>& tasks,
                         uint64_t awaiter) {
  auto it = tree.index.find(awaiter);
  return it != tree.index.end() ? tasks[it->second].name : fmt::format("task at {:#x}", awaiter);
}

// The tasks in pstree order: each root, then the tasks listed under it, depth first; with each
// task its depth. Every task once (the parents have no cycle).
std::vector<std::pair<size_t, size_t>> pstree_order(const TaskTree& tree, size_t count) {
  std::vector<std::vector<size_t>> children(count);
  std::vector<size_t> roots;
  for (size_t i = 0; i < count; ++i) {
    (tree.parent[i] == SIZE_MAX ? roots : children[tree.parent[i]]).push_back(i);
  }
  std::vector<std::pair<size_t, size_t>> order;
  std::vector<std::pair<size_t, size_t>> pending;
  for (auto it = roots.rbegin(); it != roots.rend(); ++it) pending.push_back({*it, 0});
  while (!pending.empty() && order.size() < count) {
    auto [task, depth] = pending.back();
    pending.pop_back();
    order.push_back({task, depth});
    for (auto it = children[task].rbegin(); it != children[task].rend(); ++it) {
      pending.push_back({*it, depth + 1});
    }
  }
  return order;
}

// A suspended task's coroutines, innermost first (its `<await>` marker left out).
nlohmann::json task_json(const cpython::TaskStack& task) {
  nlohmann::json frames = nlohmann::json::array();
  for (size_t i = 1; i < task.frames.size(); ++i) {
    const auto& f = task.frames[i];
    frames.push_back({{"function", f.code->qualname},
                      {"name", f.code->name},
                      {"file", f.code->filename},
                      {"line", f.line},
                      {"first_line", f.code->firstlineno}});
  }
  return {{"name", task.name},
          {"address", fmt::format("{:#x}", task.task_addr)},
          {"state", "suspended"},
          {"truncated", task.truncated},
          {"frames", std::move(frames)}};
}

// One process's stacks: as text, or into `json` when given.
std::string dump_process(const DumpOptions& opt, pid_t pid, nlohmann::json* json) {
  cpython::Target target(pid);
  if (!opt.capture.empty()) {
    cpython::capture_target(target, opt.capture);
    fmt::print(stderr, "spyglass: saved the memory image of process {} to {}\n", pid, opt.capture);
  }
  std::vector<cpython::ThreadStack> stacks;
  std::vector<cpython::TaskStack> tasks;
  auto walk = [&] {
    return opt.no_async ? target.walk(stacks) : target.walk_with_tasks(stacks, tasks, true);
  };
  // A thread may appear or vanish mid-walk; one retry gives a consistent picture.
  if (!walk() && !walk()) {
    throw Error(ErrorKind::kCorrupt,
                fmt::format("could not read the stacks of process {}: its memory changed or did "
                            "not check out; try again",
                            pid));
  }
  std::vector<std::vector<FrameLocals>> locals;
  if (opt.locals) {
    if (!target.objects().supported()) {
      throw Error(ErrorKind::kUnsupported,
                  fmt::format("--locals is not supported for Python {} yet",
                              target.runtime().layout.version.str()));
    }
    locals = read_locals(target, stacks);
  }
  auto names = target.thread_names(stacks);
  const auto& rt = target.runtime();
  if (json) {
    nlohmann::json threads = nlohmann::json::array();
    for (size_t i = 0; i < stacks.size(); ++i) {
      threads.push_back(thread_json(stacks[i], names[i], opt.locals ? &locals[i] : nullptr));
    }
    nlohmann::json doc = {{"pid", pid},
                          {"python",
                           {{"version", rt.layout.version.str()},
                            {"binary", rt.binary},
                            {"runtime_address", fmt::format("{:#x}", rt.runtime_addr)},
                            {"found_by", rt.how}}},
                          {"threads", std::move(threads)}};
    if (!opt.no_async) {
      const TaskTree tree = task_tree(target, tasks);
      nlohmann::json list = nlohmann::json::array();
      for (size_t i = 0; i < tasks.size(); ++i) {
        nlohmann::json item = task_json(tasks[i]);
        nlohmann::json awaiters = nlohmann::json::array();
        for (uint64_t awaiter : tree.awaited_by[i]) {
          awaiters.push_back({{"name", awaiter_name(tree, tasks, awaiter)},
                              {"address", fmt::format("{:#x}", awaiter)}});
        }
        item["awaited_by"] = std::move(awaiters);
        list.push_back(std::move(item));
      }
      doc["tasks"] = std::move(list);
      doc["tasks_source"] = target.tasks().describe();
      doc["task_links"] = {{"links", target.task_links().stats().links},
                           {"unreadable", target.task_links().stats().unreadable}};
    }
    *json = std::move(doc);
    return "";
  }
  std::string out =
      fmt::format("Process {}: Python {} ({})\n", pid, rt.layout.version.str(), rt.binary);
  for (size_t i = 0; i < stacks.size(); ++i) {
    const auto& t = stacks[i];
    out += "\n";
    out += t.native_id ? fmt::format("Thread {}", t.native_id)
                       : fmt::format("Thread {:#x}", t.thread_id);
    if (!names[i].empty()) out += fmt::format(" \"{}\"", names[i]);
    if (t.holds_gil) out += " (holds the GIL)";
    out += t.frames.empty() ? " (no Python frames)\n" : "\n";
    for (size_t j = 0; j < t.frames.size(); ++j) {
      const auto& f = t.frames[j];
      out += fmt::format("  File \"{}\", line {}, in {}\n", f.code->filename, f.line,
                         f.code->qualname);
      if (!opt.locals) continue;
      for (const auto& v : locals[i][j].variables) {
        out += fmt::format("      {} = {}\n", v.name, v.value);
      }
      if (locals[i][j].more) out += fmt::format("      ... and {} more\n", locals[i][j].more);
    }
    if (t.truncated) out += "  ... (stack truncated: too deep or changed while read)\n";
  }
  if (!tasks.empty()) {
    // Like `python -m asyncio pstree`: each task under the task awaiting it.
    const TaskTree tree = task_tree(target, tasks);
    out += fmt::format(
        "\nasyncio tasks: {} suspended, each under the task that awaits it (running ones are on "
        "their thread above)\n",
        tasks.size());
    for (auto [i, depth] : pstree_order(tree, tasks.size())) {
      const auto& task = tasks[i];
      // A task's frames 4 + 5 * depth in; a task listed under another starts at its frames.
      const std::string indent(depth ? 4 + 5 * (depth - 1) : 2, ' ');
      std::string awaiters;
      for (uint64_t awaiter : tree.awaited_by[i]) {
        awaiters +=
            (awaiters.empty() ? ", awaited by " : ", ") + awaiter_name(tree, tasks, awaiter);
      }
      out += fmt::format("{}{}task {} (suspended{})\n", indent, depth ? "└─ " : "", task.name,
                         awaiters);
      const std::string frame_indent = indent + (depth ? "     " : "  ");
      for (size_t j = 1; j < task.frames.size(); ++j) {
        const auto& f = task.frames[j];
        out += fmt::format("{}File \"{}\", line {}, in {}\n", frame_indent, f.code->filename,
                           f.line, f.code->qualname);
      }
      if (task.truncated) {
        out += frame_indent + "... (chain of awaits cut short: changed while read)\n";
      }
    }
    if (target.task_links().stats().unreadable) {
      out += fmt::format(
          "  ({} records of who awaits a task could not be read: those tasks are "
          "listed as roots)\n",
          target.task_links().stats().unreadable);
    }
  }
  return out;
}

int run_dump(const DumpOptions& opt) {
  if (!opt.subprocesses) {
    nlohmann::json doc;
    std::string text = dump_process(opt, opt.pid, opt.json ? &doc : nullptr);
    write_stdout(opt.json ? doc.dump(2) + "\n" : text);
    return 0;
  }
  // The process and every process it started: each Python one dumped, the others named with
  // why not (a shell, a process of another kind); never an error for all of them.
  if (!process::process_alive(opt.pid)) {
    throw Error(ErrorKind::kNoSuchProcess, fmt::format("no process with id {}", opt.pid));
  }
  std::vector<pid_t> family{opt.pid};
  for (pid_t child : process::descendants(opt.pid)) family.push_back(child);
  nlohmann::json list = nlohmann::json::array();
  std::string text;
  for (pid_t pid : family) {
    const std::string command = process::command_line(pid);
    nlohmann::json doc;
    try {
      std::string one = dump_process(opt, pid, opt.json ? &doc : nullptr);
      doc["command"] = command;
      text += (text.empty() ? "" : "\n") + one;
    } catch (const Error& e) {
      doc = {{"pid", pid}, {"command", command}, {"error", e.what()}};
      text += fmt::format("{}Process {} ({}): {}\n", text.empty() ? "" : "\n", pid,
                          command.size() > 80 ? command.substr(0, 77) + "..." : command, e.what());
    }
    list.push_back(std::move(doc));
  }
  write_stdout(opt.json ? nlohmann::json{{"processes", std::move(list)}}.dump(2) + "\n" : text);
  return 0;
}

}  // namespace

Runner add_dump_command(CLI::App& app) {
  auto opt = std::make_shared<DumpOptions>();
  auto* cmd = app.add_subcommand("dump", "Print each thread's current Python stack");
  add_pid_option(*cmd, opt->pid);
  cmd->add_flag("-s,--subprocesses", opt->subprocesses,
                "Also every process it started, and theirs (each Python one's stacks)");
  cmd->add_flag("--json", opt->json, "Print JSON instead of text");
  cmd->add_flag("--locals", opt->locals,
                "Also show each frame's local variables (short values, at most 32 a frame)");
  cmd->add_flag("--no-async", opt->no_async, "Do not list suspended asyncio tasks");
  cmd->add_option("--capture", opt->capture,
                  "Save the memory the walk reads to FILE (for tests and benchmarks)")
      ->group("Developer");
  return [opt] { return run_dump(*opt); };
}

}  // namespace spyglass::cli
