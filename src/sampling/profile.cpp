#include "sampling/profile.h"

#include <algorithm>
#include <functional>

namespace spyglass::sampling {

size_t FrameInfoHash::operator()(const FrameInfo& f) const {
  size_t h = std::hash<std::string>()(f.function);
  h = h * 31 + std::hash<std::string>()(f.file);
  h = h * 31 + static_cast<size_t>(f.line);
  return h * 31 + static_cast<size_t>(f.firstlineno);
}

FrameId FrameTable::intern(const FrameInfo& frame) {
  auto it = index_.find(frame);
  if (it != index_.end()) return it->second;
  auto id = static_cast<FrameId>(frames_.size());
  frames_.push_back(frame);
  index_.emplace(frame, id);
  return id;
}

size_t FrameTable::memory_bytes() const {
  size_t bytes = frames_.capacity() * sizeof(FrameInfo) + index_.size() * (sizeof(FrameInfo) + 32);
  for (const auto& f : frames_) bytes += 2 * (f.function.capacity() + f.file.capacity());
  return bytes;
}

StackTrie::StackTrie() { nodes_.push_back(Node{kRootStack, 0, 0}); }

StackId StackTrie::child(StackId parent, FrameId frame) {
  uint64_t key = (static_cast<uint64_t>(parent) << 32) | frame;
  auto it = edges_.find(key);
  if (it != edges_.end()) return it->second;
  auto id = static_cast<StackId>(nodes_.size());
  nodes_.push_back(Node{parent, frame, nodes_[parent].depth + 1});
  edges_.emplace(key, id);
  return id;
}

void StackTrie::path(StackId id, std::vector<FrameId>& root_first) const {
  root_first.clear();
  for (; id != kRootStack; id = nodes_[id].parent) root_first.push_back(nodes_[id].frame);
  std::reverse(root_first.begin(), root_first.end());
}

size_t StackTrie::memory_bytes() const {
  return nodes_.capacity() * sizeof(Node) + edges_.size() * (sizeof(uint64_t) + 24) +
         edges_.bucket_count() * sizeof(void*);
}

uint32_t Profile::thread_index(uint64_t thread_id, pid_t native_id, const std::string& name) {
  auto [it, added] = thread_lookup_.try_emplace({thread_id, native_id},
                                                 static_cast<uint32_t>(threads.size()));
  if (!added) {
    ThreadInfo& known = threads[it->second];
    if (known.name.empty()) known.name = name;
    return it->second;
  }
  threads.push_back(ThreadInfo{thread_id, native_id, name});
  weights.emplace_back();
  return it->second;
}

bool Profile::tasks_linked() const {
  for (const auto& per_thread : drawn) {
    for (const auto& [key, w] : per_thread) {
      if (drawn_prefix(key) != kRootStack && w.samples > 0) return true;
    }
  }
  return false;
}

void Profile::add_sample(uint32_t thread, StackId stack, double t, double seconds, StackId prefix,
                         bool through_children) {
  Weight& w = weights[thread][stack];
  w.samples += 1;
  w.seconds += seconds;
  if (prefix != kRootStack || through_children) {
    if (drawn.size() <= thread) drawn.resize(thread + 1);
    Weight& d = drawn[thread][drawn_key(stack, prefix, through_children)];
    d.samples += 1;
    d.seconds += seconds;
  }
  // Extend the thread's latest span when the stack did not change.
  for (auto it = timeline.rbegin(); it != timeline.rend() && it != timeline.rbegin() + 64; ++it) {
    if (it->thread != thread) continue;
    if (it->stack == stack && it->prefix == prefix) {
      it->end = t + seconds;
      it->samples += 1;
      return;
    }
    break;
  }
  if (timeline.size() < timeline_limit) {
    timeline.push_back(Span{thread, stack, t, t + seconds, 1, prefix});
  }
}

std::unordered_map<StackId, Weight> Profile::merged_weights() const {
  std::unordered_map<StackId, Weight> merged;
  for (const auto& per_thread : weights) {
    for (const auto& [stack, w] : per_thread) {
      Weight& m = merged[stack];
      m.samples += w.samples;
      m.seconds += w.seconds;
    }
  }
  return merged;
}

std::string process_root_name(pid_t pid, const std::string& command) {
  if (pid == 0) return "<process " + command + ">";
  return "<process " + std::to_string(pid) + ": " + command + ">";
}

void Profile::merge(const Profile& other, const std::string& root, pid_t pid) {
  std::vector<FrameId> frame_of(other.frames.size());
  for (FrameId f = 0; f < other.frames.size(); ++f)
    frame_of[f] = frames.intern(other.frames.get(f));
  const StackId base = root.empty()
                           ? kRootStack
                           : stacks.child(kRootStack, frames.intern(FrameInfo{root, "", 0, 0}));
  // Parents come before their children in a trie: one pass maps every node.
  std::vector<StackId> stack_of(other.stacks.size(), base);
  for (StackId id = 1; id < other.stacks.size(); ++id) {
    const StackId parent = other.stacks.parent(id);
    const FrameId frame = other.stacks.frame(id);
    if (parent >= id || frame >= frame_of.size()) continue;  // not possible in a well-built trie
    stack_of[id] = stacks.child(stack_of[parent], frame_of[frame]);
  }
  auto map_stack = [&](StackId id) { return id < stack_of.size() ? stack_of[id] : base; };
  std::vector<uint32_t> thread_of(other.threads.size());
  for (size_t t = 0; t < other.threads.size(); ++t) {
    const ThreadInfo& info = other.threads[t];
    thread_of[t] =
        thread_index(info.thread_id, info.native_id != 0 ? info.native_id : pid, info.name);
    if (t >= other.weights.size()) continue;
    for (const auto& [stack, w] : other.weights[t]) {
      Weight& into = weights[thread_of[t]][map_stack(stack)];
      into.samples += w.samples;
      into.seconds += w.seconds;
    }
    if (t >= other.drawn.size()) continue;
    if (drawn.size() <= thread_of[t]) drawn.resize(thread_of[t] + 1);
    for (const auto& [key, w] : other.drawn[t]) {
      // A prefix that is the empty stack stays empty: the stack itself opens with the root.
      const StackId prefix = drawn_prefix(key);
      Weight& into = drawn[thread_of[t]][drawn_key(
          map_stack(drawn_stack(key)), prefix == kRootStack ? kRootStack : map_stack(prefix),
          drawn_through_children(key))];
      into.samples += w.samples;
      into.seconds += w.seconds;
    }
  }
  for (const Span& span : other.timeline) {
    if (timeline.size() >= timeline_limit) break;
    if (span.thread >= thread_of.size()) continue;
    Span copy = span;
    copy.thread = thread_of[span.thread];
    copy.stack = map_stack(span.stack);
    copy.prefix = span.prefix == kRootStack ? kRootStack : map_stack(span.prefix);
    timeline.push_back(copy);
  }
}

size_t Profile::memory_bytes() const {
  size_t bytes = frames.memory_bytes() + stacks.memory_bytes() + timeline.capacity() * sizeof(Span);
  for (const auto& w : weights) bytes += w.size() * (sizeof(StackId) + sizeof(Weight) + 16);
  for (const auto& d : drawn) bytes += d.size() * (sizeof(uint64_t) + sizeof(Weight) + 16);
  return bytes;
}

void Profile::clear() {
  frames = FrameTable();
  stacks = StackTrie();
  threads.clear();
  thread_lookup_.clear();
  weights.clear();
  drawn.clear();
  timeline.clear();
  run = RunInfo();
}

}  // namespace spyglass::sampling
