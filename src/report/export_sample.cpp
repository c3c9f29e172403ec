// spyglass_export_sample: writes every export format (and the call trees) from a synthetic
// profile shaped like the bundled example program, so the format tests can check the files with
// real consumers without a sampler or a Python process.
// Usage: spyglass_export_sample OUTDIR [--merge-lines] [--deep N]
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "report/export.h"
#include "report/tree.h"

namespace {

using spyglass::sampling::FrameInfo;
using spyglass::sampling::Profile;
using spyglass::sampling::StackId;

struct Call {
  const char* function;
  const char* file;
  int line;
  int firstlineno;
};

StackId stack_of(Profile& profile, const std::vector<Call>& calls) {
  StackId stack = spyglass::sampling::kRootStack;
  for (const Call& call : calls) {
    auto frame =
        profile.frames.intern(FrameInfo{call.function, call.file, call.line, call.firstlineno});
    stack = profile.stacks.child(stack, frame);
  }
  return stack;
}

Profile make_profile(int deep) {
  Profile profile;
  profile.run.pid = 4242;
  profile.run.python_version = "3.12.1";
  profile.run.mode = "wall";
  profile.run.rate_hz = 1000;
  profile.run.start_unix_time = 1764000000.0;
  profile.chosen = {"heavy_computation", "Worker.process", "disk_io"};

  const char* app = "/srv/app/example.py";
  const Call module{"<module>", app, 120, 1};
  const Call main_fn{"main", app, 110, 100};
  std::vector<StackId> main_stacks{
      stack_of(profile, {module, main_fn, {"heavy_computation", app, 12, 10}}),
      stack_of(profile,
               {module, main_fn, {"heavy_computation", app, 14, 10}, {"square<int>", app, 5, 4}}),
      stack_of(profile, {module,
                         main_fn,
                         {"disk_io", app, 30, 28},
                         {"read_chunk", "/usr/lib/python3.12/io.py", 77, 70}}),
      stack_of(profile, {module, main_fn, {"many_tiny_calls", app, 50, 48}}),
      stack_of(profile, {module,
                         main_fn,
                         {"recurse", app, 62, 60},
                         {"recurse", app, 63, 60},
                         {"recurse", app, 63, 60},
                         {"recurse", app, 62, 60}}),
      // A name that must not end the flame graph page's <script> element early.
      stack_of(profile, {module, main_fn, {"odd</script><b>name", app, 90, 90}}),
  };
  const char* worker_file = "/srv/app/worker.py";
  const Call run{"Thread.run", "/usr/lib/python3.12/threading.py", 1010, 1000};
  std::vector<StackId> worker_stacks{
      stack_of(
          profile,
          {run, {"Worker.process", worker_file, 20, 18}, {"network_request", worker_file, 40, 38}}),
      stack_of(profile, {run, {"Worker.process", worker_file, 22, 18}}),
      stack_of(profile, {run, {"idle_wait", worker_file, 60, 58}}),
  };

  uint32_t main_thread = profile.thread_index(140001, 1001, "MainThread");
  uint32_t worker = profile.thread_index(140002, 1002, "worker-1");
  const double period = 0.001;
  const int ticks = 2000;
  uint64_t state = 12345;
  auto next = [&]() {  // a fixed pseudo-random sequence: the same files every run
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  };
  size_t main_pick = 0, worker_pick = 0;
  for (int tick = 1; tick <= ticks; ++tick) {
    double t = (tick - 1) * period;  // each sample stands for the period after it
    // Runs of a few samples on one stack, as real programs have.
    if (next() % 8 == 0) main_pick = next() % main_stacks.size();
    if (next() % 8 == 0) worker_pick = next() % worker_stacks.size();
    profile.add_sample(main_thread, main_stacks[main_pick], t, period);
    profile.add_sample(worker, worker_stacks[worker_pick], t, period);
  }
  profile.run.samples = ticks;
  profile.run.duration_seconds = ticks * period;

  if (deep > 0) {
    // A third thread deep in recursion, for the exporters' handling of very deep stacks.
    uint32_t thread = profile.thread_index(140003, 1003, "deep");
    StackId stack = stack_of(profile, {{"deep_main", app, 200, 200}});
    auto frame = profile.frames.intern(FrameInfo{"deep_recurse", app, 210, 205});
    for (int i = 0; i < deep; ++i) stack = profile.stacks.child(stack, frame);
    for (int tick = 0; tick < 10; ++tick) profile.add_sample(thread, stack, tick * period, period);
  }
  return profile;
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: spyglass_export_sample OUTDIR [--merge-lines] [--deep N]\n";
    return 2;
  }
  std::filesystem::path dir = argv[1];
  spyglass::report::ExportOptions options;
  options.title = "spyglass example";
  int deep = 0;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--merge-lines") {
      options.merge_lines = true;
    } else if (arg == "--deep" && i + 1 < argc) {
      deep = std::atoi(argv[++i]);
    } else {
      std::cerr << "unknown option " << arg << "\n";
      return 2;
    }
  }
  try {
    std::filesystem::create_directories(dir);
    Profile profile = make_profile(deep);
    using spyglass::report::Format;
    const std::pair<Format, const char*> outputs[] = {
        {Format::kCollapsed, "sample.folded"},
        {Format::kSpeedscope, "sample.speedscope.json"},
        {Format::kChromeTrace, "sample.trace.json"},
        {Format::kPprof, "sample.pb.gz"},
        {Format::kFlameGraphHtml, "sample.html"},
        {Format::kFlameGraphSvg, "sample.svg"},
    };
    for (const auto& [format, name] : outputs) {
      // The extension alone must pick the same format.
      if (spyglass::report::format_from_extension(name) != format) {
        throw std::runtime_error(std::string("extension not recognised: ") + name);
      }
      std::ofstream out(dir / name, std::ios::binary);
      spyglass::report::write_profile(profile, format, options, out);
    }
    auto threads_options = options;
    threads_options.thread_roots = true;
    std::ofstream threads_out(dir / "sample.threads.folded");
    spyglass::report::write_collapsed(profile, threads_options, threads_out);

    // Exact mode's calls: main -> heavy_computation (x3, each with a nested square<int>).
    std::vector<spyglass::report::TimedCall> calls;
    calls.push_back({"main", "/srv/app/example.py", 100, 1001, 0.0, 1.0});
    for (int i = 0; i < 3; ++i) {
      double start = 0.1 + 0.3 * i;
      calls.push_back({"heavy_computation", "/srv/app/example.py", 10, 1001, start, 0.2});
      calls.push_back({"square<int>", "/srv/app/example.py", 4, 1001, start + 0.05, 0.1});
    }
    calls.push_back({"Worker.process", "/srv/app/worker.py", 18, 1002, 0.2, 0.5});
    std::ofstream calls_out(dir / "sample.calls.trace.json");
    spyglass::report::write_chrome_trace_calls(calls, profile.threads, profile.run.pid, options,
                                               calls_out);

    spyglass::report::TreeOptions tree_options;
    tree_options.merge_lines = true;
    const spyglass::report::ChosenSet heavy(profile, {"heavy_computation"});
    auto is_heavy = [&](const FrameInfo& f) { return heavy.matches(f, 0); };
    auto trees = spyglass::report::build_function_trees(profile, "heavy_computation", is_heavy,
                                                        tree_options);
    auto program = spyglass::report::build_program_tree(profile, tree_options);
    write_file(dir / "sample.tree.txt", spyglass::report::render_function_trees(trees) + "\n" +
                                            spyglass::report::render_tree(program));
    write_file(dir / "sample.tree.json",
               nlohmann::json{{"function", spyglass::report::function_trees_to_json(trees)},
                              {"program", spyglass::report::tree_to_json(program)}}
                       .dump(2) +
                   "\n");

    uint64_t samples = 0;
    double seconds = 0;
    for (const auto& per_thread : profile.weights) {
      for (const auto& [stack, weight] : per_thread) {
        samples += weight.samples;
        seconds += weight.seconds;
      }
    }
    nlohmann::json expected{{"samples", samples},
                            {"seconds", seconds},
                            {"threads", profile.threads.size()},
                            {"rate_hz", profile.run.rate_hz},
                            {"merge_lines", options.merge_lines},
                            {"chosen", profile.chosen}};
    write_file(dir / "expected.json", expected.dump(2) + "\n");
  } catch (const std::exception& e) {
    std::cerr << "spyglass_export_sample: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
