// Call trees from a profile: for a chosen function, the paths that lead into it (callers, with the
// time each path contributes) and what it spends its time in (callees, with inclusive and self
// time); or the whole program from its entry points. Folded so hot paths stand out: single-child
// chains collapsed, children sorted by time, nodes below a share cut. Built without recursion.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sampling/profile.h"

namespace spyglass::report {

struct TreeOptions {
  bool merge_lines = true;      // one node per function rather than per line
  size_t max_depth = 12;        // levels shown below the root (after folding); at most 1000
  double min_share = 0.01;      // nodes under this share of the root's time are cut
  bool collapse_chains = true;  // a node whose whole time is in its only child absorbs it
};

struct TreeNode {
  std::vector<std::string> chain;  // the frames shown on this line, outermost first (>1: folded)
  uint64_t samples = 0;            // inclusive, within this tree
  double seconds = 0;
  uint64_t self_samples = 0;  // at the top of the stack (callee and program trees)
  double self_seconds = 0;
  double share = 0;              // seconds / the root's seconds
  uint32_t hidden_children = 0;  // children cut by the threshold or depth
  double hidden_seconds = 0;     // their time
  std::vector<size_t> children;  // indexes into CallTree::nodes, heaviest first
};

struct CallTree {
  std::string title;
  bool has_self = true;         // false for caller trees, where "self" means nothing
  std::vector<TreeNode> nodes;  // nodes[0] is the root; children come after their parent
  // How it draws asyncio tasks under their awaiters, when it does (empty otherwise).
  std::string note;
};

struct FunctionTrees {
  std::string name;                  // as given
  std::vector<std::string> matches;  // the functions the predicate matched, named as results do
  uint64_t samples = 0;              // samples with the function on the stack
  double seconds = 0;
  CallTree callers;  // root: the function; children: its callers; theirs: their callers ...
  CallTree callees;  // root: the function; children: what it calls ...
};

using FramePredicate = std::function<bool(const sampling::FrameInfo&)>;

// For the function(s) `is_target` matches: its callers and callees. Recursion counts once per
// sample (at the outermost match), as inclusive time does.
FunctionTrees build_function_trees(const sampling::Profile& profile, const std::string& name,
                                   const FramePredicate& is_target, const TreeOptions& options);
// The whole program, from the outermost frames.
CallTree build_program_tree(const sampling::Profile& profile, const TreeOptions& options);

// Text with tree lines: total, self, share, then the frames.
std::string render_tree(const CallTree& tree, bool unicode = true);
std::string render_function_trees(const FunctionTrees& trees, bool unicode = true);

// {"title", "has_self", "root": {"frames": [...], "seconds", "samples", "self_seconds",
//  "self_samples", "share", "hidden_children", "hidden_seconds", "children": [...]}}
nlohmann::json tree_to_json(const CallTree& tree);
nlohmann::json function_trees_to_json(const FunctionTrees& trees);

}  // namespace spyglass::report
