// Profile::merge (--subprocesses): several processes' profiles in one, each under a root of its
// own or none, their figures unchanged.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "report/chosen.h"
#include "report/profile_view.h"
#include "sampling/function_stats.h"
#include "sampling/profile.h"

namespace spyglass::sampling {
namespace {

StackId stack_of(Profile& p, const std::vector<std::string>& names) {
  StackId stack = kRootStack;
  for (const auto& name : names) {
    stack = p.stacks.child(stack, p.frames.intern(FrameInfo{name, "app.py", 1, 1}));
  }
  return stack;
}

// A worker: its main thread (pthread id 0x1000 in every forked worker, native id `tid`) in
// handle 3 samples, and one suspended task at the same address in every worker.
Profile worker(pid_t tid, int handle_samples) {
  Profile p;
  const uint32_t main = p.thread_index(0x1000, tid, "MainThread");
  for (int i = 0; i < handle_samples; ++i) {
    p.add_sample(main, stack_of(p, {"run", "handle"}), 0.01 * i, 0.01);
  }
  p.add_sample(main, stack_of(p, {"run", "wait"}), 1, 0.01);
  const uint32_t task = p.thread_index(uint64_t{1} << 63 | 0xabc, 0, "asyncio task: serve");
  const StackId awaiter = stack_of(p, {"main"});
  p.add_sample(task, stack_of(p, {"serve", "<await>"}), 1, 0.01, awaiter, false);
  return p;
}

double seconds_of(const Profile& p, const std::string& pattern) {
  const report::ChosenSet chosen(p, {pattern});
  SamplerStatus status;
  status.samples = 100;
  status.profiled_seconds = 1;
  return chosen_function_results(p, chosen, status).functions.at(0).figures.seconds;
}

TEST(ProfileMerge, FiguresAddUpAndThreadsStayApart) {
  Profile all;
  all.merge(worker(101, 3), "", 101);
  all.merge(worker(102, 5), "", 102);
  EXPECT_NEAR(seconds_of(all, "handle"), 0.08, 1e-12);
  EXPECT_NEAR(seconds_of(all, "serve"), 0.02, 1e-12);
  // Two main threads (same pthread id, other native ids) and two tasks at the same address,
  // told apart by their process: one stack each per sample, as the error bound assumes.
  EXPECT_EQ(all.threads.size(), 4u);
  EXPECT_EQ(all.timeline.size(), 6u);
}

TEST(ProfileMerge, RootsOpenEachProcessAndLeaveFiguresAlone) {
  Profile all;
  all.merge(worker(101, 3), process_root_name(101, "gunicorn: worker"), 101);
  all.merge(worker(102, 5), process_root_name(102, "gunicorn: worker"), 102);
  EXPECT_NEAR(seconds_of(all, "handle"), 0.08, 1e-12);
  size_t roots = 0;
  for (StackId id = 1; id < all.stacks.size(); ++id) {
    const FrameInfo& frame = all.frames.get(all.stacks.frame(id));
    if (is_process_root(frame)) {
      ++roots;
      EXPECT_EQ(all.stacks.parent(id), kRootStack) << frame.function;
    }
  }
  EXPECT_EQ(roots, 2u);
  EXPECT_EQ(all.frames.get(all.stacks.frame(1)).function, "<process 101: gunicorn: worker>");

  // Identical workers under one root.
  Profile merged;
  merged.merge(worker(101, 3), process_root_name(0, "gunicorn: worker"), 101);
  merged.merge(worker(102, 5), process_root_name(0, "gunicorn: worker"), 102);
  roots = 0;
  for (StackId id = 1; id < merged.stacks.size(); ++id) {
    roots += is_process_root(merged.frames.get(merged.stacks.frame(id)));
  }
  EXPECT_EQ(roots, 1u);
}

TEST(ProfileMerge, ATaskDrawnUnderItsAwaiterShowsItsProcessOnce) {
  Profile all;
  all.merge(worker(101, 1), process_root_name(101, "w"), 101);
  const report::detail::ProfileView view =
      report::detail::make_view(all, false, report::detail::Drawing::kUnderAwaiters);
  // Every drawn stack holds the process's root once, at its top.
  std::vector<FrameId> path;
  for (StackId id = 1; id < view.stacks.size(); ++id) {
    view.stacks.path(id, path);
    size_t roots = 0;
    for (size_t k = 0; k < path.size(); ++k) {
      if (is_process_root(view.frames.get(path[k]))) {
        ++roots;
        EXPECT_EQ(k, 0u);
      }
    }
    EXPECT_EQ(roots, 1u);
  }
}

}  // namespace
}  // namespace spyglass::sampling
