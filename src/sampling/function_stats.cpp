#include "sampling/function_stats.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <unordered_map>

#include "sampling/function_pattern.h"

namespace spyglass::sampling {
namespace {

// Functions are frames with the line left out.
struct FunctionKey {
  std::string function, file;
  int firstlineno;
  auto operator<=>(const FunctionKey&) const = default;
};

std::string describe(const FunctionKey& key) {
  return fmt::format("{} ({}:{})", key.function, key.file, key.firstlineno);
}

}  // namespace

report::Results chosen_function_results(const Profile& profile,
                                        const std::vector<std::string>& patterns,
                                        const SamplerStatus& status) {
  report::Results results;
  results.mode = mode_name(status.mode);
  results.pid = profile.run.pid;
  results.python_version = profile.run.python_version;
  results.duration_seconds = status.profiled_seconds;
  results.rate_hz = status.rate_hz;
  results.achieved_rate_hz = status.achieved_rate_hz;
  results.samples = status.samples;
  results.late_samples = status.late;
  results.missed_samples = status.missed;
  results.thread_samples = status.thread_samples;
  results.reread_stacks = status.reread_stacks;
  results.incomplete_stacks = status.incomplete_stacks;
  results.unreadable_samples = status.failed_walks;
  results.reread_thread_lists = status.reread_thread_lists;
  results.cut_thread_lists = status.cut_thread_lists;
  results.mean_walk_us = status.mean_walk_us;
  results.mean_read_us = status.mean_read_us;
  results.sampler_cpu_seconds = status.sampler_cpu_seconds;
  results.target_exited = status.target_exited;

  const size_t nframes = profile.frames.size();
  const size_t nnodes = profile.stacks.size();
  const size_t nthreads = profile.threads.size();
  for (const auto& text : patterns) {
    FunctionPattern pattern(text);
    report::FunctionResult fr;
    fr.name = text;
    // Which frames the pattern matches, and which functions those are.
    std::vector<char> frame_match(nframes, 0);
    std::set<FunctionKey> matched;
    for (FrameId f = 0; f < nframes; ++f) {
      const FrameInfo& info = profile.frames.get(f);
      if (pattern.matches(info.function, info.file)) {
        frame_match[f] = 1;
        matched.insert(FunctionKey{info.function, info.file, info.firstlineno});
      }
    }
    for (const auto& key : matched) fr.matches.push_back(describe(key));
    // Trie nodes are created after their parents, so one pass in id order tells, for each
    // stack, whether the function is anywhere on it (counted once, however deep a recursion).
    std::vector<char> on_stack(nnodes, 0);
    for (StackId id = 1; id < nnodes; ++id) {
      on_stack[id] = on_stack[profile.stacks.parent(id)] || frame_match[profile.stacks.frame(id)];
    }
    double error_sq = 0;
    for (size_t t = 0; t < nthreads; ++t) {
      report::Figures fig;
      for (const auto& [stack, w] : profile.weights[t]) {
        if (!on_stack[stack]) continue;
        fig.seconds += w.seconds;
        fig.samples += w.samples;
        if (frame_match[profile.stacks.frame(stack)]) fig.self_seconds += w.seconds;
      }
      if (fig.samples == 0) continue;
      fig.error_seconds =
          report::sampling_error_seconds(fig.samples, status.samples, status.profiled_seconds);
      error_sq += fig.error_seconds * fig.error_seconds;
      fr.figures.seconds += fig.seconds;
      fr.figures.self_seconds += fig.self_seconds;
      fr.figures.samples += fig.samples;
      const ThreadInfo& ti = profile.threads[t];
      fr.threads.push_back(report::ThreadFigures{ti.thread_id, ti.native_id, ti.name, fig});
    }
    fr.has_data = fr.figures.samples > 0;
    fr.figures.error_seconds = std::sqrt(error_sq);
    if (!fr.has_data && status.samples > 0) {
      // Never seen is not "exactly zero": it may have run between samples (docs/accuracy.md).
      fr.figures.error_seconds =
          report::sampling_error_seconds(0, status.samples, status.profiled_seconds);
    }
    fr.share = status.profiled_seconds > 0 ? fr.figures.seconds / status.profiled_seconds : 0;
    results.functions.push_back(std::move(fr));
  }
  return results;
}

std::vector<FunctionTotals> function_totals(const Profile& profile, const std::string& pattern) {
  std::optional<FunctionPattern> filter;
  if (!pattern.empty()) filter.emplace(pattern);
  // Frame -> function index.
  std::map<FunctionKey, uint32_t> index;
  std::vector<FunctionTotals> totals;
  std::vector<uint32_t> function_of(profile.frames.size());
  for (FrameId f = 0; f < profile.frames.size(); ++f) {
    const FrameInfo& info = profile.frames.get(f);
    FunctionKey key{info.function, info.file, info.firstlineno};
    auto [it, inserted] = index.emplace(key, static_cast<uint32_t>(totals.size()));
    if (inserted) totals.push_back(FunctionTotals{info.function, info.file, info.firstlineno});
    function_of[f] = it->second;
  }
  auto merged = profile.merged_weights();
  std::vector<FrameId> path;
  std::vector<uint32_t> seen;
  for (const auto& [stack, w] : merged) {
    if (stack == kRootStack) continue;
    profile.stacks.path(stack, path);
    seen.clear();
    for (FrameId f : path) seen.push_back(function_of[f]);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (uint32_t fn : seen) {
      totals[fn].seconds += w.seconds;
      totals[fn].samples += w.samples;
    }
    totals[function_of[profile.stacks.frame(stack)]].self_seconds += w.seconds;
  }
  std::vector<FunctionTotals> out;
  for (auto& t : totals) {
    if (t.samples == 0) continue;
    if (filter && !filter->matches(t.function, t.file)) continue;
    out.push_back(std::move(t));
  }
  std::sort(out.begin(), out.end(), [](const FunctionTotals& a, const FunctionTotals& b) {
    return a.seconds != b.seconds ? a.seconds > b.seconds : a.self_seconds > b.self_seconds;
  });
  return out;
}

}  // namespace spyglass::sampling
