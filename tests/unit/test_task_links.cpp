// Asyncio tasks drawn under the tasks that await them (cpython/task_links.h, Profile::drawn):
// the choice of the awaiter each task is drawn under, and the drawing in trees and exports,
// which must never change a chosen function's figures.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "cpython/task_links.h"
#include "report/chosen.h"
#include "report/export.h"
#include "report/tree.h"

namespace spyglass {
namespace {

using cpython::TaskLinker;
using sampling::FrameInfo;
using sampling::Profile;
using sampling::StackId;

constexpr size_t kNone = SIZE_MAX;

TEST(TaskLinks, ParentIsTheLowestAwaiterAmongTheTasksRead) {
  // Task 0x300 is awaited by 0x200 and 0x100 (both read); 0x200 by a task not read (running).
  const std::vector<uint64_t> tasks = {0x100, 0x200, 0x300};
  const std::vector<std::vector<uint64_t>> awaited_by = {{}, {0x999}, {0x200, 0x100}};
  EXPECT_EQ(TaskLinker::choose_parents(tasks, awaited_by), (std::vector<size_t>{kNone, kNone, 0}));
}

TEST(TaskLinks, SelfLinksAndCyclesAreCut) {
  // 0x100 -> 0x200 -> 0x300 -> 0x100 (a damaged record), and 0x400 awaits itself.
  const std::vector<uint64_t> tasks = {0x100, 0x200, 0x300, 0x400};
  const std::vector<std::vector<uint64_t>> awaited_by = {{0x200}, {0x300}, {0x100}, {0x400}};
  const std::vector<size_t> parent = TaskLinker::choose_parents(tasks, awaited_by);
  EXPECT_EQ(parent[3], kNone);
  // Every walk up ends at a root within the number of tasks.
  for (size_t i = 0; i < tasks.size(); ++i) {
    size_t node = i, steps = 0;
    while (node != kNone && steps <= tasks.size()) {
      node = parent[node];
      ++steps;
    }
    EXPECT_EQ(node, kNone) << "task " << i << " is on a cycle";
  }
  // Only the edge that closed the cycle is cut: two of the three links stay.
  EXPECT_EQ(std::count(parent.begin(), parent.begin() + 3, kNone), 1);
}

TEST(TaskLinks, MismatchedSizesLeaveEveryTaskARoot) {
  EXPECT_EQ(TaskLinker::choose_parents({0x100, 0x200}, {}), (std::vector<size_t>{kNone, kNone}));
}

// --- Drawing -----------------------------------------------------------------------------------

StackId stack_of(Profile& p, const std::vector<std::string>& names, StackId base = 0) {
  StackId stack = base;
  for (const auto& name : names) {
    const bool marker = name.starts_with("<");
    stack = p.stacks.child(stack, p.frames.intern(FrameInfo{name, marker ? "" : "app.py",
                                                            marker ? 0 : 1, marker ? 0 : 1}));
  }
  return stack;
}

// What the sampler records for `handle` awaiting gather(fetch, fetch) for 10 samples, plus a
// thread: each task on its own stack (counted), the children drawn under handle's frames and
// handle drawn through them. `linked` false: the same samples without the drawing.
Profile gather_profile(bool linked) {
  Profile p;
  const uint32_t main = p.thread_index(1, 1, "MainThread");
  const uint32_t awaiter = p.thread_index(0x8000000000000100, 0, "asyncio task: handle");
  const uint32_t first = p.thread_index(0x8000000000000200, 0, "asyncio task: fetch");
  const uint32_t second = p.thread_index(0x8000000000000300, 0, "asyncio task: fetch");
  const StackId loop = stack_of(p, {"run", "select"});
  const StackId handle = stack_of(p, {"handle", "<await>"});
  const StackId fetch = stack_of(p, {"fetch", "sleep", "<await>"});
  const StackId prefix = linked ? stack_of(p, {"handle", "<task>"}) : sampling::kRootStack;
  double t = 0;
  for (int i = 0; i < 10; ++i, t += 0.01) {
    p.add_sample(main, loop, t, 0.01);
    p.add_sample(awaiter, handle, t, 0.01, sampling::kRootStack, linked);
    p.add_sample(first, fetch, t, 0.01, prefix);
    p.add_sample(second, fetch, t, 0.01, prefix);
  }
  return p;
}

report::Results results_of(const Profile& p) {
  report::ChosenSet chosen(p, {"handle", "fetch", "sleep"});
  report::Results results;
  report::add_chosen_results(p, chosen, 10, 0.1, results);
  return results;
}

TEST(TaskLinks, DrawingNeverChangesTheFigures) {
  const report::Results linked = results_of(gather_profile(true));
  const report::Results plain = results_of(gather_profile(false));
  ASSERT_EQ(linked.functions.size(), plain.functions.size());
  for (size_t i = 0; i < linked.functions.size(); ++i) {
    const auto& a = linked.functions[i].figures;
    const auto& b = plain.functions[i].figures;
    EXPECT_EQ(a.samples, b.samples) << linked.functions[i].name;
    EXPECT_DOUBLE_EQ(a.seconds, b.seconds) << linked.functions[i].name;
    EXPECT_DOUBLE_EQ(a.self_seconds, b.self_seconds) << linked.functions[i].name;
    EXPECT_DOUBLE_EQ(a.error_seconds, b.error_seconds) << linked.functions[i].name;
    EXPECT_EQ(linked.functions[i].threads.size(), plain.functions[i].threads.size());
  }
  EXPECT_EQ(linked.functions[0].figures.samples, 10u);  // handle: once a sample
  EXPECT_EQ(linked.functions[1].figures.samples, 20u);  // fetch: two tasks
}

std::string collapsed(const Profile& p, bool thread_roots = false) {
  report::ExportOptions options;
  options.thread_roots = thread_roots;
  std::ostringstream out;
  report::write_collapsed(p, options, out);
  return out.str();
}

TEST(TaskLinks, CollapsedStacksNestChildrenUnderTheirAwaiter) {
  const std::string text = collapsed(gather_profile(true));
  EXPECT_NE(text.find("handle (app.py:1);<task>;fetch (app.py:1);sleep (app.py:1);<await> 20\n"),
            std::string::npos)
      << text;
  // handle waits only for the tasks drawn under it: drawn through them, not again alone.
  EXPECT_EQ(text.find("handle (app.py:1);<await>"), std::string::npos) << text;
  EXPECT_NE(text.find("run (app.py:1);select (app.py:1) 10\n"), std::string::npos) << text;
  // Without the links, as before.
  const std::string plain = collapsed(gather_profile(false));
  EXPECT_NE(plain.find("fetch (app.py:1);sleep (app.py:1);<await> 20\n"), std::string::npos);
  EXPECT_NE(plain.find("handle (app.py:1);<await> 10\n"), std::string::npos);
}

TEST(TaskLinks, PerThreadDrawingKeepsEveryTasksOwnSamples) {
  const std::string text = collapsed(gather_profile(true), true);
  EXPECT_NE(text.find("thread asyncio task: handle;handle (app.py:1);<await> 10\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("thread asyncio task: fetch;handle (app.py:1);<task>;fetch (app.py:1);"
                      "sleep (app.py:1);<await> 10\n"),
            std::string::npos)
      << text;
}

TEST(TaskLinks, ProgramTreeSaysHowItDrawsTasks) {
  report::TreeOptions options;
  options.collapse_chains = false;
  const report::CallTree tree = report::build_program_tree(gather_profile(true), options);
  EXPECT_FALSE(tree.note.empty());
  // all: 10 thread samples + 20 child samples (the awaiter's 10 drawn through them).
  EXPECT_EQ(tree.nodes.front().samples, 30u);
  bool handle_above_fetch = false;
  for (const auto& node : tree.nodes) {
    if (node.chain.front().starts_with("handle ")) {
      EXPECT_EQ(node.samples, 20u);  // the sum of its children's, as the note says
      for (size_t c : node.children) {
        handle_above_fetch |= tree.nodes[c].chain.front() == "<task>";
      }
    }
  }
  EXPECT_TRUE(handle_above_fetch);
  EXPECT_NE(report::render_tree(tree).find("<task>"), std::string::npos);
  EXPECT_TRUE(report::build_program_tree(gather_profile(false), options).note.empty());
}

TEST(TaskLinks, FunctionTreesReachIntoAwaitersWithResultsFigures) {
  report::TreeOptions options;
  options.collapse_chains = false;
  const Profile p = gather_profile(true);
  auto fetch = report::build_function_trees(
      p, "fetch", [](const FrameInfo& f) { return f.function == "fetch"; }, options);
  EXPECT_EQ(fetch.samples, 20u);
  ASSERT_EQ(fetch.callers.nodes.front().children.size(), 1u);
  const auto& marker = fetch.callers.nodes[fetch.callers.nodes.front().children[0]];
  EXPECT_EQ(marker.chain.front(), "<task>");
  ASSERT_EQ(marker.children.size(), 1u);
  EXPECT_TRUE(fetch.callers.nodes[marker.children[0]].chain.front().starts_with("handle "));
  EXPECT_FALSE(fetch.callers.note.empty());
  // handle: its own samples only (10, as results), not its children's drawn under it.
  auto handle = report::build_function_trees(
      p, "handle", [](const FrameInfo& f) { return f.function == "handle"; }, options);
  EXPECT_EQ(handle.samples, 10u);
  EXPECT_EQ(handle.callees.nodes.front().samples, 10u);
}

}  // namespace
}  // namespace spyglass
