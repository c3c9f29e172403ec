// The stack walker: every thread of every interpreter, innermost frame first. One generic
// walker driven by the version's Layout; iterative, bounded against cycles and corruption.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cpython/code_cache.h"
#include "cpython/layout.h"
#include "cpython/stack.h"

namespace spyglass::process {
class MemoryReader;
class ThreadIds;
}  // namespace spyglass::process

namespace spyglass::cpython {

struct WalkerConfig {
  Layout layout;
  uint64_t runtime_addr = 0;
  // Type objects of the target, for validating objects (0 when unknown).
  uint64_t code_type = 0;
  uint64_t unicode_type = 0;
  uint64_t bytes_type = 0;
  size_t max_depth = 100'000;   // frames per thread
  size_t max_threads = 10'000;  // per interpreter
  size_t max_interpreters = 256;
  // How many times one thread's stack is read again when the walk caught it torn.
  int max_torn_retries = 12;
  // From a thread's pthread_t to the CPU number glibc's rseq area holds (process/rseq.h);
  // nullopt when the target has none.
  std::optional<int64_t> rseq_cpu_offset;
  // 3.12: where _Py_next_func_version lives, the counter that numbers new code objects (0:
  // not found, the binary is stripped). 3.13+ keep it in the interpreter state instead.
  uint64_t code_counter_addr = 0;
};

// The frame a thread state runs now (3.11-3.12 through its C frame), 0 when unreadable.
uint64_t read_current_frame(process::MemoryReader& memory, const Layout& layout, uint64_t tstate);

struct WalkStats {
  uint64_t walks = 0;
  uint64_t frames = 0;
  uint64_t bad_frames = 0;
  uint64_t torn_retries = 0;  // thread stacks read again after catching a generator mid-yield
  uint64_t torn_stacks = 0;   // ... and still torn after the last retry
  // 3.8-3.10: newest frames that had already returned when read, left out: the stack is read
  // from their caller, where the thread had gone.
  uint64_t returned_frames = 0;
  // 3.8-3.10: frames read again from the live process because their copy showed them no
  // longer running (see walk_frame_objects), and found running: not a loss, no re-read.
  uint64_t frames_read_again = 0;
  // 3.12+: samples that caught the newest function returning: unlinked from the thread's
  // chain but still on its data stack, its locals being freed. Counted in its name (see
  // walker.cpp), not its caller's.
  uint64_t returning_frames = 0;
  // 3.8-3.10: stacks read again because they ended at another outermost frame than their
  // thread's last whole stack did (see walk_thread_frames); also counted in torn_retries.
  uint64_t moved_outermost = 0;
  // Thread stacks read, and those known unchanged without a read: no other thread has taken
  // the GIL since they were read (see StackWalker::reuse_unchanged_stack).
  uint64_t stacks_read = 0;
  uint64_t unchanged_stacks = 0;
  // GIL readings that could not be right (its holder changed but its count of changes did
  // not, or the count ran backwards); past a few, the count is never trusted again.
  uint64_t gil_count_faults = 0;
  uint64_t thread_list_retries = 0;  // thread lists read again after breaking off mid-change
  uint64_t cut_thread_lists = 0;     // ... and still cut after the last retry: threads lost
};

class StackWalker {
 public:
  StackWalker(process::MemoryReader& memory, WalkerConfig config);
  ~StackWalker();
  // Walks all threads. Returns false when the runtime itself cannot be read (the process is
  // gone or was never initialised); a damaged stack marks its thread `truncated` instead.
  // `known_tids` (optional) lets 3.8-3.10 map pthread ids to kernel thread ids.
  bool walk(std::vector<ThreadStack>& out, process::ThreadIds* known_tids = nullptr);
  // Only the thread states, without frames (cheap: for `threads` and thread bookkeeping).
  bool list_threads(std::vector<ThreadStack>& out, process::ThreadIds* known_tids = nullptr);
  // Whether the next walks look where the GIL holder runs (its rseq area, see read_thread): a
  // poll, which the sampler makes about once a millisecond, not every sample.
  void want_holder_cpu(bool wanted) { holder_cpu_wanted_ = wanted; }
  const WalkerConfig& config() const { return config_; }
  const WalkStats& stats() const { return stats_; }
  CodeCache& code_cache() { return *codes_; }

 private:
  struct GilState;
  // `one_interpreter`: the interpreter list holds no other (see compare_gil).
  bool read_gil(uint64_t interp, int64_t interp_id, bool one_interpreter, GilState& gil);
  // 3.12+: where the interpreter's GIL is (see walker.cpp); 0 when unreadable.
  uint64_t gil_address(uint64_t interp, int64_t interp_id);
  // Compares the GIL's last holder and count of changes with the previous walk's (see
  // reuse_unchanged_stack); `gil_key` is where the count lives.
  void compare_gil(uint64_t gil_key, uint64_t last_holder, uint64_t switches, bool one_interpreter,
                   GilState& gil);
  // The counter that numbers new code objects, for the code cache (see CodeCache::begin_walk);
  // nullopt when there is none to trust. `interp` is the head of the interpreter list.
  std::optional<uint32_t> read_code_counter(uint64_t interp, bool one_interpreter);
  bool walk_interpreters(std::vector<ThreadStack>& out, process::ThreadIds* known_tids,
                         bool with_frames);
  // One interpreter's threads from `tstate` (the list's head); false when the list broke off
  // (an unreadable or foreign thread state, a loop): read while it changed.
  bool walk_thread_list(uint64_t tstate, uint64_t interp, int64_t interp_id, const GilState& gil,
                        std::vector<ThreadStack>& out, process::ThreadIds* known_tids,
                        bool with_frames);
  // A thread state's links, as read_thread() found them.
  struct ThreadLinks {
    uint64_t next = 0;
    uint64_t frame = 0;  // its current frame (3.11-3.12: its C frame) pointer
  };
  bool read_thread(uint64_t tstate, uint64_t interp, const GilState& gil, ThreadStack& out,
                   ThreadLinks& links);
  // 3.8-3.10: the kernel thread id behind the thread's pthread (3.11+ keep it in the state).
  void find_native_id(ThreadStack& out, process::ThreadIds* known_tids);
  // The thread's stack as the last walk read it, when the GIL proves it unchanged since;
  // false (nothing taken) otherwise (see walker.cpp).
  bool reuse_unchanged_stack(uint64_t tstate, const ThreadLinks& links, const GilState& gil,
                             ThreadStack& out, process::ThreadIds* known_tids);
  static bool stood_still(const GilState& gil, uint64_t tstate);
  // Keeps a stack just read for the next walk's reuse_unchanged_stack, when it was read while
  // the GIL stood still.
  void hold_stack(uint64_t tstate, const ThreadLinks& links, const GilState& gil,
                  const ThreadStack& stack);
  // A frame's header bytes (in the prefetch, or read into scratch_); on failure nullptr, and
  // the stack is marked truncated. Valid until the next read_frame().
  const uint8_t* read_frame(uint64_t frame, size_t header, ThreadStack& out);
  // Reads the thread's frames, retrying a torn read (see walker.cpp).
  void walk_thread_frames(uint64_t tstate, ThreadStack& out);
  // Each returns false when the stack it read cannot be whole (a generator's frame with no
  // caller, an unreadable link, 3.12+ a chain not ending at the entry frame): a torn read.
  bool walk_frame_objects(uint64_t frame, ThreadStack& out);
  // 3.8-3.10: whether the freed frame `frame` is its code's spare (see walker.cpp).
  bool is_zombie_frame(uint64_t code, uint64_t frame);
  // `bottom` is set to the address of the outermost Python frame reached.
  bool walk_interpreter_frames(uint64_t frame, ThreadStack& out, uint64_t& bottom);
  // 3.12+: a frame still on the data stack above the newest one the thread runs, returning to
  // `current`: put first in `out` (see walker.cpp).
  void add_returning_frame(uint64_t tstate, uint64_t current, ThreadStack& out);
  // 3.11+: whether a stack read from `frame` (0: none) down to `bottom` can be the thread's
  // whole stack (see walker.cpp).
  bool ends_at_thread_root(uint64_t tstate, uint64_t frame, uint64_t bottom);
  // 3.8-3.10: whether `out` ends at its thread's outermost frame, as the thread's last whole
  // stack did; a new one is taken once a second read ends there too (`moved_to`).
  bool ends_at_own_outermost(uint64_t tstate, const ThreadStack& out, uint64_t& moved_to);
  // 3.11+: where the thread's first frame lives, 0 when it cannot be told.
  uint64_t first_frame_slot(uint64_t tstate);

  process::MemoryReader& memory_;
  WalkerConfig config_;
  std::unique_ptr<CodeCache> codes_;
  WalkStats stats_;
  std::vector<uint64_t> seen_interps_;  // walk_interpreters' scratch
  // Emptied frame lists of the last walk, reused (see walk_interpreters).
  std::vector<std::vector<Frame>> spare_frames_;
  static constexpr size_t kMaxSpareFrameLists = 1024;
  std::vector<uint8_t> scratch_;
  std::vector<uint8_t> fresh_;  // a frame header read again from the live process
  // The last walk_interpreter_frames: its newest frame on the thread's data stack (not a
  // generator's, nor a shim), and that frame's code.
  uint64_t newest_owned_ = 0;
  const CodeInfo* newest_owned_code_ = nullptr;
  // 3.8-3.10: each thread's outermost frame in its last whole stack, by thread state.
  std::unordered_map<uint64_t, uint64_t> outermost_;
  // Each GIL as the last walk found it (see compare_gil).
  struct GilMark {
    uint64_t key = 0;
    uint64_t last_holder = 0;
    uint64_t switches = 0;
    uint64_t walk = 0;
    bool unchanged = false;
  };
  std::vector<GilMark> gil_marks_;
  // 3.12+: each interpreter's GIL pointer as last read (see gil_address).
  struct GilPointer {
    uint64_t interp = 0;
    int64_t interp_id = 0;
    uint64_t gil = 0;
    uint64_t checked_walk = 0;
  };
  std::vector<GilPointer> gil_pointers_;
  static constexpr size_t kMaxGilPointers = 64;
  static constexpr uint64_t kGilPointerCheckWalks = 256;
  bool holder_cpu_wanted_ = true;
  static constexpr uint64_t kMaxGilCountFaults = 8;
  bool gil_count_off_ = false;
  // Stacks read while the GIL stood still, by thread state (see hold_stack).
  struct HeldStack {
    bool kept = false;  // false: an entry left from an earlier stack, for its memory
    uint64_t walk = 0;  // the walk that read it or found it unchanged
    uint64_t thread_id = 0;
    uint64_t frame = 0;  // ThreadLinks::frame then
    pid_t native_id = 0;
    std::vector<Frame> frames;
  };
  std::unordered_map<uint64_t, HeldStack> held_;
  static constexpr size_t kMaxHeldStacks = 4096;
  // Frames the kept stacks have room for, in all (32 MiB).
  size_t held_frames_ = 0;
  static constexpr size_t kMaxHeldFrames = size_t{1} << 20;
};

}  // namespace spyglass::cpython
