// Everything a sampling run gathered: frames and call stacks stored deduplicated (interned
// frames, a trie of stacks), weights per thread, and a run-length-encoded timeline. Reports
// and exporters read only this.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace spyglass::sampling {

using FrameId = uint32_t;
using StackId = uint32_t;
constexpr StackId kRootStack = 0;  // the empty stack

struct FrameInfo {
  std::string function;  // qualified name where the version has it (Class.method)
  std::string file;
  int line = 0;          // 0 when lines are merged into functions
  int firstlineno = 0;
  bool operator==(const FrameInfo&) const = default;
};

// The marker frame that opens a suspended asyncio task's own frames where it is drawn under
// the frames of the task awaiting it (cpython/task_links.h); no code object has this name.
inline bool is_task_marker(const FrameInfo& frame) {
  return frame.file.empty() && frame.function == "<task>";
}

// The frame that opens a process's stacks where several processes are drawn in one profile
// (--subprocesses): "<process 1234: command line>"; no code object has such a name.
inline bool is_process_root(const FrameInfo& frame) {
  return frame.file.empty() && frame.function.starts_with("<process");
}
std::string process_root_name(pid_t pid, const std::string& command);  // pid 0: no pid

struct FrameInfoHash {
  size_t operator()(const FrameInfo& f) const;
};

class FrameTable {
 public:
  FrameId intern(const FrameInfo& frame);
  const FrameInfo& get(FrameId id) const { return frames_[id]; }
  size_t size() const { return frames_.size(); }
  size_t memory_bytes() const;

 private:
  std::vector<FrameInfo> frames_;
  std::unordered_map<FrameInfo, FrameId, FrameInfoHash> index_;
};

// Call stacks as a trie, root first: a stack is the id of its innermost node.
class StackTrie {
 public:
  StackTrie();
  StackId child(StackId parent, FrameId frame);
  StackId parent(StackId id) const { return nodes_[id].parent; }
  FrameId frame(StackId id) const { return nodes_[id].frame; }
  uint32_t depth(StackId id) const { return nodes_[id].depth; }
  // The frames of `id`, outermost first.
  void path(StackId id, std::vector<FrameId>& root_first) const;
  size_t size() const { return nodes_.size(); }
  size_t memory_bytes() const;

 private:
  struct Node {
    StackId parent;
    FrameId frame;
    uint32_t depth;
  };
  struct EdgeHash {
    size_t operator()(uint64_t key) const { return key * 0x9E3779B97F4A7C15ull >> 17; }
  };
  std::vector<Node> nodes_;
  std::unordered_map<uint64_t, StackId, EdgeHash> edges_;  // (parent << 32 | frame) -> child
};

struct ThreadInfo {
  uint64_t thread_id = 0;  // Python's threading.get_ident()
  pid_t native_id = 0;
  std::string name;
};

struct Weight {
  uint64_t samples = 0;
  double seconds = 0;
};

// Consecutive samples of one thread on the same stack, merged.
struct Span {
  uint32_t thread = 0;
  StackId stack = kRootStack;
  double start = 0;  // seconds since the run began
  double end = 0;
  uint64_t samples = 0;
  StackId prefix = kRootStack;  // drawn above `stack` (an asyncio task's awaiters, see Profile)
};

struct RunInfo {
  pid_t pid = 0;
  std::string python_version;
  std::string mode = "wall";
  double rate_hz = 0;
  double duration_seconds = 0;
  uint64_t samples = 0;        // sampling rounds taken
  uint64_t late_samples = 0;
  uint64_t missed_samples = 0;
  double start_unix_time = 0;
};

class Profile {
 public:
  FrameTable frames;
  StackTrie stacks;
  std::vector<ThreadInfo> threads;
  std::vector<std::unordered_map<StackId, Weight>> weights;  // indexed like `threads`
  std::vector<Span> timeline;
  RunInfo run;
  std::vector<std::string> chosen;  // the chosen function patterns, to highlight
  // Spans kept for the timeline formats (Chrome trace, speedscope); past it, no more are
  // appended, so memory stays flat on long runs (40 bytes a span).
  size_t timeline_limit = 200'000;
  // Presentation only (trees and exports; results read `weights` alone, so no figure of a
  // chosen function depends on it): suspended asyncio tasks drawn under the task awaiting them.
  // Per thread (indexed like `threads`), the part of its weights drawn otherwise than its own
  // stack: under `prefix` (the awaiters' frames, outermost first, each task's followed by a
  // `<task>` marker), and/or `through_children` (a task whose only activity is waiting for
  // tasks drawn under it: whole-program drawings leave its own stack out, since each child
  // already draws its frames). Keyed by drawn_key(); each entry is a part of
  // weights[thread][stack], never more.
  std::vector<std::unordered_map<uint64_t, Weight>> drawn;
  static uint64_t drawn_key(StackId stack, StackId prefix, bool through_children) {
    return uint64_t{stack} | (uint64_t{prefix & 0x7fffffffu} << 32) |
           (through_children ? uint64_t{1} << 63 : 0);
  }
  static StackId drawn_stack(uint64_t key) { return static_cast<StackId>(key); }
  static StackId drawn_prefix(uint64_t key) {
    return static_cast<StackId>(key >> 32) & 0x7fffffffu;
  }
  static bool drawn_through_children(uint64_t key) { return (key >> 63) != 0; }
  // Whether any sample is drawn under an awaiter (reports then say how they draw tasks).
  bool tasks_linked() const;

  // The index of a thread, adding it when new.
  uint32_t thread_index(uint64_t thread_id, pid_t native_id, const std::string& name);
  // The index of a thread seen before, or -1: spares building the name of each of a thousand
  // asyncio tasks' pseudo-threads every sample.
  int64_t known_thread(uint64_t thread_id, pid_t native_id) const {
    auto it = thread_lookup_.find({thread_id, native_id});
    return it == thread_lookup_.end() ? -1 : int64_t{it->second};
  }
  // Credits one sample on `stack` to a thread: taken at `t` (seconds since start), it stands for
  // the `seconds` from there to the next sample.
  // `prefix` and `through_children`: how trees and exports draw it (see `drawn`).
  void add_sample(uint32_t thread, StackId stack, double t, double seconds,
                  StackId prefix = kRootStack, bool through_children = false);
  // Sum over threads.
  std::unordered_map<StackId, Weight> merged_weights() const;
  // Adds another process's profile to this one (--subprocesses): its threads become threads
  // of this one, its stacks open with a frame named `root` when one is given (see
  // is_process_root), and its timeline joins this one's (both count from the same origin).
  // Task pseudo-threads (native id 0) take the process's `pid` as their native id, so that
  // two processes' tasks at the same address stay apart.
  void merge(const Profile& other, const std::string& root, pid_t pid);
  size_t memory_bytes() const;
  void clear();

 private:
  // (thread id, native id) -> index in `threads`: a program with thousands of threads would
  // otherwise pay a scan of all of them for every thread of every sample.
  struct ThreadKeyHash {
    size_t operator()(const std::pair<uint64_t, pid_t>& key) const {
      return std::hash<uint64_t>()(key.first * 0x9E3779B97F4A7C15ull ^
                                   static_cast<uint64_t>(static_cast<uint32_t>(key.second)));
    }
  };
  std::unordered_map<std::pair<uint64_t, pid_t>, uint32_t, ThreadKeyHash> thread_lookup_;
};

}  // namespace spyglass::sampling
