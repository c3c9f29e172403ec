// CPython layouts: the builtin 3.8-3.12 tables, and 3.13-3.15 layouts read from real debug
// offsets (the first bytes of _PyRuntime of CPython 3.13.0 and Debian's 3.14.10 and 3.15.2,
// copied with ctypes and pasted here as 64-bit words), including every way a table is refused.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cpython/layout.h"
#include "common/error.h"
#include "process/memory.h"

namespace spyglass::cpython {
namespace {

// _PyRuntime of CPython 3.13.0 (pyenv), the 584 bytes of its _Py_DebugOffsets.
const std::vector<uint64_t> kRuntime313 = {8750607829840520312ULL,
                                           51183856,
                                           0,
                                           283320,
                                           608,
                                           632,
                                           194968,
                                           7272,
                                           7264,
                                           7344,
                                           7400,
                                           7656,
                                           7640,
                                           7648,
                                           16,
                                           7752,
                                           0,
                                           7768,
                                           7760,
                                           304,
                                           0,
                                           8,
                                           16,
                                           72,
                                           152,
                                           160,
                                           232,
                                           32,
                                           80,
                                           8,
                                           0,
                                           56,
                                           72,
                                           70,
                                           208,
                                           112,
                                           120,
                                           128,
                                           136,
                                           68,
                                           52,
                                           96,
                                           104,
                                           200,
                                           16,
                                           8,
                                           416,
                                           24,
                                           88,
                                           168,
                                           32,
                                           24,
                                           16,
                                           40,
                                           24,
                                           16,
                                           48,
                                           32,
                                           40,
                                           24,
                                           16,
                                           32,
                                           16,
                                           24,
                                           40,
                                           16,
                                           32,
                                           64,
                                           32,
                                           16,
                                           40,
                                           240,
                                           200};

// _PyRuntime of Debian unstable's CPython 3.14.10, the 760 bytes of its _Py_DebugOffsets.
const std::vector<uint64_t> kRuntime314 = {8750607829840520312ULL,
                                           51251952,
                                           0,
                                           316616,
                                           784,
                                           808,
                                           225864,
                                           7280,
                                           7272,
                                           7344,
                                           7360,
                                           7408,
                                           7688,
                                           7672,
                                           7680,
                                           16,
                                           7784,
                                           0,
                                           7800,
                                           7792,
                                           7992,
                                           0,
                                           832,
                                           0,
                                           8,
                                           16,
                                           72,
                                           152,
                                           160,
                                           232,
                                           32,
                                           88,
                                           8,
                                           0,
                                           56,
                                           80,
                                           74,
                                           64,
                                           0,
                                           216,
                                           112,
                                           120,
                                           128,
                                           136,
                                           68,
                                           52,
                                           96,
                                           104,
                                           208,
                                           0,
                                           16,
                                           8,
                                           416,
                                           24,
                                           88,
                                           168,
                                           40,
                                           32,
                                           16,
                                           40,
                                           24,
                                           16,
                                           200,
                                           24,
                                           40,
                                           32,
                                           48,
                                           32,
                                           40,
                                           24,
                                           16,
                                           32,
                                           16,
                                           24,
                                           40,
                                           16,
                                           32,
                                           64,
                                           32,
                                           16,
                                           40,
                                           264,
                                           192,
                                           160,
                                           24,
                                           72,
                                           67,
                                           0,
                                           8,
                                           24,
                                           304,
                                           8076,
                                           0,
                                           4,
                                           512};

// _PyRuntime of Debian unstable's CPython 3.15.2, the 888 bytes of its _Py_DebugOffsets.
const std::vector<uint64_t> kRuntime315 = {8750607829840520312ULL,
                                           51315440,
                                           0,
                                           346568,
                                           912,
                                           936,
                                           226240,
                                           7272,
                                           7264,
                                           7336,
                                           7352,
                                           7400,
                                           7592,
                                           7576,
                                           7584,
                                           16,
                                           7736,
                                           0,
                                           7752,
                                           7744,
                                           7944,
                                           0,
                                           888,
                                           0,
                                           8,
                                           16,
                                           72,
                                           80,
                                           88,
                                           96,
                                           176,
                                           184,
                                           256,
                                           32,
                                           36,
                                           40,
                                           136,
                                           288,
                                           0,
                                           88,
                                           8,
                                           0,
                                           56,
                                           80,
                                           74,
                                           64,
                                           0,
                                           216,
                                           112,
                                           120,
                                           128,
                                           136,
                                           68,
                                           52,
                                           96,
                                           104,
                                           208,
                                           0,
                                           16,
                                           8,
                                           424,
                                           24,
                                           88,
                                           168,
                                           32,
                                           288,
                                           944,
                                           888,
                                           40,
                                           32,
                                           16,
                                           40,
                                           24,
                                           16,
                                           200,
                                           24,
                                           40,
                                           32,
                                           48,
                                           32,
                                           40,
                                           24,
                                           16,
                                           32,
                                           16,
                                           24,
                                           40,
                                           16,
                                           32,
                                           64,
                                           32,
                                           16,
                                           40,
                                           56,
                                           176,
                                           112,
                                           120,
                                           1120,
                                           104,
                                           160,
                                           24,
                                           72,
                                           67,
                                           0,
                                           8,
                                           24,
                                           344,
                                           8028,
                                           0,
                                           4,
                                           512};

constexpr uint64_t kRuntimeAddr = 0x7f0000001000;

// Target memory made of one block of words at kRuntimeAddr.
class WordsMemory : public process::MemoryReader {
 public:
  explicit WordsMemory(std::vector<uint64_t> words) : words_(std::move(words)) {}
  bool read(uint64_t addr, void* out, size_t size) override {
    const size_t total = words_.size() * sizeof(uint64_t);
    if (addr < kRuntimeAddr || addr - kRuntimeAddr > total ||
        size > total - (addr - kRuntimeAddr)) {
      return false;
    }
    std::memcpy(out, reinterpret_cast<const uint8_t*>(words_.data()) + (addr - kRuntimeAddr), size);
    return true;
  }

 private:
  std::vector<uint64_t> words_;
};

Layout read_layout(std::vector<uint64_t> words) {
  WordsMemory memory(std::move(words));
  return layout_from_debug_offsets(memory, kRuntimeAddr);
}

// The error a table gives, "" when it is accepted.
std::string refusal(std::vector<uint64_t> words, ErrorKind expected_kind) {
  try {
    read_layout(std::move(words));
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), expected_kind) << error.what();
    return error.what();
  }
  return "";
}

TEST(BuiltinLayout, KnowsOnlyTheVersionsBeforeTheDebugOffsets) {
  const SupportedVersions& range = kSupportedVersions;
  for (int minor = range.oldest_minor; minor < range.first_debug_offsets_minor; ++minor) {
    auto layout = builtin_layout({3, minor, 4});
    ASSERT_TRUE(layout.has_value()) << minor;
    EXPECT_EQ(layout->version.minor, minor);
    EXPECT_EQ(layout->version.micro, 4);
    EXPECT_NE(layout->thread.size, 0u);
    EXPECT_NE(layout->code.filename, 0u);
    EXPECT_NE(layout->unicode.ascii_data, 0u);
  }
  EXPECT_FALSE(builtin_layout({3, range.oldest_minor - 1, 0}).has_value());
  EXPECT_FALSE(builtin_layout({3, range.first_debug_offsets_minor, 0}).has_value());
  EXPECT_FALSE(builtin_layout({2, 7, 18}).has_value());
}

TEST(BuiltinLayout, FrameModelsAndLineTables) {
  EXPECT_EQ(builtin_layout({3, 8, 0})->frame_model, FrameModel::kFrameObject);
  EXPECT_EQ(builtin_layout({3, 9, 0})->line_table, LineTableFormat::kLnotab);
  EXPECT_EQ(builtin_layout({3, 10, 0})->line_table, LineTableFormat::kLinetable310);
  EXPECT_EQ(builtin_layout({3, 10, 0})->frame_model, FrameModel::kFrameObject);
  EXPECT_EQ(builtin_layout({3, 11, 0})->frame_model, FrameModel::kInterpreterFrame);
  EXPECT_EQ(builtin_layout({3, 11, 0})->line_table, LineTableFormat::kLocations);
}

TEST(BuiltinLayout, PerVersionSpecifics) {
  const auto l38 = *builtin_layout({3, 8, 0});
  EXPECT_EQ(l38.thread.native_thread_id, 0u);  // no native_thread_id before 3.11
  EXPECT_EQ(l38.thread.cframe, 0u);
  EXPECT_NE(l38.runtime.gilstate_tstate_current, 0u);
  const auto l311 = *builtin_layout({3, 11, 0});
  EXPECT_EQ(l311.thread.frame, 0u);
  EXPECT_EQ(l311.thread.cframe, 56u);
  EXPECT_EQ(l311.thread.cframe_current_frame, 8u);
  EXPECT_EQ(l311.frame.owner_cstack, -1);
  EXPECT_NE(l311.runtime.gilstate_tstate_current, 0u);
  const auto l312 = *builtin_layout({3, 12, 0});
  EXPECT_EQ(l312.runtime.gilstate_tstate_current, 0u);  // the GIL is per interpreter
  EXPECT_EQ(l312.interp.gil_pointer, 384u);
  EXPECT_EQ(l312.frame.owner_cstack, 3);
  EXPECT_FALSE(l312.frame.instr_is_next);
  EXPECT_FALSE(l312.frame.code_is_tagged);
}

// Layout::async (async-aware sampling): the values tools/check_layouts.py --print gives for
// each version's headers, and for TaskObj and 3.8-3.9's md_dict (no header), the numbers a
// live interpreter of the version shows (check_layouts.py's probe).
TEST(BuiltinLayout, AsyncFields) {
  const auto l38 = *builtin_layout({3, 8, 0});
  EXPECT_EQ(l38.async.interp_modules, 56u);
  EXPECT_EQ(l38.async.module_dict, 16u);
  EXPECT_EQ(l38.async.gen_frame, 16u);
  EXPECT_EQ(l38.async.gen_running, 24u);
  EXPECT_EQ(l38.async.gen_iframe, 0u);
  EXPECT_EQ(l38.async.gen_suspended_first, 0);  // no state: gi_running and f_lasti tell
  EXPECT_EQ(l38.async.gen_suspended_last, 0);
  EXPECT_EQ(l38.async.frame_stack_pointer, 72u);  // f_stacktop
  EXPECT_EQ(l38.async.frame_value_stack, 0u);
  EXPECT_EQ(l38.async.task_size, 144u);
  EXPECT_EQ(l38.async.task_coro, 112u);
  EXPECT_EQ(l38.async.task_name, 120u);
  const auto l39 = *builtin_layout({3, 9, 0});
  EXPECT_EQ(l39.async.interp_modules, 856u);
  EXPECT_EQ(l39.async.gen_running, 24u);
  EXPECT_EQ(l39.async.task_size, 184u);
  EXPECT_EQ(l39.async.task_coro, 152u);
  EXPECT_EQ(l39.async.task_name, 160u);
  const auto l310 = *builtin_layout({3, 10, 0});
  EXPECT_EQ(l310.async.gen_frame, 16u);
  EXPECT_EQ(l310.async.gen_running, 0u);          // gone: the frame's f_state tells
  EXPECT_EQ(l310.async.gen_suspended_first, -1);  // FRAME_SUSPENDED
  EXPECT_EQ(l310.async.gen_suspended_last, -1);
  EXPECT_EQ(l310.async.frame_stack_pointer, 0u);
  EXPECT_EQ(l310.async.frame_value_stack, 64u);
  EXPECT_EQ(l310.async.frame_stack_depth, 80u);
  EXPECT_EQ(l310.async.task_size, 192u);
  EXPECT_EQ(l310.async.task_coro, 160u);
  EXPECT_EQ(l310.async.task_name, 168u);
  const auto l311 = *builtin_layout({3, 11, 0});
  EXPECT_EQ(l311.async.interp_modules, 888u);
  EXPECT_EQ(l311.async.gen_frame, 0u);
  EXPECT_EQ(l311.async.gen_iframe, 80u);
  EXPECT_EQ(l311.async.gen_frame_state, 75u);
  EXPECT_EQ(l311.async.gen_suspended_first, -1);
  EXPECT_EQ(l311.async.gen_suspended_last, -1);
  EXPECT_EQ(l311.async.frame_value_stack, 0u);
  EXPECT_EQ(l311.async.frame_stack_top, 64u);
  EXPECT_FALSE(l311.async.stack_is_tagged);
  EXPECT_EQ(l311.async.task_size, 176u);
  EXPECT_EQ(l311.async.task_coro, 136u);
  EXPECT_EQ(l311.async.task_name, 144u);
  const auto l312 = *builtin_layout({3, 12, 0});
  EXPECT_EQ(l312.async.interp_modules, 944u);  // imports.modules
  EXPECT_EQ(l312.async.module_dict, 16u);
  EXPECT_EQ(l312.async.gen_iframe, 72u);
  EXPECT_EQ(l312.async.gen_frame_state, 67u);
  EXPECT_EQ(l312.async.frame_stack_top, 64u);
  EXPECT_EQ(l312.async.task_size, 176u);
  EXPECT_EQ(l312.async.task_coro, 136u);
  EXPECT_EQ(l312.async.task_name, 144u);
}

TEST(DebugOffsets, Reads313) {
  const Layout l = read_layout(kRuntime313);
  EXPECT_EQ(l.version.str(), "3.13.0");
  EXPECT_EQ(l.version.hex, 0x030d00f0u);
  EXPECT_EQ(l.frame_model, FrameModel::kInterpreterFrame);
  EXPECT_EQ(l.line_table, LineTableFormat::kLocations);
  // Every value below is what 3.13.0's headers say (tools/check_layouts.py --print).
  EXPECT_EQ(l.runtime.interpreters_head, 632u);
  EXPECT_EQ(l.interp.id, 7272u);
  EXPECT_EQ(l.interp.next, 7264u);
  EXPECT_EQ(l.interp.threads_head, 7344u);
  EXPECT_EQ(l.interp.gil_pointer, 16u);
  EXPECT_EQ(l.interp.gil_locked, 16u);
  EXPECT_EQ(l.interp.gil_holder, 8u);
  EXPECT_EQ(l.thread.frame, 72u);
  EXPECT_EQ(l.thread.thread_id, 152u);
  EXPECT_EQ(l.thread.native_thread_id, 160u);
  EXPECT_EQ(l.thread.datastack_chunk, 232u);
  EXPECT_EQ(l.frame.size, 80u);
  EXPECT_EQ(l.frame.previous, 8u);
  EXPECT_EQ(l.frame.code, 0u);
  EXPECT_EQ(l.frame.lasti, 56u);
  EXPECT_EQ(l.frame.owner, 70u);
  EXPECT_EQ(l.frame.localsplus, 72u);
  EXPECT_EQ(l.frame.owner_cstack, 3);
  EXPECT_EQ(l.frame.owner_interpreter, -1);
  EXPECT_FALSE(l.frame.code_is_tagged);
  EXPECT_TRUE(l.frame.instr_is_next);
  EXPECT_EQ(l.code.filename, 112u);
  EXPECT_EQ(l.code.qualname, 128u);
  EXPECT_EQ(l.code.firstlineno, 68u);
  EXPECT_EQ(l.code.linetable, 136u);
  EXPECT_EQ(l.code.code_adaptive, 200u);
  EXPECT_EQ(l.unicode.ascii_data, 40u);
  EXPECT_EQ(l.unicode.compact_data, 56u);
  EXPECT_EQ(l.bytes.data, 32u);
  EXPECT_EQ(l.chunk.data, 24u);
  EXPECT_EQ(l.async.interp_modules, 7656u);  // from the table (imports_modules)
  EXPECT_EQ(l.async.module_dict, 16u);
  EXPECT_EQ(l.async.gen_iframe, 72u);  // transcribed: the 3.13 table has no gen_object
  EXPECT_EQ(l.async.gen_frame_state, 67u);
  EXPECT_EQ(l.async.gen_suspended_first, -2);  // FRAME_SUSPENDED
  EXPECT_EQ(l.async.gen_suspended_last, -1);   // FRAME_SUSPENDED_YIELD_FROM
  EXPECT_EQ(l.async.frame_stack_pointer, 0u);
  EXPECT_EQ(l.async.frame_stack_top, 64u);
  EXPECT_FALSE(l.async.stack_is_tagged);
  EXPECT_EQ(l.async.task_size, 144u);
  EXPECT_EQ(l.async.task_coro, 120u);
  EXPECT_EQ(l.async.task_name, 128u);
}

TEST(DebugOffsets, Reads314) {
  const Layout l = read_layout(kRuntime314);
  EXPECT_EQ(l.version.str(), "3.14.10");
  EXPECT_EQ(l.runtime.interpreters_head, 808u);
  EXPECT_EQ(l.interp.threads_head, 7344u);
  EXPECT_EQ(l.interp.gil_locked, 16u);
  EXPECT_EQ(l.interp.gil_holder, 8u);
  EXPECT_EQ(l.thread.frame, 72u);
  EXPECT_EQ(l.thread.size, 832u);
  EXPECT_EQ(l.frame.size, 88u);
  EXPECT_EQ(l.frame.owner, 74u);
  EXPECT_EQ(l.frame.localsplus, 80u);
  EXPECT_EQ(l.frame.owner_cstack, 4);
  EXPECT_EQ(l.frame.owner_interpreter, 3);
  EXPECT_TRUE(l.frame.code_is_tagged);
  EXPECT_TRUE(l.frame.instr_is_next);
  EXPECT_EQ(l.code.size, 216u);
  EXPECT_EQ(l.code.code_adaptive, 208u);
  EXPECT_EQ(l.unicode.compact_data, 56u);
  EXPECT_EQ(l.async.interp_modules, 7688u);
  EXPECT_EQ(l.async.gen_iframe, 72u);  // from the table's gen_object, as the next two
  EXPECT_EQ(l.async.gen_frame_state, 67u);
  EXPECT_EQ(l.async.frame_stack_pointer, 64u);  // interpreter_frame.stackpointer
  EXPECT_EQ(l.async.frame_stack_top, 0u);
  EXPECT_TRUE(l.async.stack_is_tagged);
  EXPECT_EQ(l.async.gen_suspended_first, -2);
  EXPECT_EQ(l.async.gen_suspended_last, -1);
  EXPECT_EQ(l.async.task_size, 0u);  // from _asyncio's AsyncioDebug section at run time
  EXPECT_EQ(l.async.task_coro, 0u);
}

TEST(DebugOffsets, Reads315) {
  const Layout l = read_layout(kRuntime315);
  EXPECT_EQ(l.version.str(), "3.15.2");
  // Every value below is what 3.15.2's headers say (tools/check_layouts.py --print).
  EXPECT_EQ(l.runtime.interpreters_head, 936u);
  EXPECT_EQ(l.interp.threads_head, 7336u);
  EXPECT_EQ(l.interp.gil_pointer, 16u);
  EXPECT_EQ(l.interp.gil_locked, 16u);
  EXPECT_EQ(l.interp.gil_holder, 8u);
  EXPECT_EQ(l.thread.size, 888u);
  EXPECT_EQ(l.thread.frame, 72u);
  EXPECT_EQ(l.thread.thread_id, 176u);
  EXPECT_EQ(l.thread.native_thread_id, 184u);
  EXPECT_EQ(l.thread.datastack_chunk, 256u);
  EXPECT_EQ(l.frame.size, 88u);
  EXPECT_EQ(l.frame.owner, 74u);
  EXPECT_EQ(l.frame.localsplus, 80u);
  EXPECT_EQ(l.frame.owner_cstack, -1);  // FRAME_OWNED_BY_CSTACK is gone in 3.15
  EXPECT_EQ(l.frame.owner_interpreter, 3);
  EXPECT_TRUE(l.frame.code_is_tagged);
  EXPECT_TRUE(l.frame.instr_is_next);
  EXPECT_EQ(l.code.size, 216u);
  EXPECT_EQ(l.code.code_adaptive, 208u);
  EXPECT_EQ(l.unicode.ascii_data, 40u);
  EXPECT_EQ(l.unicode.compact_data, 56u);  // from the table, new in 3.15
  EXPECT_EQ(l.tuple_items, 32u);           // PyTupleObject caches its hash since 3.14
  EXPECT_EQ(l.chunk.data, 24u);
  EXPECT_EQ(l.async.interp_modules, 7592u);
  EXPECT_EQ(l.async.module_dict, 16u);
  EXPECT_EQ(l.async.gen_iframe, 72u);
  EXPECT_EQ(l.async.gen_frame_state, 67u);
  EXPECT_EQ(l.async.frame_stack_pointer, 64u);
  EXPECT_TRUE(l.async.stack_is_tagged);
  EXPECT_EQ(l.async.gen_suspended_first, 1);  // FRAME_SUSPENDED, renumbered in 3.15
  EXPECT_EQ(l.async.gen_suspended_last, 3);   // FRAME_SUSPENDED_YIELD_FROM_LOCKED
  EXPECT_EQ(l.async.task_name, 0u);
}

TEST(DebugOffsets, EverySupportedMinorHasALayout) {
  const SupportedVersions& range = kSupportedVersions;
  for (int minor = range.oldest_minor; minor <= range.newest_minor; ++minor) {
    const bool debug = reads_debug_offsets({3, minor, 0});
    EXPECT_EQ(debug, minor >= range.first_debug_offsets_minor) << minor;
    EXPECT_EQ(builtin_layout({3, minor, 0}).has_value(), !debug) << minor;
    EXPECT_NO_THROW(check_supported({3, minor, 0})) << minor;
  }
}

TEST(DebugOffsets, ChecksEachOffsetWithItsWidth) {
  // 3.15 words: 39 interpreter frame size (88), 43 localsplus (8 bytes), 44 owner (1 byte).
  auto words = kRuntime315;
  words[44] = 87;  // the owner's one byte is the struct's last: fine
  EXPECT_EQ(read_layout(words).frame.owner, 87u);
  words = kRuntime315;
  words[43] = 84;  // localsplus's 8 bytes would end 4 bytes past the struct
  const std::string message = refusal(words, ErrorKind::kCorrupt);
  EXPECT_NE(message.find("interpreter_frame.localsplus 84 with its 8 bytes outside its "
                         "struct's 88"),
            std::string::npos)
      << message;
  words = kRuntime315;
  words[93] = 1000;  // unicode_object.compactunicodeobject_size beyond the unicode object
  EXPECT_NE(refusal(words, ErrorKind::kCorrupt), "");
}

TEST(DebugOffsets, CookieHelper) {
  EXPECT_TRUE(has_debug_cookie("xdebugpy", 8));
  EXPECT_FALSE(has_debug_cookie("xdebugp", 7));
  EXPECT_FALSE(has_debug_cookie("ydebugpy", 8));
  EXPECT_FALSE(has_debug_cookie(nullptr, 8));
}

TEST(DebugOffsets, RefusesFreeThreadedBuilds) {
  auto words = kRuntime313;
  words[2] = 1;
  EXPECT_EQ(refusal(words, ErrorKind::kUnsupported),
            "free-threaded CPython 3.13t is not supported yet");
  words = kRuntime314;
  words[2] = 1;
  EXPECT_EQ(refusal(words, ErrorKind::kUnsupported),
            "free-threaded CPython 3.14t is not supported yet");
}

TEST(DebugOffsets, RefusesUnknownMinorVersions) {
  auto words = kRuntime315;
  const int newer = kSupportedVersions.newest_minor + 1;
  words[1] = 0x030000a1 | (uint64_t(newer) << 16);  // an alpha of the next minor version
  const std::string message = refusal(words, ErrorKind::kUnsupported);
  // One line that says what supporting it would take.
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_EQ(message.find(fmt::format("CPython 3.{}.0 is newer than this spyglass knows (3.{} to "
                                     "3.{})",
                                     newer, kSupportedVersions.oldest_minor,
                                     kSupportedVersions.newest_minor)),
            0u)
      << message;
  EXPECT_NE(message.find("_Py_DebugOffsets shape"), std::string::npos) << message;
  EXPECT_NE(message.find("src/cpython/versions.toml"), std::string::npos) << message;
  words[1] = 0x030c01f0;  // 3.12 never has the table
  EXPECT_NE(refusal(words, ErrorKind::kCorrupt), "");
  words[1] = 0x040000f0;
  EXPECT_NE(refusal(words, ErrorKind::kCorrupt), "");
}

TEST(DebugOffsets, RefusesBadCookieAndShortMemory) {
  auto words = kRuntime313;
  words[0] ^= 1;
  EXPECT_NE(refusal(words, ErrorKind::kCorrupt).find("cookie"), std::string::npos);
  words = kRuntime314;
  words.resize(80);  // the 3.14 table is 95 words: the second read must fail
  EXPECT_NE(refusal(words, ErrorKind::kCorrupt), "");
  EXPECT_NE(refusal({}, ErrorKind::kCorrupt), "");
}

TEST(DebugOffsets, RefusesOffsetsOutsideTheirStructs) {
  // 3.13 words: 3 runtime size, 6 interp size, 19 thread size, 23 current_frame, 28 frame size,
  // 32 localsplus, 34 code size, 35 filename, 15 gil_runtime_state.
  const struct {
    size_t word;
    uint64_t value;
  } corruptions[] = {
      {3, 0},
      {3, 1ULL << 40},
      {6, 100},
      {19, 1ULL << 20},
      {23, 304},
      {28, 0},
      {32, 80},
      {34, 100},
      {35, 5000},
      {15, 7800},
      {18, 7000 /*holder below _gil*/},
  };
  for (const auto& corruption : corruptions) {
    auto words = kRuntime313;
    words[corruption.word] = corruption.value;
    const std::string message = refusal(words, ErrorKind::kCorrupt);
    EXPECT_NE(message, "") << "word " << corruption.word;
    EXPECT_NE(message.find("3.13.0"), std::string::npos) << message;
  }
}

TEST(DebugOffsets, EveryCorruptWordIsCaughtOrHarmless) {
  // Flipping any word to a huge value either is refused or leaves no offset beyond 16 MiB.
  for (const auto* table : {&kRuntime313, &kRuntime314, &kRuntime315}) {
    for (size_t word = 3; word < table->size(); ++word) {
      auto words = *table;
      words[word] = 0xffffffffffff;
      try {
        const Layout l = read_layout(words);
        for (uint64_t offset : {l.runtime.interpreters_head, l.interp.threads_head, l.thread.frame,
                                l.frame.previous, l.frame.code, l.code.filename, l.bytes.data}) {
          EXPECT_LT(offset, 16u << 20) << "word " << word;
        }
      } catch (const Error& error) {
        EXPECT_EQ(error.kind(), ErrorKind::kCorrupt) << "word " << word;
      }
    }
  }
}

}  // namespace
}  // namespace spyglass::cpython
