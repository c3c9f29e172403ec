#include "cpython/walker.h"

#include <algorithm>
#include <cstring>

#include "cpython/remote_pointer.h"
#include "process/maps.h"
#include "process/memory.h"
#include "process/rseq.h"

namespace spyglass::cpython {
namespace {

template <typename T>
T field(const std::vector<uint8_t>& bytes, uint64_t offset) {
  T value{};
  if (offset + sizeof(T) <= bytes.size()) std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

// A field of a frame header: `bytes` holds the whole header, which is sized to reach every
// field the walker reads.
template <typename T>
T field(const uint8_t* bytes, uint64_t offset) {
  T value;
  std::memcpy(&value, bytes + offset, sizeof(T));
  return value;
}

// Brent's cycle detection, O(1) memory: a frame chain read while it changed can loop
// (A -> B -> A). Unchecked, such a chain was walked to max_depth and kept as one 100,000-frame
// stack (megabytes of frames, trie nodes and path memo at once, and a garbage stack in the
// profile). A cycle is a torn read: the stack is read again.
class CycleCheck {
 public:
  bool seen(uint64_t frame) {
    if (frame == mark_) return true;
    if (++steps_ == limit_) {
      mark_ = frame;
      limit_ *= 2;
      steps_ = 0;
    }
    return false;
  }

 private:
  uint64_t mark_ = 0;
  size_t steps_ = 0, limit_ = 2;
};

// glibc keeps the kernel thread id inside struct pthread, whose address is the pthread_t.
// Python 3.8-3.10 store only the pthread_t, so that is how their TIDs are found. The value is
// trusted only when it names a thread the kernel lists for the process.
constexpr uint64_t kGlibcPthreadTidOffset = 0x2d0;

// 3.8-3.10: how many times a torn walk starts again at once from the thread's current frame
// read anew, before the walk is fetched again whole (see walk_thread_frames).
constexpr int kMaxChases = 16;

// 3.11+: frames whose code cannot be read, one after another, that a walk goes past (see
// walk_interpreter_frames): one being set up or torn down is skipped, and so are short runs
// of them (a deep recursion on 3.14 and 3.15 has runs of several: with a limit of 2 its
// parser read 25-33 % low, its stacks read again four times as often); a long run is not a
// thread's stack.
constexpr int kMaxUnreadableFramesInRow = 64;

// 3.8-3.10: newest frames left out of a walk because they have returned (see
// walk_frame_objects).
constexpr int kMaxReturnedFrames = 1;
// ... and past the first, those that are their code's spare frame (see is_zombie_frame).
constexpr int kMaxReturnedZombies = 16;

// 3.8-3.10's PyCodeObject: co_zombieframe follows co_lnotab (3.10: co_linetable) in each of
// them (code.h).
constexpr uint64_t kZombieAfterLinetable = 8;

}  // namespace

struct StackWalker::GilState {
  bool known = false;
  bool locked = false;
  uint64_t holder = 0;
  uint64_t last_holder = 0;
  // The GIL's last holder and its count of changes of holder are what the previous walk read
  // (see reuse_unchanged_stack).
  bool unchanged = false;
};

StackWalker::StackWalker(process::MemoryReader& memory, WalkerConfig config)
    : memory_(memory), config_(std::move(config)) {
  codes_ = std::make_unique<CodeCache>(memory_, config_.layout, config_.code_type,
                                       config_.unicode_type, config_.bytes_type);
}

StackWalker::~StackWalker() = default;

bool StackWalker::walk(std::vector<ThreadStack>& out, process::ThreadIds* known_tids) {
  ++stats_.walks;
  return walk_interpreters(out, known_tids, true);
}

bool StackWalker::list_threads(std::vector<ThreadStack>& out, process::ThreadIds* known_tids) {
  return walk_interpreters(out, known_tids, false);
}

// 3.12+ keep the GIL behind a pointer in the interpreter state, set when the interpreter is
// made and not moved while it lives (a fork re-initialises the GIL in place). Read every walk,
// it was a range of every batch of its own (on 3.15 the pointer sits on another page than the
// interpreter's other fields the walk reads); now it is read again only as a poll every
// kGilPointerCheckWalks walks, and anew for an interpreter not seen before, or whose id
// changed (another interpreter made where a freed one was).
uint64_t StackWalker::gil_address(uint64_t interp, int64_t interp_id) {
  const Layout& L = config_.layout;
  auto known = std::find_if(gil_pointers_.begin(), gil_pointers_.end(),
                            [&](const GilPointer& p) { return p.interp == interp; });
  if (known != gil_pointers_.end() && known->interp_id == interp_id) {
    if (stats_.walks - known->checked_walk >= kGilPointerCheckWalks) {
      uint64_t fresh = 0;
      if (memory_.read_polled(interp + L.interp.gil_pointer, &fresh, sizeof(fresh))) {
        known->checked_walk = stats_.walks;
        known->gil = fresh;
      }
    }
    return plausible_pointer(known->gil) ? known->gil : 0;
  }
  uint64_t gil = 0;
  if (!memory_.read_value(interp + L.interp.gil_pointer, gil) || !plausible_pointer(gil)) return 0;
  if (known == gil_pointers_.end()) {
    if (gil_pointers_.size() >= kMaxGilPointers) gil_pointers_.clear();
    known = gil_pointers_.insert(gil_pointers_.end(), GilPointer{});
  }
  *known = GilPointer{interp, interp_id, gil, stats_.walks};
  return gil;
}

bool StackWalker::read_gil(uint64_t interp, int64_t interp_id, bool one_interpreter,
                           GilState& gil) {
  const Layout& L = config_.layout;
  gil = GilState{};
  if (L.runtime.gilstate_tstate_current) {
    const uint64_t runtime = config_.runtime_addr;
    uint64_t holder = 0;
    int32_t locked = 0;
    if (!memory_.read_value(runtime + L.runtime.gilstate_tstate_current, holder)) return false;
    if (L.runtime.ceval_gil_locked &&
        !memory_.read_value(runtime + L.runtime.ceval_gil_locked, locked))
      return false;
    gil.known = true;
    gil.holder = holder;
    gil.locked = L.runtime.ceval_gil_locked ? locked != 0 : holder != 0;
    uint64_t last_holder = 0, switches = 0;
    if (L.runtime.ceval_gil_switch_number && L.runtime.ceval_gil_last_holder &&
        memory_.read_value(runtime + L.runtime.ceval_gil_last_holder, last_holder) &&
        memory_.read_value(runtime + L.runtime.ceval_gil_switch_number, switches)) {
      compare_gil(runtime + L.runtime.ceval_gil_switch_number, last_holder, switches,
                  one_interpreter, gil);
    }
    return true;
  }
  if (L.interp.gil_pointer) {
    const uint64_t gil_addr = gil_address(interp, interp_id);
    if (!gil_addr) return false;
    int32_t locked = 0;
    uint64_t holder = 0;
    if (!memory_.read_value(gil_addr + L.interp.gil_locked, locked) ||
        !memory_.read_value(gil_addr + L.interp.gil_holder, holder)) {
      std::erase_if(gil_pointers_, [&](const GilPointer& p) { return p.interp == interp; });
      return false;
    }
    gil.known = true;
    gil.locked = locked != 0;
    gil.holder = holder;
    // 3.13+: the count's offset is transcribed (_Py_DebugOffsets lacks it): only for a GIL
    // laid out as in the headers it came from.
    uint64_t switches = 0;
    if (L.interp.gil_switch_number &&
        (!L.interp.gil_switch_number_locked ||
         L.interp.gil_switch_number_locked == L.interp.gil_locked) &&
        memory_.read_value(gil_addr + L.interp.gil_switch_number, switches)) {
      compare_gil(gil_addr, holder, switches, one_interpreter, gil);
    }
  }
  return true;
}

// CPython counts a change of the GIL's holder (take_gil() in Python/ceval_gil.c: when a thread
// other than the last holder takes it, it becomes the last holder and switch_number grows by
// one). A Python thread changes its frames only while it holds the GIL; so when the last
// holder and the count are the same as the previous walk read them, no other thread has run
// Python code in between, and each other thread's stack is the one that walk read. The count
// is checked as it is used: it never runs backwards, and never stands still while the holder
// changes (a wrong offset would); after a few such readings it is not used again. With more
// than one interpreter it proves nothing: a thread holding a GIL that interpreters share may
// run another one's thread state without taking the GIL anew (PyThreadState_Swap, as 3.8-3.11's
// _xxsubinterpreters does), and that thread state's frames change unseen by the count.
void StackWalker::compare_gil(uint64_t gil_key, uint64_t last_holder, uint64_t switches,
                              bool one_interpreter, GilState& gil) {
  gil.last_holder = last_holder;
  if (gil_count_off_) return;
  const uint64_t walk = stats_.walks;
  auto mark = std::find_if(gil_marks_.begin(), gil_marks_.end(),
                           [&](const GilMark& m) { return m.key == gil_key; });
  if (mark == gil_marks_.end()) {
    if (gil_marks_.size() >= config_.max_interpreters) gil_marks_.clear();
    gil_marks_.push_back(GilMark{gil_key, last_holder, switches, walk, false});
    return;
  }
  if (mark->walk == walk) {  // another interpreter that shares this GIL, in the same walk
    gil.unchanged = mark->unchanged && one_interpreter;
    return;
  }
  bool unchanged = false;
  if (switches < mark->switches ||
      (switches == mark->switches && last_holder != mark->last_holder)) {
    if (++stats_.gil_count_faults >= kMaxGilCountFaults) {
      gil_count_off_ = true;
      held_.clear();
      held_frames_ = 0;
    }
  } else {
    unchanged = mark->walk + 1 == walk && switches == mark->switches;
  }
  *mark = GilMark{gil_key, last_holder, switches, walk, unchanged};
  gil.unchanged = unchanged && one_interpreter;
}

std::optional<uint32_t> StackWalker::read_code_counter(uint64_t interp, bool one_interpreter) {
  const Layout& L = config_.layout;
  uint64_t addr = 0;
  if (L.runtime.code_counter_global) {
    addr = config_.code_counter_addr;
  } else if (L.interp.code_counter && L.interp.size == L.interp.code_counter_interp_size) {
    // 3.13+: each interpreter numbers its own code objects, but the cache holds them all: with
    // a second interpreter, nothing proves the first one's code unchanged. The offset is
    // transcribed (_Py_DebugOffsets lacks it): only for the struct it was transcribed from.
    if (!one_interpreter) return std::nullopt;
    addr = interp + L.interp.code_counter;
  }
  uint32_t counter = 0;
  if (!addr || !memory_.read_value(addr, counter) || counter == 0) return std::nullopt;
  return counter;
}

bool StackWalker::walk_interpreters(std::vector<ThreadStack>& out, process::ThreadIds* known_tids,
                                    bool with_frames) {
  const Layout& L = config_.layout;
  // The last walk's frame lists keep their memory for this one: growing a list frame by frame
  // anew was most of the sampler's allocations (11 a sample on the reference workload; a
  // 64-deep stack, 7 at 100 kHz).
  for (ThreadStack& t : out) {
    if (spare_frames_.size() >= kMaxSpareFrameLists) break;
    t.frames.clear();
    spare_frames_.push_back(std::move(t.frames));
  }
  out.clear();
  uint64_t interp = 0;
  if (!memory_.read_value(config_.runtime_addr + L.runtime.interpreters_head, interp)) return false;
  if (!plausible_pointer(interp)) return false;
  uint64_t second = 0;
  const bool one_interpreter = memory_.read_value(interp + L.interp.next, second) && second == 0;
  if (with_frames) codes_->begin_walk(read_code_counter(interp, one_interpreter));

  std::vector<uint64_t>& seen_interps = seen_interps_;
  seen_interps.clear();
  for (size_t n = 0; interp && n < config_.max_interpreters; ++n) {
    if (!plausible_pointer(interp)) break;
    if (std::find(seen_interps.begin(), seen_interps.end(), interp) != seen_interps.end()) break;
    seen_interps.push_back(interp);

    int64_t interp_id = 0;
    if (L.interp.id) memory_.read_value(interp + L.interp.id, interp_id);
    GilState gil;
    read_gil(interp, interp_id, one_interpreter, gil);

    uint64_t head = 0;
    if (!memory_.read_value(interp + L.interp.threads_head, head)) return n > 0;
    const size_t first_thread = out.size();
    // A thread state freed while the list was read (a thread ending: one per request in a
    // threaded server) cuts the list there, and every thread after it would be lost: read
    // the list again from its head, and count a list that stays cut.
    for (int attempt = 0;; ++attempt) {
      if (walk_thread_list(head, interp, interp_id, gil, out, known_tids, with_frames)) break;
      if (attempt >= config_.max_torn_retries) {
        ++stats_.cut_thread_lists;
        break;
      }
      ++stats_.thread_list_retries;
      out.resize(first_thread);
      memory_.refresh();
      if (!memory_.read_value(interp + L.interp.threads_head, head)) return n > 0;
    }
    uint64_t next_interp = 0;
    if (!memory_.read_value(interp + L.interp.next, next_interp)) break;
    interp = next_interp;
  }
  return true;
}

bool StackWalker::walk_thread_list(uint64_t tstate, uint64_t interp, int64_t interp_id,
                                   const GilState& gil, std::vector<ThreadStack>& out,
                                   process::ThreadIds* known_tids, bool with_frames) {
  const size_t first_thread = out.size();
  for (size_t t = 0; tstate; ++t) {
    if (t >= config_.max_threads) return true;  // a bound, not a tear
    ThreadStack stack;
    if (!spare_frames_.empty()) {
      stack.frames = std::move(spare_frames_.back());
      spare_frames_.pop_back();
    }
    ThreadLinks links;
    if (!plausible_pointer(tstate) || !read_thread(tstate, interp, gil, stack, links)) return false;
    stack.interpreter_id = interp_id;
    if (!with_frames || !reuse_unchanged_stack(tstate, links, gil, stack, known_tids)) {
      find_native_id(stack, known_tids);
      if (with_frames) {
        walk_thread_frames(tstate, stack);
        ++stats_.stacks_read;
        hold_stack(tstate, links, gil, stack);
      }
    }
    out.push_back(std::move(stack));
    // A cycle in the thread list: read while it changed.
    for (size_t i = first_thread; i < out.size(); ++i) {
      if (out[i].tstate_addr == links.next) return false;
    }
    tstate = links.next;
  }
  return true;
}

bool StackWalker::read_thread(uint64_t tstate, uint64_t interp, const GilState& gil,
                              ThreadStack& out, ThreadLinks& links) {
  const Layout& L = config_.layout;
  const auto& T = L.thread;
  uint64_t end = std::max({T.next + 8, T.interp + 8, T.thread_id + 8, T.native_thread_id + 8,
                           T.frame + 8, T.cframe + 8});
  scratch_.resize(static_cast<size_t>(end));
  if (!memory_.read(tstate, scratch_.data(), scratch_.size())) return false;
  // A thread state must point back at its interpreter.
  if (field<uint64_t>(scratch_, T.interp) != interp) return false;
  links.next = field<uint64_t>(scratch_, T.next);
  links.frame = field<uint64_t>(scratch_, T.cframe ? T.cframe : T.frame);
  out.tstate_addr = tstate;
  out.thread_id = field<uint64_t>(scratch_, T.thread_id);
  if (T.native_thread_id) out.native_id = field<int32_t>(scratch_, T.native_thread_id);
  out.gil_known = gil.known;
  out.holds_gil = gil.known && gil.locked && gil.holder == tstate;
  // Where the GIL holder runs, for the sampler's placement: a word beside its thread's
  // pthread, polled (MemoryReader::read_polled) when the sampler asks for it: a range of its
  // own every sample, 3 % of the time of a sample at 100 kHz.
  if (out.holds_gil && holder_cpu_wanted_ && config_.rseq_cpu_offset &&
      plausible_pointer(out.thread_id)) {
    out.cpu = process::read_rseq_cpu(
        memory_, out.thread_id + static_cast<uint64_t>(*config_.rseq_cpu_offset));
  }
  return true;
}

// Whether `tstate` has run no Python code since the previous walk: the GIL stood still, and
// it was not the thread that kept it (reuse_unchanged_stack and hold_stack must agree).
bool StackWalker::stood_still(const GilState& gil, uint64_t tstate) {
  return gil.unchanged && tstate != gil.last_holder && tstate != gil.holder;
}

void StackWalker::find_native_id(ThreadStack& out, process::ThreadIds* known_tids) {
  if (config_.layout.thread.native_thread_id || !known_tids || !out.thread_id) return;
  int32_t tid = 0;
  if (memory_.read_value(out.thread_id + kGlibcPthreadTidOffset, tid) &&
      known_tids->contains(tid)) {
    out.native_id = tid;
  }
}

// A thread other than the GIL's last holder (and, 3.8-3.11, its current holder) whose stack was
// read while the GIL stood still, and which still stands still (see compare_gil), has run no
// Python code since: its stack is as read then, and is taken from there without a read. On a
// server, most threads wait; only the one running Python code costs a walk. The stack read
// then came from the interval in which the thread stood still, as the GIL had not changed
// hands since the walk before it either: a stack read before a thread let go of the GIL may be
// older than the moment it let go, and is never kept. Its code objects are the ones cached:
// the thread's frames hold them, so no other object can have taken their addresses. The thread
// state must still hold the same thread and current frame (a new thread in a freed state).
bool StackWalker::reuse_unchanged_stack(uint64_t tstate, const ThreadLinks& links,
                                        const GilState& gil, ThreadStack& out,
                                        process::ThreadIds* known_tids) {
  if (!stood_still(gil, tstate)) return false;
  auto it = held_.find(tstate);
  if (it == held_.end()) return false;
  HeldStack& held = it->second;
  // A thread list read again within one walk (a thread ending) meets the same stacks again.
  if (!held.kept || (held.walk + 1 != stats_.walks && held.walk != stats_.walks) ||
      held.thread_id != out.thread_id || held.frame != links.frame) {
    return false;
  }
  out.frames.clear();
  for (const Frame& f : held.frames) {
    const CodeInfo* code = codes_->held(f.code_addr);
    if (!code) {
      out.frames.clear();
      return false;
    }
    out.frames.push_back(f);
    out.frames.back().code = code;
  }
  if (!config_.layout.thread.native_thread_id && known_tids && held.native_id &&
      known_tids->contains(held.native_id)) {
    out.native_id = held.native_id;
  }
  held.walk = stats_.walks;
  ++stats_.unchanged_stacks;
  return true;
}

void StackWalker::hold_stack(uint64_t tstate, const ThreadLinks& links, const GilState& gil,
                             const ThreadStack& stack) {
  if (!stood_still(gil, tstate) || stack.truncated) {
    // Not erased: a thread that waits now and then keeps its entry's memory.
    if (auto it = held_.find(tstate); it != held_.end()) it->second.kept = false;
    return;
  }
  // Thread states come and go, and many threads' deep stacks would take much memory.
  if (held_.size() >= kMaxHeldStacks || held_frames_ + stack.frames.size() > kMaxHeldFrames) {
    held_.clear();
    held_frames_ = 0;
  }
  HeldStack& held = held_[tstate];
  held.kept = true;
  held.walk = stats_.walks;
  held.thread_id = stack.thread_id;
  held.frame = links.frame;
  held.native_id = stack.native_id;
  const size_t capacity = held.frames.capacity();
  held.frames.assign(stack.frames.begin(), stack.frames.end());
  held_frames_ += held.frames.capacity() - capacity;
}

uint64_t read_current_frame(process::MemoryReader& memory, const Layout& L, uint64_t tstate) {
  uint64_t frame = 0;
  if (L.thread.cframe) {
    uint64_t cframe = 0;
    if (!memory.read_value(tstate + L.thread.cframe, cframe) || !plausible_pointer(cframe) ||
        !memory.read_value(cframe + L.thread.cframe_current_frame, frame))
      return 0;
  } else if (!memory.read_value(tstate + L.thread.frame, frame)) {
    return 0;
  }
  return frame;
}

// The target runs while it is read, and a generator changes its links on every step: resuming
// sets its frame's `previous` (f_back) to the caller, yielding clears it; 3.12+ also link it
// through an entry frame on the C stack, overwritten once it returns. A walk that read the
// thread's current frame just before a yield and the generator's frame just after finds a
// generator with no caller (or a broken link), and would lose every frame beneath it: in a loop
// over a generator, most of the time of the function running the loop. Such a stack cannot
// come from a consistent snapshot, so it is read again, from a fresh copy of the same memory.
// A stack that stays broken (corrupt memory) is kept as read, marked, after a few tries.
//
// 3.8-3.10 first chase the thread's current frame: when a walk is torn and the thread state,
// read again alone, points at another frame, the walk starts again from that one at once,
// without fetching again all the walk read (a deep stack's hundreds of frames take 100 µs and
// more). In a tight recursion the full re-reads kept failing until the thread stood for an
// instant in a shallow, stable stack (the loop between two recursive calls), and the sample
// went there: a recursive evaluator's and a parser's outermost functions read 5-20 % low. A
// chase stays within microseconds of the sample's instant. Each chase is counted as a re-read.
void StackWalker::walk_thread_frames(uint64_t tstate, ThreadStack& out) {
  const Layout& L = config_.layout;
  const bool frame_objects = L.frame_model == FrameModel::kFrameObject;
  uint64_t frame = read_current_frame(memory_, L, tstate);
  // 3.8-3.10: the thread's current frame as read after the prefetch copied the frames: the
  // copy's thread state, made before them (it lies lower in memory), named a newest frame that
  // had returned by the time its copy was made, and its caller was lost with it (a freed
  // frame's f_back is the free list's link). Read after them, it names a frame whose copy is at
  // worst older than its call: such a frame looks finished and is read again alone, and its
  // caller, running since before, is in the copy (see walk_frame_objects). read_last takes it
  // from the prefetch's last range, copied after all the others in the same system call (it
  // was a call of its own every sample: 0.9 of 3.1 calls a sample on the reference workload).
  // Only the thread that holds the GIL runs Python code: the others' frames stay as the copy
  // has them.
  uint64_t now = 0;
  if (frame_objects && (!out.gil_known || out.holds_gil) &&
      memory_.read_last(tstate + L.thread.frame, &now, sizeof now))
    frame = now;
  int chases = 0;
  uint64_t moved_to = 0;
  for (int attempt = 0;; ++attempt) {
    out.frames.clear();
    out.truncated = false;
    uint64_t bottom = 0;
    bool whole = frame_objects ? walk_frame_objects(frame, out)
                               : walk_interpreter_frames(frame, out, bottom) &&
                                     ends_at_thread_root(tstate, frame, bottom);
    // A whole stack of another thread's (see ends_at_own_outermost) is read again in full.
    const bool moved = whole && frame_objects && attempt - chases < config_.max_torn_retries &&
                       !ends_at_own_outermost(tstate, out, moved_to);
    if (whole && !moved) {
      if (!frame_objects) add_returning_frame(tstate, frame, out);
      return;
    }
    if (moved) {
      ++stats_.moved_outermost;
    } else if (frame_objects && chases < kMaxChases &&
               memory_.read_now(tstate + L.thread.frame, &now, sizeof now) && now != frame &&
               plausible_pointer(now)) {
      ++chases;
      ++stats_.torn_retries;
      frame = now;
      continue;
    } else if (attempt - chases >= config_.max_torn_retries) {
      out.torn = out.truncated = true;
      ++stats_.torn_stacks;
      return;
    }
    ++stats_.torn_retries;
    memory_.refresh();
    frame = read_current_frame(memory_, L, tstate);
  }
}

// 3.8-3.10: frames are heap objects shared by all threads (a free list, and each code's spare
// frame), so a frame whose copy was made before its call may show another thread's call that
// ran there then, and lead the walk down that thread's callers: the stack of one thread read
// as another's (seen on the sympy server, 3.10: the main thread's walk led into a new
// thread's start-up, `Event.set` under `Thread._bootstrap`, about once a run). Such a chain
// ends at the other thread's outermost frame. A thread's outermost frame stays the same while
// it runs Python code (its `run`, a script's `<module>`), so a walk that ends elsewhere is
// read again, and the new outermost frame is taken once a second read ends there too (a
// thread that returned to C and called Python anew; a new thread in a freed one's state).
bool StackWalker::ends_at_own_outermost(uint64_t tstate, const ThreadStack& out,
                                        uint64_t& moved_to) {
  if (out.frames.empty() || out.truncated) return true;
  const uint64_t outermost = out.frames.back().frame_addr;
  if (outermost_.size() >= 4096) outermost_.clear();  // thread states come and go
  auto [known, inserted] = outermost_.try_emplace(tstate, outermost);
  if (inserted || known->second == outermost) return true;
  if (outermost == moved_to) {
    known->second = outermost;
    return true;
  }
  moved_to = outermost;
  return false;
}

// 3.11+ keep a thread's frames in its data stack, a list of chunks. The first frame a thread
// pushes onto an empty stack, the only one whose `previous` is NULL (generators aside, which
// the walk already checks), always lands in the same place: the second slot of the root
// chunk (CPython skips the first so that popping never frees that chunk). A walk that ends at
// a NULL `previous` anywhere else read a frame while it was being set up or taken down, and
// lost every caller beneath it; those are often the very functions being timed (a request
// handler below a library's fast-changing calls, entered from C: sorted(key=...), __hash__,
// a cache wrapper). Likewise 3.11 and 3.12 reach the current frame through a _PyCFrame on the
// C stack: read just after that C call returned, its `current_frame` is whatever the C stack
// holds now, NULL as often as not, and the thread looked idle.
// Never a frame's address (frames are 8-byte aligned).
constexpr uint64_t kBrokenBottom = 1;

bool StackWalker::ends_at_thread_root(uint64_t tstate, uint64_t frame, uint64_t bottom) {
  const Layout& L = config_.layout;
  if (frame == 0) {
    if (!L.thread.cframe || !L.thread.root_cframe) return true;  // 3.13+: really no frame
    uint64_t cframe = 0;
    if (!memory_.read_value(tstate + L.thread.cframe, cframe)) return true;
    return cframe == tstate + L.thread.root_cframe;
  }
  if (bottom == 0) return true;  // cut at the depth bound, or no Python frame at all
  const uint64_t slot = first_frame_slot(tstate);
  return slot == 0 || bottom == slot;
}

uint64_t StackWalker::first_frame_slot(uint64_t tstate) {
  const Layout& L = config_.layout;
  if (!L.thread.datastack_chunk) return 0;
  uint64_t chunk = 0;
  if (!memory_.read_value(tstate + L.thread.datastack_chunk, chunk)) return 0;
  // A thread of a deep recursion has many chunks (16 KiB each, most of them). A chunk read
  // while it was freed can lead into a loop (its `previous` reused by the allocator); left to
  // the bound, a loop would cost 100,000 reads, a tenth of a second, as a chain of unreadable
  // frames did (see walk_interpreter_frames). A loop is found at once.
  CycleCheck cycle;
  for (int n = 0; n < 100'000 && plausible_pointer(chunk); ++n) {
    uint64_t previous = 0;
    if (!memory_.read_value(chunk + L.chunk.previous, previous)) return 0;
    if (previous == 0) return chunk + L.chunk.data + sizeof(uint64_t);
    if (cycle.seen(previous)) return 0;
    chunk = previous;
  }
  return 0;
}

const uint8_t* StackWalker::read_frame(uint64_t frame, size_t header, ThreadStack& out) {
  if (plausible_pointer(frame)) {
    scratch_.resize(header);
    if (const uint8_t* bytes = memory_.view_or_read(frame, header, scratch_.data())) return bytes;
  }
  out.truncated = true;
  ++stats_.bad_frames;
  return nullptr;
}

bool StackWalker::walk_frame_objects(uint64_t frame, ThreadStack& out) {
  const Layout& L = config_.layout;
  const auto& F = L.frame;
  size_t header = static_cast<size_t>(
      std::max({F.previous + 8, F.code + 8, F.lasti + 4, F.executing ? F.executing + 1 : 0}));
  bool last_is_generator = false;
  CycleCheck cycle;
  int returned = 0;  // newest frames left out (below)
  while (frame) {
    if (cycle.seen(frame)) {
      out.truncated = true;
      return false;
    }
    if (out.frames.size() >= config_.max_depth) {
      out.truncated = true;
      return true;
    }
    const uint8_t* bytes = read_frame(frame, header, out);
    if (!bytes) return false;
    uint64_t code = field<uint64_t>(bytes, F.code);
    int32_t lasti = field<int32_t>(bytes, F.lasti);
    uint64_t back = field<uint64_t>(bytes, F.previous);
    // Every frame of a thread's chain runs or waits on the call above it. One that does not
    // was freed and perhaps reused while the walk went down the chain: its f_back leads into a
    // stack that is gone (a deep parse under a shallow search, read as one stack). Kept as if
    // running, a newest frame that had just returned read recursive parsers 30 % low.
    // The walk reads the prefetch, copied from the process over tens of microseconds (a deep
    // stack's frames are scattered over the heap): a frame whose copy is older or newer than
    // the link that led to it can look finished while it runs. Look at it again, now: still
    // running, it is read from there (a freed frame on the free list has its f_back
    // overwritten by the list's link, so only a running frame's link can be followed).
    if (F.executing && field<int8_t>(bytes, F.executing) != F.executing_state) {
      fresh_.resize(header);
      if (memory_.read_now(frame, fresh_.data(), header)) {
        bytes = fresh_.data();
        code = field<uint64_t>(bytes, F.code);
        lasti = field<int32_t>(bytes, F.lasti);
        back = field<uint64_t>(bytes, F.previous);
        if (field<int8_t>(bytes, F.executing) == F.executing_state) ++stats_.frames_read_again;
      }
    }
    if (F.executing && field<int8_t>(bytes, F.executing) != F.executing_state) {
      // The newest frame that has just returned is the exception: the thread is in its caller
      // now (a freed frame kept as its code's spare keeps its f_back), and the walk goes on
      // from there. Read again instead, a tight recursion's samples kept landing after it,
      // past its fast-returning frames: the outermost function of a recursive parser read
      // 8-10 % low on 3.8-3.10. One frame only: a second one in a row that no longer runs is
      // most often on the frame free list, whose f_back is the list's link; followed (up to
      // 64), it led through spare frames of finished calls to the loop that made them, a
      // shallow stack the thread was not in (3.9: a fifth of the walks that skipped landed
      // there, against one clean walk in 400), and the parser read 8-11 % low.
      // Past it, a frame that is its code's spare is left out too (see is_zombie_frame).
      if (out.frames.empty() && back != 0 && back != frame &&
          (++returned <= kMaxReturnedFrames ||
           (returned <= kMaxReturnedZombies && is_zombie_frame(code, frame)))) {
        ++stats_.returned_frames;
        frame = back;
        continue;
      }
      out.truncated = true;
      return false;
    }
    const CodeInfo* info = codes_->get_for_frame(code, frame);
    if (!info) {
      out.truncated = true;
      ++stats_.bad_frames;
      return false;
    }
    // 3.10 counts f_lasti in code units; its line table, like lnotab, in bytes.
    int64_t offset = lasti < 0 ? -1
                     : L.line_table == LineTableFormat::kLinetable310
                         ? static_cast<int64_t>(lasti) * 2
                         : lasti;
    out.frames.push_back(Frame{code, info, codes_->line(code, offset), frame});
    ++stats_.frames;
    last_is_generator = info->generator;
    // A self-loop ends here at once; longer cycles are CycleCheck's.
    if (back == frame) {
      out.truncated = true;
      return false;
    }
    frame = back;
  }
  return !last_is_generator;
}

// 3.8-3.10 keep one freed frame per code object for its next call (co_zombieframe), and it
// keeps its f_back: the caller it returned to. Every other freed frame goes on the free list,
// whose link is f_back. A returned frame that is its code's spare, looked at now, so leads to
// the frame that called it, and the walk goes on down to the first one still running. In a
// recursive parser the newest frames are mostly such spares (a leaf call of a function takes
// its spare and gives it back on return), and one left out was not enough: the samples whose
// walk found two or three of them returned were read again, later, and landed in shallower
// moments (3.9, two cores: parse_expression -14.5 % -> -11.5 % over 24-39 runs at 1 kHz).
bool StackWalker::is_zombie_frame(uint64_t code, uint64_t frame) {
  const Layout& L = config_.layout;
  if (!L.frame.executing || !L.code.linetable || !plausible_pointer(code)) return false;
  uint64_t zombie = 0;
  return memory_.read_now(code + L.code.linetable + kZombieAfterLinetable, &zombie,
                          sizeof zombie) &&
         zombie == frame;
}

namespace {

// 3.11+: the bytes of an interpreter frame a walk reads (its links, code, instruction, owner).
size_t interpreter_frame_header(const Layout::Frame& F) {
  return static_cast<size_t>(
      std::max({F.previous + 8, F.code + 8, F.lasti + 8, F.owner ? F.owner + 1 : 0}));
}

// 3.11+: a frame's instruction pointer as an offset in code units into its code, -1 when it
// does not point inside the code object.
int64_t instruction_offset(const Layout& L, uint64_t code, uint64_t instr) {
  const uint64_t first_instr = code + L.code.code_adaptive;
  const int64_t offset =
      instr >= first_instr ? static_cast<int64_t>((instr - first_instr) / 2) : -1;
  return offset > (1 << 24) ? -1 : offset;
}

}  // namespace

// A returning function is unlinked from the thread's chain before its frame is cleared (CPython's
// RETURN_VALUE sets the current frame to the caller, then clears and pops the frame, GH-99729):
// while its locals are freed, which runs their destructors (a request's documents, a parser's
// trees: often milliseconds), the thread's current frame is already the caller's, and a
// sample read from it alone puts that time in the caller's name, not the function's. The
// function's own timing (its caller's, around the call) includes it: a handler freeing a large
// result read 3-6 % low on 3.12. The frame is still on the data stack then, right above the
// newest frame there, whose size its code gives (co_framesize): the data stack's top lies past
// that frame's end only while a frame above it is alive. Such a frame that returns to the
// thread's current frame is the function returning (or one being called, not yet linked: the
// callee's time too), and is put first in the stack.
void StackWalker::add_returning_frame(uint64_t tstate, uint64_t current, ThreadStack& out) {
  const Layout& L = config_.layout;
  const auto& F = L.frame;
  if (!L.thread.datastack_top || !newest_owned_ || !newest_owned_code_ ||
      newest_owned_code_->framesize == 0 || out.frames.size() >= config_.max_depth) {
    return;
  }
  uint64_t top = 0;
  if (!memory_.read_value(tstate + L.thread.datastack_top, top)) return;
  const uint64_t above = newest_owned_ + uint64_t{newest_owned_code_->framesize} * 8;
  // A frame header must fit below the top (one in another chunk is not looked for).
  if (top < above + F.size || top - above > (uint64_t{1} << 24)) return;
  const size_t header = interpreter_frame_header(F);
  scratch_.resize(header);
  const uint8_t* bytes = memory_.view_or_read(above, header, scratch_.data());
  if (!bytes || field<uint64_t>(bytes, F.previous) != current) return;
  if (F.owner && field<int8_t>(bytes, F.owner) != 0) return;  // FRAME_OWNED_BY_THREAD
  uint64_t code = field<uint64_t>(bytes, F.code);
  if (F.code_is_tagged) code &= ~uint64_t{3};
  const uint64_t instr = field<uint64_t>(bytes, F.lasti);
  const CodeInfo* info = codes_->get(code);
  if (!info) return;
  out.frames.insert(
      out.frames.begin(),
      Frame{code, info, codes_->line(code, instruction_offset(L, code, instr)), above});
  ++stats_.frames;
  ++stats_.returning_frames;
}

bool StackWalker::walk_interpreter_frames(uint64_t frame, ThreadStack& out, uint64_t& bottom) {
  const Layout& L = config_.layout;
  const auto& F = L.frame;
  const size_t header = interpreter_frame_header(F);
  size_t visited = 0;
  const size_t max_visits = config_.max_depth * 2 + 16;  // shim frames do not count as depth
  // 3.12+ begin every thread's stack with a shim frame (the C entry frame, or 3.14's base
  // frame): a chain that ends anywhere else was read while it changed.
  const bool ends_at_shim = F.owner_cstack >= 0 || F.owner_interpreter >= 0;
  bool last_is_generator = false, last_is_shim = false;
  int unreadable_in_row = 0;  // frames whose code could not be read, one after another
  newest_owned_ = 0;
  newest_owned_code_ = nullptr;
  CycleCheck cycle;
  while (frame) {
    if (cycle.seen(frame)) {
      out.truncated = true;
      return false;
    }
    if (out.frames.size() >= config_.max_depth || ++visited > max_visits) {
      out.truncated = true;
      bottom = 0;  // cut short on purpose: not where the thread's stack begins
      return true;
    }
    const uint8_t* bytes = read_frame(frame, header, out);
    if (!bytes) return false;
    uint64_t code = field<uint64_t>(bytes, F.code);
    if (F.code_is_tagged) code &= ~uint64_t{3};
    uint64_t instr = field<uint64_t>(bytes, F.lasti);
    uint64_t previous = field<uint64_t>(bytes, F.previous);
    int owner = F.owner ? static_cast<int>(field<int8_t>(bytes, F.owner)) : 0;
    bool shim = (F.owner_cstack >= 0 && owner == F.owner_cstack) ||
                (F.owner_interpreter >= 0 && owner == F.owner_interpreter);
    const CodeInfo* info = shim ? nullptr : codes_->get(code);
    if (!shim && !info) {
      // A frame caught while being set up or torn down: skip it but keep walking, so the
      // callers above it (often the chosen functions) still count. Many in a row are no
      // longer frames: a thread state read as its thread ended led into freed memory, whose
      // allocator links made a chain of 130,000 "frames", a third of a second of reads
      // (within the visit bound, and no cycle). The sample that made them stood for that
      // time with what it read at its end: every request handler running meanwhile went
      // unseen (a threaded sympy server's handler 9-10 % low on 3.12 at 10 kHz, one run in
      // three). Such a chain is a torn read.
      ++stats_.bad_frames;
      if (++unreadable_in_row > kMaxUnreadableFramesInRow) {
        out.truncated = true;
        return false;
      }
    } else if (!shim) {
      out.frames.push_back(
          Frame{code, info, codes_->line(code, instruction_offset(L, code, instr)), frame});
      ++stats_.frames;
      if (!newest_owned_ && (!F.owner || owner == 0)) {  // FRAME_OWNED_BY_THREAD
        newest_owned_ = frame;
        newest_owned_code_ = info;
      }
    }
    if (shim || info) unreadable_in_row = 0;
    if (!shim) {
      last_is_generator = F.owner_generator >= 0 && owner == F.owner_generator;
      // A chain that ends on a frame that is not one (its previous read as NULL from memory
      // being reused) did not reach the thread's first frame: kBrokenBottom is no slot.
      bottom = info ? frame : kBrokenBottom;
    }
    last_is_shim = shim;
    if (previous == frame) {
      out.truncated = true;
      return false;
    }
    frame = previous;
  }
  if (ends_at_shim && visited > 0 && !last_is_shim) return false;
  return !last_is_generator;
}

}  // namespace spyglass::cpython
