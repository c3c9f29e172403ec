#include "sampling/function_stats.h"

#include <algorithm>

#include "common/error.h"
#include "pattern/pattern.h"

namespace spyglass::sampling {

void check_pattern(const std::string& text) {
  try {
    pattern::Pattern check(text);
  } catch (const pattern::PatternError& e) {
    throw Error(ErrorKind::kUsage, e.what());
  }
}

report::Results chosen_function_results(const Profile& profile, const report::ChosenSet& chosen,
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
  results.returned_frames = status.returned_frames;
  results.frames_read_again = status.frames_read_again;
  results.returning_frames = status.returning_frames;
  results.incomplete_stacks = status.incomplete_stacks;
  results.unreadable_samples = status.failed_walks;
  results.slow_samples = status.slow_samples;
  results.slow_seconds = status.slow_seconds;
  results.reread_thread_lists = status.reread_thread_lists;
  results.cut_thread_lists = status.cut_thread_lists;
  results.unpaused_threads = status.unpaused_threads;
  results.async_aware = status.async_aware;
  results.task_samples = status.task_samples;
  results.unreadable_tasks = status.unreadable_tasks;
  results.cut_task_chains = status.cut_task_chains;
  results.cut_task_lists = status.cut_task_lists;
  results.linked_task_samples = status.linked_task_samples;
  results.unreadable_task_links = status.unreadable_task_links;
  results.tasks_source = status.tasks_source;
  results.code_reads = status.code_reads;
  results.code_proofs = status.code_proofs;
  results.counter_faults = status.counter_faults;
  results.counter_off = status.counter_off;
  results.stacks_read = status.stacks_read;
  results.unchanged_stacks = status.unchanged_stacks;
  results.mean_walk_us = status.mean_walk_us;
  results.mean_read_us = status.mean_read_us;
  results.read_calls = status.read_calls;
  results.sampler_cpu_seconds = status.sampler_cpu_seconds;
  results.scheduling = status.scheduling;
  results.realtime_given_up = status.realtime_given_up;
  results.target_exited = status.target_exited;
  report::add_chosen_results(profile, chosen, status.samples, status.profiled_seconds, results);
  return results;
}

std::vector<FunctionTotals> function_totals(const Profile& profile, const std::string& pattern) {
  if (!pattern.empty()) check_pattern(pattern);
  // Functions are frames with the line left out: the chosen set's grouping, with or without
  // a pattern to filter by.
  const report::ChosenSet chosen(
      profile, pattern.empty() ? std::vector<std::string>{} : std::vector<std::string>{pattern});
  std::vector<FunctionTotals> totals;
  for (const auto& f : chosen.functions()) {
    totals.push_back(FunctionTotals{f.qualname, f.file, f.firstlineno});
  }
  auto merged = profile.merged_weights();
  std::vector<FrameId> path;
  std::vector<uint32_t> seen;
  for (const auto& [stack, w] : merged) {
    if (stack == kRootStack) continue;
    profile.stacks.path(stack, path);
    seen.clear();
    for (FrameId f : path) seen.push_back(chosen.function_of(f));
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (uint32_t fn : seen) {
      totals[fn].seconds += w.seconds;
      totals[fn].samples += w.samples;
    }
    totals[chosen.function_of(profile.stacks.frame(stack))].self_seconds += w.seconds;
  }
  std::vector<FunctionTotals> out;
  for (uint32_t fn = 0; fn < totals.size(); ++fn) {
    if (totals[fn].samples == 0) continue;
    if (!pattern.empty() && !chosen.matches_function(fn, 0)) continue;
    out.push_back(std::move(totals[fn]));
  }
  std::sort(out.begin(), out.end(), [](const FunctionTotals& a, const FunctionTotals& b) {
    return a.seconds != b.seconds ? a.seconds > b.seconds : a.self_seconds > b.self_seconds;
  });
  return out;
}

}  // namespace spyglass::sampling
