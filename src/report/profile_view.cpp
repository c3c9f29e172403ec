#include "report/profile_view.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>


namespace spyglass::report::detail {

using sampling::FrameId;
using sampling::FrameInfo;
using sampling::StackId;
using sampling::Weight;

std::string markup_text(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    unsigned char c = s[i];
    if (c < 0x80) {
      switch (c) {
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '&':
          out += "&amp;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&apos;";
          break;
        default:
          out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
      }
      ++i;
      continue;
    }
    size_t len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    bool valid = len > 0 && i + len <= n && c >= 0xc2 && c <= 0xf4;
    for (size_t k = 1; valid && k < len; ++k) valid = (s[i + k] & 0xc0) == 0x80;
    if (valid) {
      out.append(text, i, len);
      i += len;
    } else {
      out += "\xef\xbf\xbd";  // U+FFFD
      ++i;
    }
  }
  return out;
}

std::vector<bool> chosen_frames(const ProfileView& view, const sampling::Profile& profile,
                                const ExportOptions& options) {
  std::optional<ChosenSet> own;
  if (options.chosen == nullptr) own.emplace(profile, profile.chosen);
  const ChosenSet& chosen_set = options.chosen != nullptr ? *options.chosen : *own;
  std::vector<bool> chosen(view.frames.size(), false);
  for (sampling::FrameId id = 0; id < view.frames.size(); ++id) {
    chosen[id] = chosen_set.chosen(view.frames.get(id));
  }
  return chosen;
}

std::string frame_label(const FrameInfo& frame) {
  const std::string& name = frame.function.empty() ? std::string("<unknown>") : frame.function;
  if (frame.file.empty()) return name;
  if (frame.line <= 0) return fmt::format("{} ({})", name, frame.file);
  return fmt::format("{} ({}:{})", name, frame.file, frame.line);
}

StackId drawn_node(const ProfileView& view, StackId prefix, StackId stack) {
  if (prefix != sampling::kRootStack) {
    auto it = view.composed.find(uint64_t{prefix} << 32 | stack);
    if (it != view.composed.end()) return it->second;
  }
  return stack < view.node_of.size() ? view.node_of[stack] : sampling::kRootStack;
}

ProfileView make_view(const sampling::Profile& profile, bool merge_lines, Drawing drawing) {
  ProfileView view;
  const auto& source = profile.stacks;
  const size_t frame_count = profile.frames.size();
  std::vector<FrameId> frame_of(frame_count);
  for (FrameId id = 0; id < frame_count; ++id) {
    FrameInfo frame = profile.frames.get(id);
    if (merge_lines) frame.line = 0;
    frame_of[id] = view.frames.intern(frame);
  }

  // Parents are created before their children, so one pass in id order maps every node.
  view.node_of.assign(source.size(), sampling::kRootStack);
  for (StackId id = 1; id < source.size(); ++id) {
    StackId parent = source.parent(id);
    FrameId frame = source.frame(id);
    if (parent >= id || frame >= frame_count) continue;  // not possible in a well-built trie
    view.node_of[id] = view.stacks.child(view.node_of[parent], frame_of[frame]);
  }

  // A stack drawn under a prefix: the prefix's node, then the stack's frames again below it.
  std::vector<FrameId> path;
  auto compose = [&](StackId prefix, StackId stack) {
    const uint64_t key = uint64_t{prefix} << 32 | stack;
    auto [it, added] = view.composed.try_emplace(key, sampling::kRootStack);
    if (added) {
      StackId node = view.node_of[prefix];
      source.path(stack, path);
      for (FrameId frame : path) {
        // Several processes in one profile: the prefix already opens with the process.
        if (sampling::is_process_root(profile.frames.get(frame))) continue;
        node = view.stacks.child(node, frame_of[frame]);
      }
      it->second = node;
    }
    return it->second;
  };
  auto valid = [&](StackId id) { return id < view.node_of.size(); };
  if (drawing != Drawing::kCounted) {
    for (const auto& per_thread : profile.drawn) {
      for (const auto& [key, weight] : per_thread) {
        const StackId prefix = sampling::Profile::drawn_prefix(key);
        const StackId stack = sampling::Profile::drawn_stack(key);
        if (prefix == sampling::kRootStack || !valid(prefix) || !valid(stack)) continue;
        view.tasks_linked = true;
        compose(prefix, stack);
      }
    }
    for (const auto& span : profile.timeline) {
      if (span.prefix != sampling::kRootStack && valid(span.prefix) && valid(span.stack)) {
        compose(span.prefix, span.stack);
      }
    }
  }

  const size_t nodes = view.stacks.size();
  view.self.assign(nodes, Weight{});
  view.thread_weights.resize(profile.weights.size());
  std::unordered_map<StackId, Weight> redrawn;  // per stack, the part drawn otherwise
  for (size_t t = 0; t < profile.weights.size(); ++t) {
    std::vector<std::pair<StackId, Weight>> merged;
    redrawn.clear();
    if (drawing != Drawing::kCounted && t < profile.drawn.size()) {
      for (const auto& [key, weight] : profile.drawn[t]) {
        const StackId prefix = sampling::Profile::drawn_prefix(key);
        const StackId stack = sampling::Profile::drawn_stack(key);
        if (!valid(stack) || !valid(prefix) || weight.samples == 0) continue;
        Weight& part = redrawn[stack];
        part.samples += weight.samples;
        part.seconds += weight.seconds;
        if (drawing == Drawing::kThroughChildren &&
            sampling::Profile::drawn_through_children(key)) {
          continue;  // its children draw its frames
        }
        merged.emplace_back(prefix == sampling::kRootStack
                                ? view.node_of[stack]
                                : view.composed.at(uint64_t{prefix} << 32 | stack),
                            weight);
      }
    }
    for (const auto& [stack, weight] : profile.weights[t]) {
      if (stack >= view.node_of.size() || weight.samples == 0) continue;
      Weight rest = weight;
      if (auto it = redrawn.find(stack); it != redrawn.end()) {
        if (it->second.samples >= rest.samples) continue;  // all of it drawn otherwise
        rest.samples -= it->second.samples;
        rest.seconds = std::max(0.0, rest.seconds - it->second.seconds);
      }
      merged.emplace_back(view.node_of[stack], rest);
    }
    std::sort(merged.begin(), merged.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    auto& out = view.thread_weights[t];
    for (const auto& [stack, weight] : merged) {
      if (!out.empty() && out.back().first == stack) {
        out.back().second.samples += weight.samples;
        out.back().second.seconds += weight.seconds;
      } else {
        out.emplace_back(stack, weight);
      }
      view.self[stack].samples += weight.samples;
      view.self[stack].seconds += weight.seconds;
      view.total_samples += weight.samples;
      view.total_seconds += weight.seconds;
    }
  }

  // Children have higher ids than parents: summing from the last id down is bottom-up.
  view.inclusive = view.self;
  for (StackId id = static_cast<StackId>(nodes); id-- > 1;) {
    StackId parent = view.stacks.parent(id);
    view.inclusive[parent].samples += view.inclusive[id].samples;
    view.inclusive[parent].seconds += view.inclusive[id].seconds;
  }
  view.children.assign(nodes, {});
  for (StackId id = 1; id < nodes; ++id) {
    if (view.inclusive[id].samples == 0) continue;  // seen once, weightless: not drawn
    view.children[view.stacks.parent(id)].push_back(id);
  }
  for (auto& list : view.children) {
    std::sort(list.begin(), list.end(), [&](StackId a, StackId b) {
      if (view.inclusive[a].samples != view.inclusive[b].samples) {
        return view.inclusive[a].samples > view.inclusive[b].samples;
      }
      return a < b;
    });
  }
  return view;
}

std::vector<FrameId> frames_of(const ProfileView& view, StackId stack) {
  std::vector<FrameId> path;
  view.stacks.path(stack, path);
  return path;
}

}  // namespace spyglass::report::detail
