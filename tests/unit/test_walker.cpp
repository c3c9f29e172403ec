// The stack walker on synthetic memory images built from the real layouts: a thread running a
// generator inside its caller, read consistently or caught between a yield and a resume.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "cpython/layout.h"
#include "cpython/walker.h"
#include "process/memory.h"

namespace spyglass::cpython {
namespace {

constexpr uint64_t kBase = 0x7f0000000000;

// A heap of objects laid out one after another at kBase, written field by field.
class Image {
 public:
  uint64_t allocate(size_t size) {
    uint64_t addr = kBase + bytes_.size();
    bytes_.resize(bytes_.size() + ((size + 15) & ~size_t{15}));
    return addr;
  }
  template <typename T>
  void put(uint64_t addr, uint64_t offset, T value) {
    std::memcpy(bytes_.data() + (addr - kBase) + offset, &value, sizeof(T));
  }
  // A compact ASCII str.
  uint64_t str(const Layout& L, const std::string& text) {
    uint64_t addr = allocate(L.unicode.ascii_data + text.size() + 1);
    put<uint32_t>(addr, L.unicode.state, (1u << 2) | (1u << 5) | (1u << 6));
    put<int64_t>(addr, L.unicode.length, static_cast<int64_t>(text.size()));
    std::memcpy(bytes_.data() + (addr - kBase) + L.unicode.ascii_data, text.data(), text.size());
    return addr;
  }
  uint64_t code(const Layout& L, const std::string& name, int firstlineno, bool generator) {
    uint64_t addr = allocate(L.code.size + 64);
    put<uint64_t>(addr, L.code.filename, str(L, "app.py"));
    put<uint64_t>(addr, L.code.name, str(L, name));
    if (L.code.qualname) put<uint64_t>(addr, L.code.qualname, str(L, name));
    put<int32_t>(addr, L.code.firstlineno, firstlineno);
    if (L.code.flags && generator) put<uint32_t>(addr, L.code.flags, 0x20);  // CO_GENERATOR
    return addr;
  }
  process::SnapshotMemory snapshot() const {
    process::SnapshotMemory memory;
    memory.add_region(kBase, bytes_);
    return memory;
  }

 private:
  std::vector<uint8_t> bytes_;
};

// What the walker reads: the runtime, one interpreter, one thread running `numbers` (a
// generator) called from `consume`, called from the thread's first frame.
struct Scene {
  Layout layout;
  uint64_t runtime = 0;
  uint64_t method_frame = 0;  // `consume`'s frame
  uint64_t tstate = 0, method_code = 0, generator_frame = 0;
  process::SnapshotMemory whole, torn;  // consistent, and caught mid-change (see Tear)
};

// How the torn image differs from the whole one.
enum class Tear {
  kGeneratorUnlinked,  // the generator's caller link cleared, as a yield leaves it
  kCycle,              // the base frame's link pointing back at its callee: a loop
  // 3.11+: `consume`'s caller link read as NULL, as a frame being set up or taken down has
  // it: the chain seems to end there, above the thread's first frame.
  kCallerUnlinked,
  // 3.11-3.12: the C frame read after its C call returned: its current frame is NULL.
  kStaleCFrame,
  // 3.11+: the current frame read after it was popped and its memory reused: no code object,
  // no caller. Alone, it looked like a whole, empty stack (the thread idle).
  kReusedFrame,
  // 3.11+: the current frame read after its thread ended: freed memory whose allocator links
  // make a long chain of "frames" with no code object (kFreedChainLength of them).
  kFreedMemoryChain,
  // 3.8-3.10: `consume` returned and its frame was freed (f_back and f_code kept) while the
  // walk went down the chain: a frame that no longer runs.
  kFreedFrame,
  // 3.8-3.10: `consume` is a method (`self` first) of class Parser; the torn image has its
  // frame's locals cleared, as a frame that is returning leaves them, so `self` is NULL.
  kSelfCleared,
  // 3.8-3.10: as kSelfCleared's whole image, but in the torn one `consume`'s frame has
  // returned and been reused by `numbers`, whose `self` is an instance of class Other.
  kFrameReused,
  // 3.8-3.10: the newest frame (`numbers`) has returned (f_back kept): the thread is in
  // `consume` now.
  kNewestReturned,
  // 3.8-3.10: the thread's current frame read in the prefetch was freed on the free list
  // (its f_back overwritten: NULL at the list's end) by the time its copy was made; the
  // thread runs `numbers` in a frame elsewhere.
  kCurrentFrameFreed,
  // 3.8-3.10: `numbers` and `consume` both read no longer running: the second is most likely
  // on the frame free list, its f_back the list's link.
  kTwoReturned,
  // 3.8-3.10: the same, but `consume`'s frame is its code's spare (co_zombieframe), which
  // keeps its f_back: the caller it returned to.
  kTwoReturnedZombie,
  // 3.8-3.10: `consume`'s frame copied while another thread's call ran there: it leads to that
  // thread's outermost frame (`run`), running too, not to this thread's `<module>`.
  kOtherThreadsCaller,
};

constexpr int kFreedChainLength = 10'000;
constexpr uint64_t kNotACode = 0x5a5a5a5a5a5a5a58;

Scene make_scene(int minor, Tear tear = Tear::kGeneratorUnlinked) {
  Scene scene;
  scene.layout = *builtin_layout(PythonVersion{3, minor, 0});
  const Layout& L = scene.layout;
  Image image;
  scene.runtime = image.allocate(L.runtime.size);
  uint64_t interp = image.allocate(L.interp.size);
  uint64_t tstate = image.allocate(L.thread.size);
  image.put<uint64_t>(scene.runtime, L.runtime.interpreters_head, interp);
  image.put<uint64_t>(interp, L.interp.threads_head, tstate);
  image.put<uint64_t>(tstate, L.thread.interp, interp);
  image.put<uint64_t>(tstate, L.thread.thread_id, 0x7f00aa000000);
  // The thread holds the GIL (3.8-3.10 read its current frame live only then).
  if (L.runtime.gilstate_tstate_current) {
    image.put<uint64_t>(scene.runtime, L.runtime.gilstate_tstate_current, tstate);
    if (L.runtime.ceval_gil_locked)
      image.put<int32_t>(scene.runtime, L.runtime.ceval_gil_locked, 1);
  }

  uint64_t numbers = image.code(L, "numbers", 10, true);
  uint64_t consume = image.code(L, "consume", 20, false);
  uint64_t module = image.code(L, "<module>", 1, false);
  const bool frame_objects = L.frame_model == FrameModel::kFrameObject;
  auto frame = [&](uint64_t code, uint64_t previous, int owner, uint64_t at = 0) {
    uint64_t addr = at ? at : image.allocate(L.frame.size + 64);
    image.put<uint64_t>(addr, L.frame.code, code);
    image.put<uint64_t>(addr, L.frame.previous, previous);
    if (frame_objects) {
      image.put<int32_t>(addr, L.frame.lasti, -1);
      if (L.frame.executing) {
        image.put<int8_t>(addr, L.frame.executing, static_cast<int8_t>(L.frame.executing_state));
      }
    } else {
      image.put<int8_t>(addr, L.frame.owner, static_cast<int8_t>(owner));
    }
    return addr;
  };
  // 3.12+ start every thread's chain with a C entry frame (FRAME_OWNED_BY_CSTACK).
  uint64_t entry = L.frame.owner_cstack >= 0 ? frame(0, 0, L.frame.owner_cstack) : 0;
  // 3.11+: the thread's first frame sits in the second slot of its root data-stack chunk.
  uint64_t first_slot = 0;
  if (L.thread.datastack_chunk) {
    uint64_t chunk = image.allocate(L.chunk.data + 8 + L.frame.size + 64);
    image.put<uint64_t>(tstate, L.thread.datastack_chunk, chunk);
    first_slot = chunk + L.chunk.data + 8;
  }
  uint64_t base = frame(module, entry, 0, first_slot);
  uint64_t caller = frame(consume, base, 0);
  uint64_t generator = frame(numbers, caller, frame_objects ? 0 : L.frame.owner_generator);
  uint64_t cframe = 0;
  if (L.thread.cframe) {
    cframe = image.allocate(64);
    image.put<uint64_t>(tstate, L.thread.cframe, cframe);
    image.put<uint64_t>(cframe, L.thread.cframe_current_frame, generator);
  } else {
    image.put<uint64_t>(tstate, L.thread.frame, generator);
  }
  scene.method_frame = caller;
  scene.tstate = tstate;
  scene.method_code = consume;
  scene.generator_frame = generator;
  if (tear == Tear::kSelfCleared || tear == Tear::kFrameReused) {
    uint64_t varnames = image.allocate(L.tuple_items + 8);
    image.put<uint64_t>(varnames, L.tuple_items, image.str(L, "self"));
    image.put<int32_t>(consume, L.code.argcount, 1);
    image.put<uint64_t>(consume, L.code.varnames, varnames);
    uint64_t type = image.allocate(L.type_name + 8 + 16);
    image.put<uint64_t>(type, L.type_name, type + L.type_name + 8);
    uint64_t tp_name = 0;  // "Parser\0", the C string tp_name points at
    std::memcpy(&tp_name, "Parser", 7);
    image.put<uint64_t>(type, L.type_name + 8, tp_name);
    uint64_t self = image.allocate(32);
    image.put<uint64_t>(self, L.ob_type, type);
    image.put<uint64_t>(caller, L.frame.localsplus, self);
  }
  uint64_t other = 0;  // 3.8-3.10, kFrameReused: an instance of class Other
  if (tear == Tear::kFrameReused) {
    uint64_t type = image.allocate(L.type_name + 8 + 16);
    image.put<uint64_t>(type, L.type_name, type + L.type_name + 8);
    uint64_t tp_name = 0;
    std::memcpy(&tp_name, "Other", 6);
    image.put<uint64_t>(type, L.type_name + 8, tp_name);
    other = image.allocate(32);
    image.put<uint64_t>(other, L.ob_type, type);
  }
  uint64_t freed = 0;
  if (tear == Tear::kCurrentFrameFreed) {
    freed = frame(numbers, 0, 0);
    image.put<int8_t>(freed, L.frame.executing, static_cast<int8_t>(L.frame.executing_state + 1));
  }
  uint64_t other_thread_base = 0;  // kOtherThreadsCaller: another thread's outermost frame
  if (tear == Tear::kOtherThreadsCaller) {
    other_thread_base = frame(image.code(L, "run", 5, false), 0, 0);
  }
  uint64_t chain = 0;  // kFreedMemoryChain's first link
  for (int i = 0; tear == Tear::kFreedMemoryChain && i < kFreedChainLength; ++i) {
    chain = frame(kNotACode, chain, 0);
  }
  scene.whole = image.snapshot();
  if (tear == Tear::kFreedMemoryChain) {
    image.put<uint64_t>(generator, L.frame.code, kNotACode);
    image.put<uint64_t>(generator, L.frame.previous, chain);
    image.put<int8_t>(generator, L.frame.owner, 0);
  } else if (tear == Tear::kCurrentFrameFreed) {
    image.put<uint64_t>(tstate, L.thread.frame, freed);
  } else if (tear == Tear::kOtherThreadsCaller) {
    image.put<uint64_t>(caller, L.frame.previous, other_thread_base);
  } else if (tear == Tear::kSelfCleared) {
    image.put<uint64_t>(caller, L.frame.localsplus, 0);
  } else if (tear == Tear::kFrameReused) {
    image.put<uint64_t>(caller, L.frame.code, numbers);
    image.put<uint64_t>(caller, L.frame.localsplus, other);
  } else if (tear == Tear::kCycle) {
    image.put<uint64_t>(base, L.frame.previous, caller);
  } else if (tear == Tear::kCallerUnlinked) {
    image.put<uint64_t>(caller, L.frame.previous, 0);
  } else if (tear == Tear::kStaleCFrame) {
    image.put<uint64_t>(cframe, L.thread.cframe_current_frame, 0);
  } else if (tear == Tear::kNewestReturned) {
    image.put<int8_t>(generator, L.frame.executing,
                      static_cast<int8_t>(L.frame.executing_state + 1));
  } else if (tear == Tear::kTwoReturned || tear == Tear::kTwoReturnedZombie) {
    if (tear == Tear::kTwoReturnedZombie) {
      image.put<uint64_t>(consume, L.code.linetable + 8, caller);  // co_zombieframe
    }
    image.put<int8_t>(generator, L.frame.executing,
                      static_cast<int8_t>(L.frame.executing_state + 1));
    image.put<int8_t>(caller, L.frame.executing, static_cast<int8_t>(L.frame.executing_state + 1));
  } else if (tear == Tear::kFreedFrame) {
    image.put<int8_t>(caller, L.frame.executing, static_cast<int8_t>(L.frame.executing_state + 1));
  } else if (tear == Tear::kReusedFrame) {
    image.put<uint64_t>(generator, L.frame.code, kNotACode);
    image.put<uint64_t>(generator, L.frame.previous, 0);
    image.put<int8_t>(generator, L.frame.owner, 0);
  } else {
    image.put<uint64_t>(generator, L.frame.previous, 0);  // what a yield leaves behind
  }
  scene.torn = image.snapshot();
  return scene;
}

// Serves the torn image until it has been refreshed `torn_refreshes` times, then the whole one:
// the target resuming its generator between two reads.
class TearingMemory : public process::MemoryReader {
 public:
  TearingMemory(Scene& scene, int torn_refreshes) : scene_(scene), left_(torn_refreshes) {}
  bool read(process::RemoteAddr addr, void* out, size_t size) override {
    ++reads;
    return (left_ > 0 ? scene_.torn : scene_.whole).read(addr, out, size);
  }
  void refresh() override {
    ++refreshes;
    --left_;
  }
  // The torn image from now on, until refreshed `refreshes` times.
  void tear_for(int refreshes) { left_ = refreshes; }
  int refreshes = 0;
  int reads = 0;

 private:
  Scene& scene_;
  int left_;
};

std::vector<std::string> names(const ThreadStack& stack) {
  std::vector<std::string> out;
  for (const auto& f : stack.frames) out.push_back(f.code->name);
  return out;
}

class WalkerTornReads : public ::testing::TestWithParam<int> {};

// One walk of a scene whose torn image is served `torn_refreshes` times (then the whole one).
struct OneWalk {
  OneWalk(int minor, Tear tear, int torn_refreshes)
      : scene(make_scene(minor, tear)),
        memory(scene, torn_refreshes),
        walker(memory, WalkerConfig{scene.layout, scene.runtime}) {
    EXPECT_TRUE(walker.walk(threads));
  }
  Scene scene;
  TearingMemory memory;
  StackWalker walker;
  std::vector<ThreadStack> threads;
};

// The torn image once, then the whole one: the walk reads again and keeps the whole stack.
void expect_whole_after_one_reread(int minor, Tear tear, bool check_not_truncated) {
  OneWalk walk(minor, tear, 1);
  ASSERT_EQ(walk.threads.size(), 1u);
  EXPECT_EQ(names(walk.threads[0]), (std::vector<std::string>{"numbers", "consume", "<module>"}));
  if (check_not_truncated) {
    EXPECT_FALSE(walk.threads[0].truncated);
  }
  EXPECT_EQ(walk.walker.stats().torn_retries, 1u);
}

TEST_P(WalkerTornReads, ConsistentStackIsReadOnce) {
  OneWalk walk(GetParam(), Tear::kGeneratorUnlinked, 0);
  ASSERT_EQ(walk.threads.size(), 1u);
  EXPECT_EQ(names(walk.threads[0]), (std::vector<std::string>{"numbers", "consume", "<module>"}));
  EXPECT_FALSE(walk.threads[0].truncated);
  EXPECT_EQ(walk.memory.refreshes, 0);
  EXPECT_EQ(walk.walker.stats().torn_retries, 0u);
}

TEST_P(WalkerTornReads, GeneratorCaughtMidYieldIsReadAgain) {
  OneWalk walk(GetParam(), Tear::kGeneratorUnlinked, 2);
  ASSERT_EQ(walk.threads.size(), 1u);
  EXPECT_EQ(names(walk.threads[0]), (std::vector<std::string>{"numbers", "consume", "<module>"}));
  EXPECT_FALSE(walk.threads[0].truncated);
  EXPECT_FALSE(walk.threads[0].torn);
  EXPECT_EQ(walk.memory.refreshes, 2);
  EXPECT_EQ(walk.walker.stats().torn_retries, 2u);
  EXPECT_EQ(walk.walker.stats().torn_stacks, 0u);
}

TEST_P(WalkerTornReads, RetriesAreBoundedAndTheTornStackIsMarked) {
  Scene scene = make_scene(GetParam());
  TearingMemory memory(scene, 1000);
  WalkerConfig config{scene.layout, scene.runtime};
  config.max_torn_retries = 3;
  StackWalker walker(memory, config);
  std::vector<ThreadStack> threads;
  ASSERT_TRUE(walker.walk(threads));
  ASSERT_EQ(threads.size(), 1u);
  EXPECT_EQ(names(threads[0]), (std::vector<std::string>{"numbers"}));
  EXPECT_TRUE(threads[0].torn);
  EXPECT_TRUE(threads[0].truncated);
  EXPECT_EQ(memory.refreshes, 3);
  EXPECT_EQ(walker.stats().torn_stacks, 1u);
}

// A chain that loops was read while it changed: it is read again, never walked to max_depth
// (which kept a 100,000-frame garbage stack and megabytes with it).
TEST_P(WalkerTornReads, CycleIsReadAgain) {
  expect_whole_after_one_reread(GetParam(), Tear::kCycle, true);
}

TEST_P(WalkerTornReads, CycleThatStaysIsCutShort) {
  OneWalk walk(GetParam(), Tear::kCycle, 1000);
  ASSERT_EQ(walk.threads.size(), 1u);
  EXPECT_TRUE(walk.threads[0].torn);
  EXPECT_LT(walk.threads[0].frames.size(), 16u);  // a few laps at most, not max_depth
  EXPECT_EQ(walk.walker.stats().torn_stacks, 1u);
}

// One version per frame model and thread-state shape: frame objects (3.8-3.10), frames
// reached through the C frame (3.11, 3.12). 3.13+ take their layout from the target.
// 3.12+: a chain that ends without the entry frame was read while it changed (here: the base
// frame's link read as garbage pointing at unreadable memory, then fixed on the next read).
TEST(WalkerTornReads312, ChainNotEndingAtEntryFrameIsReadAgain) {
  Scene scene = make_scene(12);
  const Layout& L = scene.layout;
  // Cut the chain under `consume` in the torn image: its caller link points nowhere readable.
  std::vector<ThreadStack> threads;
  {
    TearingMemory memory(scene, 0);
    StackWalker walker(memory, WalkerConfig{L, scene.runtime});
    ASSERT_TRUE(walker.walk(threads));
  }
  // Find `consume`'s frame through the whole image and break its link in the torn one.
  process::SnapshotMemory broken = scene.whole;
  uint64_t cframe = 0, generator = 0, caller = 0;
  ASSERT_TRUE(scene.whole.read_value(threads[0].tstate_addr + L.thread.cframe, cframe));
  ASSERT_TRUE(scene.whole.read_value(cframe + L.thread.cframe_current_frame, generator));
  ASSERT_TRUE(scene.whole.read_value(generator + L.frame.previous, caller));
  uint64_t nowhere = 0x10000;
  std::vector<uint8_t> link(8);
  std::memcpy(link.data(), &nowhere, 8);
  broken.add_region(caller + L.frame.previous, link);
  scene.torn = broken;

  TearingMemory memory(scene, 1);
  StackWalker walker(memory, WalkerConfig{L, scene.runtime});
  ASSERT_TRUE(walker.walk(threads));
  EXPECT_EQ(names(threads[0]), (std::vector<std::string>{"numbers", "consume", "<module>"}));
  EXPECT_FALSE(threads[0].truncated);
  EXPECT_EQ(walker.stats().torn_retries, 1u);
}

// 3.11+: a chain that ends above the thread's first frame lost its callers (often the timed
// function): read again. 3.8-3.10 frame objects keep their callers alive, and have no such
// slot to check.
class WalkerChainEnd : public ::testing::TestWithParam<int> {};

TEST_P(WalkerChainEnd, ChainEndingAboveTheFirstFrameIsReadAgain) {
  expect_whole_after_one_reread(GetParam(), Tear::kCallerUnlinked, true);
}

TEST_P(WalkerChainEnd, StaleCFrameIsReadAgainNotAnIdleThread) {
  expect_whole_after_one_reread(GetParam(), Tear::kStaleCFrame, false);
}

TEST_P(WalkerChainEnd, ReusedCurrentFrameIsReadAgainNotAnEmptyStack) {
  expect_whole_after_one_reread(GetParam(), Tear::kReusedFrame, false);
}

// A chain of unreadable frames is not followed to the visit bound: it is freed memory. Followed,
// a threaded server's ended thread cost 130,000 reads, a third of a second, in one sample.
TEST_P(WalkerChainEnd, ChainThroughFreedMemoryIsReadAgainAtOnce) {
  OneWalk walk(GetParam(), Tear::kFreedMemoryChain, 1);
  ASSERT_EQ(walk.threads.size(), 1u);
  EXPECT_EQ(names(walk.threads[0]), (std::vector<std::string>{"numbers", "consume", "<module>"}));
  EXPECT_EQ(walk.walker.stats().torn_retries, 1u);
  EXPECT_LT(walk.memory.reads, 200);  // a whole walk of the scene makes a few dozen
}

// 3.8-3.10 keep a freed frame's f_back and f_code: only its running state tells it apart.
class WalkerFreedFrame : public ::testing::TestWithParam<int> {};

TEST_P(WalkerFreedFrame, ChainThroughAFreedFrameIsReadAgain) {
  expect_whole_after_one_reread(GetParam(), Tear::kFreedFrame, true);
}

// A method seen first in a frame whose `self` is already cleared: the walk is read again, so
// that the method is named with its class (once named without, it would stay so for the run:
// CI read Worker.process as "no data" on 3.8 and 3.10).
TEST_P(WalkerFreedFrame, MethodWithItsSelfClearedIsReadAgainAndNamedWithItsClass) {
  OneWalk walk(GetParam(), Tear::kSelfCleared, 1);
  ASSERT_EQ(walk.threads.size(), 1u);
  ASSERT_EQ(walk.threads[0].frames.size(), 3u);
  EXPECT_EQ(walk.threads[0].frames[1].code->qualname, "Parser.consume");
  EXPECT_EQ(walk.walker.stats().torn_retries, 1u);
}

// The process moves on between the walk's read of a frame's code and the read of its `self`:
// the frame returned and another method's call reused it. The class is not taken from the
// other call's `self` (CI named Cart.total "Worker.total" on 3.8): the walk is read again.
class ReusedWhileReadMemory : public process::MemoryReader {
 public:
  explicit ReusedWhileReadMemory(Scene& scene) : scene_(scene) {}
  bool read(process::RemoteAddr addr, void* out, size_t size) override {
    // The first look at the frame's first local finds the frame reused, until a re-read.
    if (!reused_ && !was_reused_ && addr == scene_.method_frame + scene_.layout.frame.localsplus)
      reused_ = was_reused_ = true;
    return (reused_ ? scene_.torn : scene_.whole).read(addr, out, size);
  }
  void refresh() override { reused_ = false; }

 private:
  Scene& scene_;
  bool reused_ = false, was_reused_ = false;
};

TEST_P(WalkerFreedFrame, MethodFrameReusedWhileItsClassIsReadIsReadAgain) {
  Scene scene = make_scene(GetParam(), Tear::kFrameReused);
  ReusedWhileReadMemory memory(scene);
  StackWalker walker(memory, WalkerConfig{scene.layout, scene.runtime});
  std::vector<ThreadStack> threads;
  ASSERT_TRUE(walker.walk(threads));
  ASSERT_EQ(threads.size(), 1u);
  ASSERT_EQ(threads[0].frames.size(), 3u);
  EXPECT_EQ(threads[0].frames[1].code->qualname, "Parser.consume");
  EXPECT_EQ(walker.stats().torn_retries, 1u);
}

// A newest frame that has just returned is left out, and counted: the stack is its caller's,
// read at once (read again instead, a recursive parser's samples kept landing past its fast
// returns: its outermost function 8-10 % low).
TEST_P(WalkerFreedFrame, ReturnedNewestFrameIsLeftOutAndTheCallerRead) {
  OneWalk walk(GetParam(), Tear::kNewestReturned, 100);  // torn for good: it stays returned
  ASSERT_EQ(walk.threads.size(), 1u);
  EXPECT_EQ(names(walk.threads[0]), (std::vector<std::string>{"consume", "<module>"}));
  EXPECT_FALSE(walk.threads[0].truncated);
  EXPECT_EQ(walk.walker.stats().torn_retries, 0u);
  EXPECT_EQ(walk.walker.stats().returned_frames, 1u);
}

// Only one returned frame is left out: past a second one, the links are the free list's, and
// led to shallow stacks the thread was not in. The walk is read again.
TEST_P(WalkerFreedFrame, TwoReturnedFramesInARowAreReadAgain) {
  expect_whole_after_one_reread(GetParam(), Tear::kTwoReturned, true);
}

// Past the first, a returned frame that is its code's spare is left out too: its f_back is
// the caller it returned to, and the walk goes on down to the first frame still running, at
// once (read again instead, a recursive parser's samples kept landing in shallower moments).
TEST_P(WalkerFreedFrame, ReturnedSpareFramesAreLeftOutAndTheRunningCallerRead) {
  OneWalk walk(GetParam(), Tear::kTwoReturnedZombie, 100);  // torn for good
  ASSERT_EQ(walk.threads.size(), 1u);
  EXPECT_EQ(names(walk.threads[0]), (std::vector<std::string>{"<module>"}));
  EXPECT_FALSE(walk.threads[0].truncated);
  EXPECT_EQ(walk.walker.stats().torn_retries, 0u);
  EXPECT_EQ(walk.walker.stats().returned_frames, 2u);
}

// The walk reads a prefetch: copies of the target's memory made over tens of microseconds
// while it runs, some older and some newer than the links that lead to them. Only the live
// process, read again for the one value out of step, tells what runs now.
class StaleCopyMemory : public process::MemoryReader {
 public:
  explicit StaleCopyMemory(Scene& scene) : scene_(scene) {}
  bool read(process::RemoteAddr addr, void* out, size_t size) override {
    return scene_.torn.read(addr, out, size);  // the copy: a refresh() brings no newer one
  }
  bool read_now(process::RemoteAddr addr, void* out, size_t size) override {
    if (stale_reads_now > 0) {  // the process caught, too, before it moved on
      --stale_reads_now;
      return scene_.torn.read(addr, out, size);
    }
    return scene_.whole.read(addr, out, size);
  }
  void refresh() override { ++refreshes; }
  int refreshes = 0;
  int stale_reads_now = 0;

 private:
  Scene& scene_;
};

struct StaleWalk {
  StaleWalk(int minor, Tear tear, int stale_reads_now = 0)
      : scene(make_scene(minor, tear)),
        memory(scene),
        walker(memory, WalkerConfig{scene.layout, scene.runtime}) {
    memory.stale_reads_now = stale_reads_now;
    EXPECT_TRUE(walker.walk(threads));
  }
  Scene scene;
  StaleCopyMemory memory;
  StackWalker walker;
  std::vector<ThreadStack> threads;
};

// A frame whose copy shows it finished while its callee's link says it runs is looked at
// again in the live process, where it runs: the stack is whole at once, with no re-read (a
// re-read of a deep recursion's scattered frames takes 100 µs and more, and kept landing in
// what ran next: a recursive parser's outermost function read 12-20 % low on 3.9).
TEST_P(WalkerFreedFrame, FrameCopiedFinishedButRunningIsReadAgainAloneNow) {
  StaleWalk walk(GetParam(), Tear::kFreedFrame);
  ASSERT_EQ(walk.threads.size(), 1u);
  EXPECT_EQ(names(walk.threads[0]), (std::vector<std::string>{"numbers", "consume", "<module>"}));
  EXPECT_FALSE(walk.threads[0].truncated);
  EXPECT_EQ(walk.walker.stats().torn_retries, 0u);
  EXPECT_EQ(walk.walker.stats().frames_read_again, 1u);
  EXPECT_EQ(walk.memory.refreshes, 0);
}

// The thread's current frame is read from the live process, after the prefetch copied the
// frames: the copy's thread state names a frame freed since, with no caller, the live one the
// frame the thread runs, whose caller the copy holds. Whole at once, no re-read.
TEST_P(WalkerFreedFrame, CurrentFrameIsReadFromTheLiveProcess) {
  StaleWalk walk(GetParam(), Tear::kCurrentFrameFreed);
  ASSERT_EQ(walk.threads.size(), 1u);
  EXPECT_EQ(names(walk.threads[0]), (std::vector<std::string>{"numbers", "consume", "<module>"}));
  EXPECT_FALSE(walk.threads[0].truncated);
  EXPECT_EQ(walk.walker.stats().torn_retries, 0u);
  EXPECT_EQ(walk.memory.refreshes, 0);
}

// A thread that does not hold the GIL runs no Python code: its stack is read from the copy
// alone, with no system call for its current frame (here, the copy's stale one: torn).
TEST_P(WalkerFreedFrame, ThreadWithoutTheGilIsReadFromTheCopy) {
  Scene scene = make_scene(GetParam(), Tear::kCurrentFrameFreed);
  const Layout& L = scene.layout;
  if (!L.runtime.gilstate_tstate_current) GTEST_SKIP() << "no GIL holder in the runtime";
  uint64_t none = 0;
  for (auto* image : {&scene.whole, &scene.torn}) {
    image->add_region(scene.runtime + L.runtime.gilstate_tstate_current,
                      std::vector<uint8_t>(reinterpret_cast<uint8_t*>(&none),
                                           reinterpret_cast<uint8_t*>(&none) + 8));
  }
  StaleCopyMemory memory(scene);
  memory.stale_reads_now = 1;  // the frame's own live read: still freed
  StackWalker walker(memory, WalkerConfig{scene.layout, scene.runtime});
  std::vector<ThreadStack> threads;
  EXPECT_TRUE(walker.walk(threads));
  ASSERT_EQ(threads.size(), 1u);
  EXPECT_FALSE(threads[0].holds_gil);
  EXPECT_EQ(walker.stats().torn_retries, 1u);  // the copy's frame was freed: chased
}

// The live current frame, too, is a freed frame with no caller (the thread returned from it
// between the two reads): the walk is torn, and starts again at once from the thread's current
// frame read anew (counted as a re-read), not from a whole new prefetch.
TEST_P(WalkerFreedFrame, TornWalkChasesTheCurrentFrame) {
  StaleWalk walk(GetParam(), Tear::kCurrentFrameFreed, 2);
  ASSERT_EQ(walk.threads.size(), 1u);
  EXPECT_EQ(names(walk.threads[0]), (std::vector<std::string>{"numbers", "consume", "<module>"}));
  EXPECT_FALSE(walk.threads[0].truncated);
  EXPECT_EQ(walk.walker.stats().torn_retries, 1u);
  EXPECT_EQ(walk.memory.refreshes, 0);
}

// A walk led through a frame that another thread's call used when it was copied ends at that
// thread's outermost frame, not at this thread's: it is read again (on the sympy server, 3.10,
// the main thread's walk was led so into a new thread's start-up about once a run).
TEST_P(WalkerFreedFrame, StackEndingAtAnotherThreadsOutermostFrameIsReadAgain) {
  Scene scene = make_scene(GetParam(), Tear::kOtherThreadsCaller);
  TearingMemory memory(scene, 0);
  StackWalker walker(memory, WalkerConfig{scene.layout, scene.runtime});
  std::vector<ThreadStack> threads;
  ASSERT_TRUE(walker.walk(threads));  // the thread's own outermost frame: <module>
  memory.tear_for(1);
  ASSERT_TRUE(walker.walk(threads));
  ASSERT_EQ(threads.size(), 1u);
  EXPECT_EQ(names(threads[0]), (std::vector<std::string>{"numbers", "consume", "<module>"}));
  EXPECT_EQ(walker.stats().moved_outermost, 1u);
  EXPECT_EQ(walker.stats().torn_retries, 1u);
}

// A thread whose outermost frame really changed (it returned to C and called Python anew, or
// a new thread took a freed one's state) has it taken once a second read ends there too.
TEST_P(WalkerFreedFrame, NewOutermostFrameIsTakenWhenReadTwice) {
  Scene scene = make_scene(GetParam(), Tear::kOtherThreadsCaller);
  TearingMemory memory(scene, 0);
  StackWalker walker(memory, WalkerConfig{scene.layout, scene.runtime});
  std::vector<ThreadStack> threads;
  ASSERT_TRUE(walker.walk(threads));
  memory.tear_for(100);  // from now on, the chain ends at `run`
  for (int walk = 0; walk < 2; ++walk) {
    ASSERT_TRUE(walker.walk(threads));
    ASSERT_EQ(threads.size(), 1u);
    EXPECT_EQ(names(threads[0]), (std::vector<std::string>{"numbers", "consume", "run"}));
    EXPECT_FALSE(threads[0].truncated);
  }
  EXPECT_EQ(walker.stats().moved_outermost, 1u);  // the second walk: no re-read
}

INSTANTIATE_TEST_SUITE_P(Versions, WalkerFreedFrame, ::testing::Values(8, 9, 10),
                         [](const auto& info) { return "Python3_" + std::to_string(info.param); });

// A thread running no Python code points at its own root C frame, whose frame is NULL: an
// empty stack, read once.
TEST_P(WalkerChainEnd, IdleThreadIsEmptyAndReadOnce) {
  Scene scene = make_scene(GetParam());
  const Layout& L = scene.layout;
  std::vector<ThreadStack> threads;
  {
    TearingMemory memory(scene, 0);
    StackWalker walker(memory, WalkerConfig{L, scene.runtime});
    ASSERT_TRUE(walker.walk(threads));
  }
  const uint64_t tstate = threads[0].tstate_addr;
  process::SnapshotMemory idle = scene.whole;
  std::vector<uint8_t> root(8), none(8, 0);
  const uint64_t root_cframe = tstate + L.thread.root_cframe;
  std::memcpy(root.data(), &root_cframe, 8);
  idle.add_region(tstate + L.thread.cframe, root);
  idle.add_region(root_cframe + L.thread.cframe_current_frame, none);
  scene.whole = idle;
  TearingMemory memory(scene, 0);
  StackWalker walker(memory, WalkerConfig{L, scene.runtime});
  ASSERT_TRUE(walker.walk(threads));
  ASSERT_EQ(threads.size(), 1u);
  EXPECT_TRUE(threads[0].frames.empty());
  EXPECT_FALSE(threads[0].truncated);
  EXPECT_EQ(walker.stats().torn_retries, 0u);
}

// A thread state freed while the thread list was read (its memory no longer points back at
// the interpreter) cut the list there, silently: the list is read again from its head, and a
// list that stays cut is counted.
TEST(WalkerThreadList, ListBrokenOffIsReadAgainThenCounted) {
  Scene scene = make_scene(12);
  const Layout& L = scene.layout;
  std::vector<ThreadStack> threads;
  {
    TearingMemory memory(scene, 0);
    StackWalker walker(memory, WalkerConfig{L, scene.runtime});
    ASSERT_TRUE(walker.walk(threads));
  }
  process::SnapshotMemory freed = scene.whole;
  freed.add_region(threads[0].tstate_addr + L.thread.interp, std::vector<uint8_t>(8, 0xdd));
  scene.torn = freed;
  {
    TearingMemory memory(scene, 1);
    StackWalker walker(memory, WalkerConfig{L, scene.runtime});
    ASSERT_TRUE(walker.walk(threads));
    EXPECT_EQ(threads.size(), 1u);
    EXPECT_EQ(walker.stats().thread_list_retries, 1u);
    EXPECT_EQ(walker.stats().cut_thread_lists, 0u);
  }
  TearingMemory memory(scene, 1000);
  StackWalker walker(memory, WalkerConfig{L, scene.runtime});
  ASSERT_TRUE(walker.walk(threads));
  EXPECT_TRUE(threads.empty());
  EXPECT_EQ(walker.stats().cut_thread_lists, 1u);
}

// 3.12+: a function returning (unlinked, its locals being freed) is still on the data stack
// above the newest frame there; a sample then is counted to it, not to its caller.
class WalkerReturningFrame : public ::testing::TestWithParam<int> {};

TEST_P(WalkerReturningFrame, FrameAboveTheNewestOnTheDataStackIsCountedToItself) {
  Scene scene = make_scene(GetParam());
  const Layout& L = scene.layout;
  auto word = [](uint64_t value) {
    std::vector<uint8_t> bytes(8);
    std::memcpy(bytes.data(), &value, 8);
    return bytes;
  };
  // `numbers` (a generator: its frame is the generator's) runs, called by `consume`, the newest
  // frame on the data stack. `helper`, which `numbers` called, is returning: right above
  // `consume` by its code's frame size, below the data stack's top, returning to `numbers`.
  const uint32_t words = 64;
  const uint64_t above = scene.method_frame + words * 8;
  const uint64_t helper_code = scene.method_code;  // any valid code object will do
  std::vector<uint8_t> frame(L.frame.size, 0);
  std::memcpy(frame.data() + L.frame.code, &helper_code, 8);
  std::memcpy(frame.data() + L.frame.previous, &scene.generator_frame, 8);
  for (auto* image : {&scene.whole, &scene.torn}) {
    if (L.code.framesize) {
      image->add_region(scene.method_code + L.code.framesize, std::vector<uint8_t>{words, 0, 0, 0});
    } else {  // 3.11: co_nlocalsplus + co_stacksize + FRAME_SPECIALS_SIZE
      const auto stack = static_cast<uint8_t>(words - L.code.frame_specials);
      image->add_region(scene.method_code + L.code.stacksize, std::vector<uint8_t>{stack, 0, 0, 0});
      image->add_region(scene.method_code + L.code.nlocalsplus, std::vector<uint8_t>{0, 0, 0, 0});
    }
    image->add_region(above, frame);
  }
  auto walk_with_top = [&](uint64_t top) {
    for (auto* image : {&scene.whole, &scene.torn}) {
      image->add_region(scene.tstate + L.thread.datastack_top, word(top));
    }
    TearingMemory memory(scene, 0);
    StackWalker walker(memory, WalkerConfig{L, scene.runtime});
    std::vector<ThreadStack> threads;
    EXPECT_TRUE(walker.walk(threads));
    return std::make_pair(threads.empty() ? std::vector<std::string>{} : names(threads[0]),
                          walker.stats().returning_frames);
  };
  auto [returning, counted] = walk_with_top(above + 256);
  EXPECT_EQ(returning, (std::vector<std::string>{"consume", "numbers", "consume", "<module>"}));
  EXPECT_EQ(counted, 1u);
  // The top right at `consume`'s end: nothing above it is alive.
  auto [plain, none] = walk_with_top(above);
  EXPECT_EQ(plain, (std::vector<std::string>{"numbers", "consume", "<module>"}));
  EXPECT_EQ(none, 0u);
  // A frame above that returns elsewhere (another thread's chain, stale memory) is not taken.
  const uint64_t elsewhere = 0x1230;
  for (auto* image : {&scene.whole, &scene.torn}) {
    image->add_region(above + L.frame.previous, word(elsewhere));
  }
  auto [stale, stale_counted] = walk_with_top(above + 256);
  EXPECT_EQ(stale, (std::vector<std::string>{"numbers", "consume", "<module>"}));
  EXPECT_EQ(stale_counted, 0u);
}

// The GIL holder's CPU is read beside its pthread (glibc's rseq area, process/rseq.h), for
// the sampler's placement; a thread without the GIL, or a target without the area, has none.
TEST_P(WalkerTornReads, GilHoldersCpuIsReadBesideItsPthread) {
  Scene scene = make_scene(GetParam());
  const Layout& L = scene.layout;
  if (!L.runtime.gilstate_tstate_current) GTEST_SKIP() << "no GIL holder in the runtime";
  constexpr int64_t kCpuOffset = 0x924;
  const uint32_t cpu = 3;
  scene.whole.add_region(0x7f00aa000000 + kCpuOffset,
                         std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(&cpu),
                                              reinterpret_cast<const uint8_t*>(&cpu) + 4));
  WalkerConfig config{scene.layout, scene.runtime};
  std::vector<ThreadStack> threads;
  {
    StackWalker walker(scene.whole, config);
    EXPECT_TRUE(walker.walk(threads));
    ASSERT_EQ(threads.size(), 1u);
    EXPECT_EQ(threads[0].cpu, -1);  // no rseq area known
  }
  config.rseq_cpu_offset = kCpuOffset;
  {
    StackWalker walker(scene.whole, config);
    EXPECT_TRUE(walker.walk(threads));
    ASSERT_EQ(threads.size(), 1u);
    ASSERT_TRUE(threads[0].holds_gil);
    EXPECT_EQ(threads[0].cpu, 3);
  }
  uint64_t none = 0;
  scene.whole.add_region(scene.runtime + L.runtime.gilstate_tstate_current,
                         std::vector<uint8_t>(reinterpret_cast<uint8_t*>(&none),
                                              reinterpret_cast<uint8_t*>(&none) + 8));
  StackWalker walker(scene.whole, config);
  EXPECT_TRUE(walker.walk(threads));
  ASSERT_EQ(threads.size(), 1u);
  EXPECT_FALSE(threads[0].holds_gil);
  EXPECT_EQ(threads[0].cpu, -1);
}

// A thread that is not the GIL's last holder changes no frame while the GIL stays where it
// is: read while the GIL's holder and count of changes stood still, its stack is not read again
// while they stand still (see StackWalker::reuse_unchanged_stack).
class WalkerUnchangedThreads : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    scene_ = make_scene(GetParam());
    const Layout& L = scene_.layout;
    if (L.interp.gil_pointer) {  // 3.12+: the interpreter points at its GIL
      uint64_t interp = 0;
      ASSERT_TRUE(scene_.whole.read_value(scene_.runtime + L.runtime.interpreters_head, interp));
      put(interp + L.interp.gil_pointer, kGil);
    }
  }
  // Another thread (or `holder`) holds the GIL, which has changed hands `switches` times.
  void set_gil(uint64_t holder, uint64_t switches) {
    const Layout& L = scene_.layout;
    const int32_t locked = 1;
    if (L.runtime.gilstate_tstate_current) {
      put(scene_.runtime + L.runtime.gilstate_tstate_current, holder);
      put(scene_.runtime + L.runtime.ceval_gil_locked, locked);
      put(scene_.runtime + L.runtime.ceval_gil_last_holder, holder);
      put(scene_.runtime + L.runtime.ceval_gil_switch_number, switches);
    } else {
      put(kGil + L.interp.gil_holder, holder);
      put(kGil + L.interp.gil_locked, locked);
      put(kGil + L.interp.gil_switch_number, switches);
    }
  }
  template <typename T>
  void put(uint64_t addr, T value) {
    std::vector<uint8_t> bytes(sizeof value);
    std::memcpy(bytes.data(), &value, sizeof value);
    scene_.whole.add_region(addr, bytes);
  }
  static constexpr uint64_t kGil = kBase - 0x1000;
  static constexpr uint64_t kOtherThread = kBase - 0x2000;
  Scene scene_;
};

TEST_P(WalkerUnchangedThreads, StackReadWhileTheGilStoodStillIsNotReadAgainUntilItMoves) {
  const Layout& L = scene_.layout;
  set_gil(kOtherThread, 7);
  TearingMemory memory(scene_, 0);
  StackWalker walker(memory, WalkerConfig{L, scene_.runtime});
  std::vector<ThreadStack> threads;
  const std::vector<std::string> stack = {"numbers", "consume", "<module>"};
  // The first walk has nothing to compare the GIL with; the second reads the stack while the
  // GIL stood still since the first, and keeps it; the third takes it as kept.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(walker.walk(threads));
  ASSERT_EQ(threads.size(), 1u);
  EXPECT_EQ(names(threads[0]), stack);
  EXPECT_EQ(walker.stats().stacks_read, 2u);
  EXPECT_EQ(walker.stats().unchanged_stacks, 1u);
  // Its newest frame now runs `consume` in memory (only a thread holding the GIL could have
  // done that): the kept stack is what the walk shows, as nothing is read while the GIL stays.
  put(scene_.generator_frame + L.frame.code, scene_.method_code);
  ASSERT_TRUE(walker.walk(threads));
  EXPECT_EQ(names(threads[0]), stack);
  EXPECT_EQ(walker.stats().unchanged_stacks, 2u);
  // The GIL changed hands (the thread took it and let it go): read anew, and kept again only
  // once the GIL has stood still for a whole walk.
  set_gil(kOtherThread, 9);
  ASSERT_TRUE(walker.walk(threads));
  const std::vector<std::string> moved = {"consume", "consume", "<module>"};
  EXPECT_EQ(names(threads[0]), moved);
  EXPECT_EQ(walker.stats().stacks_read, 3u);
  ASSERT_TRUE(walker.walk(threads));
  ASSERT_TRUE(walker.walk(threads));
  EXPECT_EQ(names(threads[0]), moved);
  EXPECT_EQ(walker.stats().stacks_read, 4u);
  EXPECT_EQ(walker.stats().unchanged_stacks, 3u);
  EXPECT_EQ(walker.stats().gil_count_faults, 0u);
}

TEST_P(WalkerUnchangedThreads, TheGilsHolderIsAlwaysRead) {
  set_gil(scene_.tstate, 7);
  TearingMemory memory(scene_, 0);
  StackWalker walker(memory, WalkerConfig{scene_.layout, scene_.runtime});
  std::vector<ThreadStack> threads;
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(walker.walk(threads));
  EXPECT_EQ(walker.stats().stacks_read, 4u);
  EXPECT_EQ(walker.stats().unchanged_stacks, 0u);
}

// 3.12+: the interpreter's GIL pointer is read once and kept; it is polled again every few
// hundred walks, and read again at once for another interpreter at the same address (another
// id). Read every walk, it was a range of every batch of its own.
TEST_P(WalkerUnchangedThreads, TheGilPointerIsKeptAndPolled) {
  const Layout& L = scene_.layout;
  if (!L.interp.gil_pointer || !L.interp.id) GTEST_SKIP() << "the GIL is not behind a pointer";
  uint64_t interp = 0;
  ASSERT_TRUE(scene_.whole.read_value(scene_.runtime + L.runtime.interpreters_head, interp));
  set_gil(scene_.tstate, 7);
  constexpr uint64_t kOtherGil = kGil - 0x1000;  // another GIL, held by another thread
  put(kOtherGil + L.interp.gil_holder, kOtherThread);
  put(kOtherGil + L.interp.gil_locked, int32_t{1});
  TearingMemory memory(scene_, 0);
  StackWalker walker(memory, WalkerConfig{L, scene_.runtime});
  std::vector<ThreadStack> threads;
  ASSERT_TRUE(walker.walk(threads));
  ASSERT_EQ(threads.size(), 1u);
  EXPECT_TRUE(threads[0].holds_gil);
  // The pointer moves: the walks go on with the one they read, until the poll.
  put(interp + L.interp.gil_pointer, kOtherGil);
  ASSERT_TRUE(walker.walk(threads));
  EXPECT_TRUE(threads[0].holds_gil);
  int walks = 1;
  while (threads[0].holds_gil && walks < 1000) {
    ASSERT_TRUE(walker.walk(threads));
    ++walks;
  }
  EXPECT_FALSE(threads[0].holds_gil);
  EXPECT_GT(walks, 100);
  EXPECT_LT(walks, 1000);
  // Another interpreter at the same address: its pointer is read at once.
  put(interp + L.interp.gil_pointer, kGil);
  int64_t id = 0;
  ASSERT_TRUE(scene_.whole.read_value(interp + L.interp.id, id));
  put(interp + L.interp.id, id + 1);
  ASSERT_TRUE(walker.walk(threads));
  EXPECT_TRUE(threads[0].holds_gil);
}

// A holder that changes while the count stands still is no count of changes (a wrong offset):
// nothing is taken unread then, and after a few such readings the count is never used again.
TEST_P(WalkerUnchangedThreads, HolderChangingWhileTheCountStandsStillTurnsTheProofOff) {
  TearingMemory memory(scene_, 0);
  StackWalker walker(memory, WalkerConfig{scene_.layout, scene_.runtime});
  std::vector<ThreadStack> threads;
  for (int fault = 0; fault < 8; ++fault) {
    set_gil(kOtherThread + 16 * static_cast<uint64_t>(fault % 2), 7);
    ASSERT_TRUE(walker.walk(threads));
  }
  EXPECT_EQ(walker.stats().gil_count_faults, 7u);
  EXPECT_EQ(walker.stats().unchanged_stacks, 0u);
  set_gil(kOtherThread, 7);  // the eighth: off for good
  ASSERT_TRUE(walker.walk(threads));
  EXPECT_EQ(walker.stats().gil_count_faults, 8u);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(walker.walk(threads));
  EXPECT_EQ(walker.stats().unchanged_stacks, 0u);
  EXPECT_EQ(walker.stats().stacks_read, 12u);
}

// A new thread in a freed thread state (another pthread) is read, not taken for the old one.
TEST_P(WalkerUnchangedThreads, AnotherThreadInTheSameStateIsRead) {
  set_gil(kOtherThread, 7);
  TearingMemory memory(scene_, 0);
  StackWalker walker(memory, WalkerConfig{scene_.layout, scene_.runtime});
  std::vector<ThreadStack> threads;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(walker.walk(threads));
  EXPECT_EQ(walker.stats().unchanged_stacks, 1u);
  put(scene_.tstate + scene_.layout.thread.thread_id, uint64_t{0x7f00bb000000});
  ASSERT_TRUE(walker.walk(threads));
  EXPECT_EQ(walker.stats().unchanged_stacks, 1u);
  EXPECT_EQ(walker.stats().stacks_read, 3u);
}

INSTANTIATE_TEST_SUITE_P(Versions, WalkerUnchangedThreads, ::testing::Values(8, 9, 10, 11, 12),
                         [](const auto& info) { return "Python3_" + std::to_string(info.param); });

INSTANTIATE_TEST_SUITE_P(Versions, WalkerReturningFrame, ::testing::Values(11, 12),
                         [](const auto& info) { return "Python3_" + std::to_string(info.param); });

INSTANTIATE_TEST_SUITE_P(Versions, WalkerChainEnd, ::testing::Values(11, 12),
                         [](const auto& info) { return "Python3_" + std::to_string(info.param); });

INSTANTIATE_TEST_SUITE_P(Versions, WalkerTornReads, ::testing::Values(8, 9, 10, 11, 12),
                         [](const auto& info) { return "Python3_" + std::to_string(info.param); });

}  // namespace
}  // namespace spyglass::cpython
