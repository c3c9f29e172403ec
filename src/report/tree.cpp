#include "report/tree.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "report/chosen.h"
#include "report/profile_view.h"
#include "report/results.h"

namespace spyglass::report {

using sampling::FrameId;
using sampling::StackId;
using sampling::StackTrie;
using sampling::Weight;

namespace {

constexpr size_t kDepthLimit = 1000;  // keeps the JSON form shallow enough for any reader
constexpr size_t kChainShown = 6;     // a folded chain longer than this shows its two ends

void add_weight(Weight& into, const Weight& w) {
  into.samples += w.samples;
  into.seconds += w.seconds;
}

// Paths with weights, as a trie: the callers or callees of a function, or the whole program.
struct WeightedTrie {
  StackTrie trie;
  std::vector<Weight> self{Weight{}};

  void add(const std::vector<FrameId>& path, const Weight& w) {
    StackId node = sampling::kRootStack;
    for (FrameId frame : path) node = trie.child(node, frame);
    if (self.size() <= node) self.resize(trie.size());
    add_weight(self[node], w);
  }
};

CallTree fold(const StackTrie& trie, std::vector<Weight> self, const std::string& root_label,
              const std::vector<std::string>& labels, const TreeOptions& options, std::string title,
              bool has_self) {
  const size_t count = trie.size();
  self.resize(count);
  // Children have higher ids than their parents: a pass from the end sums bottom-up.
  std::vector<Weight> inclusive = self;
  for (StackId id = static_cast<StackId>(count); id-- > 1;) {
    add_weight(inclusive[trie.parent(id)], inclusive[id]);
  }
  std::vector<std::vector<StackId>> children(count);
  for (StackId id = 1; id < count; ++id) {
    if (inclusive[id].samples > 0) children[trie.parent(id)].push_back(id);
  }
  for (auto& list : children) {
    std::sort(list.begin(), list.end(), [&](StackId a, StackId b) {
      if (inclusive[a].seconds != inclusive[b].seconds) {
        return inclusive[a].seconds > inclusive[b].seconds;
      }
      return a < b;
    });
  }
  auto label = [&](StackId id) {
    return id == sampling::kRootStack ? root_label : labels[trie.frame(id)];
  };

  CallTree tree;
  tree.title = std::move(title);
  tree.has_self = has_self;
  const double root_seconds = inclusive[sampling::kRootStack].seconds;
  const size_t max_depth = std::min(options.max_depth, kDepthLimit);
  struct Pending {
    StackId node;
    size_t parent_out;  // index in tree.nodes, or SIZE_MAX for the root
    size_t depth;
  };
  std::vector<Pending> pending{{sampling::kRootStack, SIZE_MAX, 0}};
  while (!pending.empty()) {
    Pending item = pending.back();
    pending.pop_back();
    TreeNode out;
    StackId node = item.node;
    out.chain.push_back(label(node));
    out.samples = inclusive[node].samples;
    out.seconds = inclusive[node].seconds;
    // A node with no time of its own and one child: the child is the same line of the story.
    while (options.collapse_chains && self[node].samples == 0 && children[node].size() == 1) {
      node = children[node].front();
      out.chain.push_back(label(node));
    }
    out.self_samples = self[node].samples;
    out.self_seconds = self[node].seconds;
    out.share = root_seconds > 0 ? out.seconds / root_seconds : 0;
    const size_t index = tree.nodes.size();
    std::vector<Pending> shown;
    for (StackId child : children[node]) {
      double share = root_seconds > 0 ? inclusive[child].seconds / root_seconds : 0;
      if (item.depth + 1 > max_depth || share < options.min_share) {
        out.hidden_children += 1;
        out.hidden_seconds += inclusive[child].seconds;
      } else {
        shown.push_back({child, index, item.depth + 1});
      }
    }
    tree.nodes.push_back(std::move(out));
    if (item.parent_out != SIZE_MAX) tree.nodes[item.parent_out].children.push_back(index);
    // Reversed, so the heaviest child is taken (and numbered) first.
    pending.insert(pending.end(), shown.rbegin(), shown.rend());
  }
  return tree;
}

std::vector<std::string> view_labels(const detail::ProfileView& view) {
  std::vector<std::string> labels(view.frames.size());
  for (FrameId id = 0; id < view.frames.size(); ++id) {
    labels[id] = detail::frame_label(view.frames.get(id));
  }
  return labels;
}

std::string chain_text(const std::vector<std::string>& chain, bool callers, bool unicode) {
  const std::string arrow = callers ? (unicode ? " ← " : " <- ") : (unicode ? " → " : " -> ");
  std::string text;
  auto append = [&](const std::string& part) {
    if (!text.empty()) text += arrow;
    text += part;
  };
  if (chain.size() <= kChainShown) {
    for (const auto& part : chain) append(part);
    return text;
  }
  for (size_t i = 0; i < 2; ++i) append(chain[i]);
  append(fmt::format("{} {} frames {}", unicode ? "…" : "...", chain.size() - 4,
                     unicode ? "…" : "..."));
  for (size_t i = chain.size() - 2; i < chain.size(); ++i) append(chain[i]);
  return text;
}

}  // namespace

// What the trees say when they draw asyncio tasks under their awaiters (docs/accuracy.md,
// "Coroutines (asyncio)").
constexpr const char* kProgramNote =
    "asyncio: a task awaited by another is drawn under the awaiter's frames, from a <task> line; "
    "a task waiting only for tasks drawn under it is drawn through them, so its frames total "
    "their times (N tasks at once: N times its own wall time). Results count each task on its "
    "own stack, once.";
constexpr const char* kCallersNote =
    "asyncio: the callers include the tasks awaiting it, above a <task> line (each sample once, "
    "as results count it).";

FunctionTrees build_function_trees(const sampling::Profile& profile, const std::string& name,
                                   const FramePredicate& is_target, const TreeOptions& options) {
  // Every sample once, on its own stack drawn under its awaiters: the callers reach into the
  // awaiting tasks, and the figures stay those of results.
  const detail::ProfileView view =
      detail::make_view(profile, options.merge_lines, detail::Drawing::kUnderAwaiters);
  const auto labels = view_labels(view);
  std::vector<bool> target(view.frames.size(), false);
  std::vector<bool> marker(view.frames.size(), false);
  for (FrameId id = 0; id < view.frames.size(); ++id) {
    target[id] = is_target && is_target(view.frames.get(id));
    marker[id] = sampling::is_task_marker(view.frames.get(id));
  }
  // Per stack node: the depth index of the outermost target frame on it, or -1. Only a task's
  // own frames count (below its last <task> marker): an awaiter's frames drawn above it are
  // its callers, not calls of the function.
  const size_t nodes = view.stacks.size();
  std::vector<int64_t> outermost(nodes, -1);
  for (StackId id = 1; id < nodes; ++id) {
    int64_t above = outermost[view.stacks.parent(id)];
    if (marker[view.stacks.frame(id)]) {
      outermost[id] = -1;
    } else if (above >= 0) {
      outermost[id] = above;
    } else if (target[view.stacks.frame(id)]) {
      outermost[id] = static_cast<int64_t>(view.stacks.depth(id)) - 1;
    }
  }

  FunctionTrees trees;
  trees.name = name;
  WeightedTrie callers;
  WeightedTrie callees;
  std::set<FrameId> matched_frames;
  std::vector<FrameId> path;
  std::vector<FrameId> part;
  for (StackId stack = 1; stack < nodes; ++stack) {
    const Weight& w = view.self[stack];
    if (w.samples == 0 || outermost[stack] < 0) continue;
    view.stacks.path(stack, path);
    const auto at = static_cast<size_t>(outermost[stack]);
    trees.samples += w.samples;
    trees.seconds += w.seconds;
    for (size_t i = at; i < path.size(); ++i) {
      if (target[path[i]]) matched_frames.insert(path[i]);
    }
    part.assign(path.rbegin() + static_cast<std::ptrdiff_t>(path.size() - at), path.rend());
    callers.add(part, w);
    part.assign(path.begin() + static_cast<std::ptrdiff_t>(at) + 1, path.end());
    callees.add(part, w);
  }
  // Named as results name the functions a pattern matched.
  std::set<std::string> matched;
  for (FrameId id : matched_frames) {
    const sampling::FrameInfo& frame = view.frames.get(id);
    matched.insert(function_label(frame.function, frame.file, frame.firstlineno, profile.run.pid));
  }
  trees.matches.assign(matched.begin(), matched.end());
  trees.callers = fold(callers.trie, callers.self, name, labels, options,
                       fmt::format("callers of {}", name), false);
  trees.callees = fold(callees.trie, callees.self, name, labels, options,
                       fmt::format("callees of {}", name), true);
  if (view.tasks_linked) trees.callers.note = kCallersNote;
  return trees;
}

CallTree build_program_tree(const sampling::Profile& profile, const TreeOptions& options) {
  const detail::ProfileView view = detail::make_view(profile, options.merge_lines);
  CallTree tree =
      fold(view.stacks, view.self, "all", view_labels(view), options, "whole program", true);
  if (view.tasks_linked) tree.note = kProgramNote;
  return tree;
}

std::string render_tree(const CallTree& tree, bool unicode) {
  std::string out = tree.title + "\n";
  if (tree.nodes.empty() || tree.nodes.front().samples == 0) return out + "  (no samples)\n";
  const bool callers = !tree.has_self;
  out += fmt::format("{:>10} {:>10} {:>7}  {}\n", "Total", tree.has_self ? "Self" : "", "Share",
                     callers ? "Function, then who called it" : "Function");
  const char* tee = unicode ? "├─ " : "|- ";
  const char* corner = unicode ? "└─ " : "`- ";
  const char* bar = unicode ? "│  " : "|  ";
  auto columns = [&](double total, const std::string& self, double share) {
    return fmt::format("{:>10} {:>10} {:>6.1f}%  ", format_seconds(total, unicode), self,
                       share * 100);
  };
  struct Pending {
    size_t node;
    std::string prefix;  // drawn before this node's connector
    bool last;
    bool root;
    bool hidden;  // the line that stands for `node`'s children under the cut
  };
  std::vector<Pending> pending{{0, "", true, true, false}};
  while (!pending.empty()) {
    Pending item = pending.back();
    pending.pop_back();
    const TreeNode& node = tree.nodes[item.node];
    if (item.hidden) {
      double root_seconds = tree.nodes.front().seconds;
      double share = root_seconds > 0 ? node.hidden_seconds / root_seconds : 0;
      out += columns(node.hidden_seconds, "", share) + item.prefix + corner +
             fmt::format("{} {} more, each under the cut\n", unicode ? "…" : "...",
                         node.hidden_children);
      continue;
    }
    std::string self = tree.has_self ? format_seconds(node.self_seconds, unicode) : "";
    out += columns(node.seconds, self, node.share);
    out += item.root ? "" : item.prefix + (item.last ? corner : tee);
    out += chain_text(node.chain, callers, unicode) + "\n";
    std::string child_prefix = item.root ? "" : item.prefix + (item.last ? "   " : bar);
    // Pushed in reverse: the heaviest child comes out first, the cut line last.
    if (node.hidden_children > 0) pending.push_back({item.node, child_prefix, true, false, true});
    for (size_t i = node.children.size(); i-- > 0;) {
      bool last = i + 1 == node.children.size() && node.hidden_children == 0;
      pending.push_back({node.children[i], child_prefix, last, false, false});
    }
  }
  if (!tree.note.empty()) out += "  (" + tree.note + ")\n";
  return out;
}

std::string render_function_trees(const FunctionTrees& trees, bool unicode) {
  std::string out = fmt::format("{}: {} on the stack in {} samples", trees.name,
                                format_seconds(trees.seconds, unicode), trees.samples);
  if (trees.samples == 0) return out + " (no data)\n";
  out += "\n";
  for (const auto& match : trees.matches) out += "  matched " + match + "\n";
  out += "\n" + render_tree(trees.callers, unicode) + "\n" + render_tree(trees.callees, unicode);
  return out;
}

nlohmann::json tree_to_json(const CallTree& tree) {
  // Children always follow their parent in `nodes`: building from the end nests them bottom-up.
  std::vector<nlohmann::json> built(tree.nodes.size());
  for (size_t i = tree.nodes.size(); i-- > 0;) {
    const TreeNode& node = tree.nodes[i];
    nlohmann::json children = nlohmann::json::array();
    for (size_t child : node.children) children.push_back(std::move(built[child]));
    built[i] = {{"frames", node.chain},
                {"seconds", node.seconds},
                {"samples", node.samples},
                {"self_seconds", node.self_seconds},
                {"self_samples", node.self_samples},
                {"share", node.share},
                {"hidden_children", node.hidden_children},
                {"hidden_seconds", node.hidden_seconds},
                {"children", std::move(children)}};
  }
  nlohmann::json doc = {{"title", tree.title},
                        {"has_self", tree.has_self},
                        {"root", built.empty() ? nlohmann::json() : std::move(built.front())}};
  if (!tree.note.empty()) doc["note"] = tree.note;
  return doc;
}

nlohmann::json function_trees_to_json(const FunctionTrees& trees) {
  return {{"name", trees.name},
          {"matches", trees.matches},
          {"samples", trees.samples},
          {"seconds", trees.seconds},
          {"callers", tree_to_json(trees.callers)},
          {"callees", tree_to_json(trees.callees)}};
}

}  // namespace spyglass::report
