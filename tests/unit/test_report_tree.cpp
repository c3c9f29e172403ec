#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "report/tree.h"

namespace spyglass::report {
namespace {

using sampling::FrameInfo;
using sampling::Profile;
using sampling::StackId;

StackId stack_of(Profile& p, const std::vector<std::string>& names) {
  StackId stack = sampling::kRootStack;
  for (const auto& name : names) {
    stack = p.stacks.child(stack, p.frames.intern(FrameInfo{name, "app.py", 1, 1}));
  }
  return stack;
}

void add(Profile& p, uint32_t thread, StackId stack, int samples) {
  static double t = 0;
  for (int i = 0; i < samples; ++i) p.add_sample(thread, stack, t += 0.01, 0.01);
}

// Two entry points reach `target`, which calls helper and itself.
Profile profile() {
  Profile p;
  uint32_t t = p.thread_index(1, 1, "MainThread");
  add(p, t, stack_of(p, {"main", "serve", "target"}), 10);
  add(p, t, stack_of(p, {"main", "serve", "target", "helper"}), 20);
  add(p, t, stack_of(p, {"main", "batch", "target", "target", "helper"}), 30);
  add(p, t, stack_of(p, {"main", "other"}), 39);
  add(p, t, stack_of(p, {"main", "tiny"}), 1);
  return p;
}

bool is_target(const FrameInfo& f) {
  return f.function == "target";
}

const TreeNode* child_named(const CallTree& tree, const TreeNode& node, const std::string& name) {
  for (size_t c : node.children) {
    if (tree.nodes[c].chain.front().rfind(name + " ", 0) == 0) return &tree.nodes[c];
  }
  return nullptr;
}

void expect_children_within_parents(const CallTree& tree) {
  for (const TreeNode& node : tree.nodes) {
    double children = node.hidden_seconds;
    uint64_t child_samples = 0;
    for (size_t c : node.children) {
      children += tree.nodes[c].seconds;
      child_samples += tree.nodes[c].samples;
      EXPECT_LE(tree.nodes[c].samples, node.samples);
    }
    EXPECT_LE(children, node.seconds + 1e-9);
    EXPECT_LE(child_samples, node.samples);
    if (tree.has_self) {
      EXPECT_NEAR(children + node.self_seconds, node.seconds, 1e-9);
    }
  }
}

TEST(CallTree, CallersAndCalleesOfAFunction) {
  TreeOptions options;
  options.min_share = 0;
  options.collapse_chains = false;
  auto trees = build_function_trees(profile(), "target", is_target, options);
  EXPECT_EQ(trees.samples, 60u);  // recursion counted once
  EXPECT_NEAR(trees.seconds, 0.6, 1e-9);
  ASSERT_EQ(trees.matches.size(), 1u);
  EXPECT_EQ(trees.matches[0], "target (app.py:1)");

  const CallTree& callers = trees.callers;
  EXPECT_FALSE(callers.has_self);
  EXPECT_EQ(callers.nodes[0].samples, 60u);
  const TreeNode* batch = child_named(callers, callers.nodes[0], "batch");
  const TreeNode* serve = child_named(callers, callers.nodes[0], "serve");
  ASSERT_TRUE(batch && serve);
  EXPECT_EQ(batch->samples, 30u);
  EXPECT_EQ(serve->samples, 30u);
  ASSERT_EQ(serve->children.size(), 1u);
  EXPECT_EQ(callers.nodes[serve->children[0]].chain[0], "main (app.py)");

  const CallTree& callees = trees.callees;
  EXPECT_EQ(callees.nodes[0].self_samples, 10u);
  const TreeNode* helper = child_named(callees, callees.nodes[0], "helper");
  const TreeNode* inner = child_named(callees, callees.nodes[0], "target");
  ASSERT_TRUE(helper && inner);
  EXPECT_EQ(helper->samples, 20u);
  EXPECT_EQ(inner->samples, 30u);
  expect_children_within_parents(callers);
  expect_children_within_parents(callees);
}

TEST(CallTree, ChainsFoldAndSmallNodesAreCut) {
  TreeOptions options;
  options.min_share = 0.05;
  auto program = build_program_tree(profile(), options);
  // all -> main has no self time and one child: one line.
  ASSERT_EQ(program.nodes[0].chain.size(), 2u);
  EXPECT_EQ(program.nodes[0].chain[1], "main (app.py)");
  EXPECT_EQ(program.nodes[0].samples, 100u);
  EXPECT_EQ(program.nodes[0].hidden_children, 1u);  // tiny: 1%
  EXPECT_NEAR(program.nodes[0].hidden_seconds, 0.01, 1e-9);
  // Heaviest first: other (39), batch (30), serve (30).
  EXPECT_EQ(program.nodes[program.nodes[0].children[0]].chain[0], "other (app.py)");
  expect_children_within_parents(program);

  std::string text = render_tree(program, true);
  EXPECT_NE(text.find("all → main (app.py)"), std::string::npos) << text;
  EXPECT_NE(text.find("1 more, each under the cut"), std::string::npos) << text;
  std::string ascii = render_tree(program, false);
  for (unsigned char c : ascii) ASSERT_LT(c, 0x80) << ascii;
}

TEST(CallTree, DepthLimit) {
  TreeOptions options;
  options.min_share = 0;
  options.collapse_chains = false;
  options.max_depth = 1;
  auto program = build_program_tree(profile(), options);
  ASSERT_EQ(program.nodes.size(), 2u);  // all, main
  EXPECT_EQ(program.nodes[1].hidden_children, 4u);
}

TEST(CallTree, NoDataAndRendering) {
  auto trees = build_function_trees(profile(), "missing",
                                    [](const FrameInfo& f) { return f.function == "nope"; }, {});
  EXPECT_EQ(trees.samples, 0u);
  EXPECT_NE(render_function_trees(trees).find("no data"), std::string::npos);
  auto found = build_function_trees(profile(), "target", is_target, {});
  std::string text = render_function_trees(found);
  EXPECT_NE(text.find("callers of target"), std::string::npos);
  EXPECT_NE(text.find("callees of target"), std::string::npos);
  EXPECT_NE(text.find("←"), std::string::npos);
}

TEST(CallTree, JsonNests) {
  auto trees = build_function_trees(profile(), "target", is_target, {});
  auto json = function_trees_to_json(trees);
  EXPECT_EQ(json["name"], "target");
  EXPECT_EQ(json["samples"], 60);
  const auto& root = json["callees"]["root"];
  EXPECT_EQ(root["samples"], 60);
  EXPECT_TRUE(root["children"].is_array());
  EXPECT_FALSE(json["callers"]["has_self"].get<bool>());
}

TEST(CallTree, DeepRecursionIsIterative) {
  Profile p;
  StackId stack = stack_of(p, {"main"});
  auto frame = p.frames.intern(FrameInfo{"recurse", "app.py", 1, 1});
  uint32_t t = p.thread_index(1, 1, "MainThread");
  for (int i = 0; i < 20000; ++i) {
    stack = p.stacks.child(stack, frame);
    if (i % 1000 == 999) add(p, t, stack, 1);  // self time along the way: no folding
  }
  TreeOptions options;
  options.min_share = 0;
  options.max_depth = 100000;  // capped internally
  auto trees = build_function_trees(
      p, "recurse", [](const FrameInfo& f) { return f.function == "recurse"; }, options);
  EXPECT_EQ(trees.samples, 20u);
  expect_children_within_parents(trees.callees);
  EXPECT_FALSE(render_tree(trees.callees).empty());
  EXPECT_FALSE(tree_to_json(trees.callees).dump().empty());
  auto program = build_program_tree(p, options);
  expect_children_within_parents(program);
}

}  // namespace
}  // namespace spyglass::report
