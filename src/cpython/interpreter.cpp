#include "cpython/interpreter.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <regex>

#include "common/error.h"
#include "cpython/remote_pointer.h"
#include "cpython/walker.h"
#include "process/elf.h"
#include "process/memory.h"

namespace spyglass::cpython {
namespace {

std::string basename_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Files mapped into the process, most likely interpreter holders first.
struct Candidate {
  std::string path;
  uint64_t base = 0;  // start of the mapping of file offset 0
  bool has_base = false;
  int priority = 3;
};

std::vector<Candidate> candidates_from_maps(const std::vector<process::Mapping>& maps) {
  static const std::regex libpython(R"(^libpython\d\.\d+.*\.so)");
  static const std::regex python(R"(^python\d(\.\d+)?)");
  std::map<std::string, Candidate> by_path;
  for (const auto& m : maps) {
    if (m.path.empty() || m.path[0] != '/') continue;
    Candidate& c = by_path[m.path];
    c.path = m.path;
    if (m.offset == 0 && (!c.has_base || m.start < c.base)) {
      c.base = m.start;
      c.has_base = true;
    }
    std::string name = basename_of(m.path);
    int priority = std::regex_search(name, libpython) ? 0
                   : std::regex_search(name, python)  ? 1
                   : m.executable                     ? 2
                                                      : 3;
    c.priority = std::min(c.priority, priority);
  }
  std::vector<Candidate> out;
  for (auto& [path, c] : by_path) {
    if (c.has_base && c.priority <= 2) out.push_back(c);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Candidate& a, const Candidate& b) { return a.priority < b.priority; });
  return out;
}

// The version from the file name (python3.9, libpython3.9.so) and, for the micro version, the
// sys.version string in the binary ("3.9.18 (main, ...").
std::optional<PythonVersion> version_from_file(const process::ElfFile& elf,
                                               const std::string& path) {
  static const std::regex name_re(R"(python(\d)\.(\d+))");
  std::smatch m;
  std::string name = basename_of(path);
  PythonVersion v;
  if (std::regex_search(name, m, name_re)) {
    v.major = std::stoi(m[1]);
    v.minor = std::stoi(m[2]);
  }
  // PY_VERSION ("3.9.18", "3.13.0rc1", "3.11.2+") is a string of its own in the binary.
  std::string prefix = v.major ? fmt::format("{}.{}.", v.major, v.minor) : "3.";
  static const std::regex full_re(R"(^(\d)\.(\d+)\.(\d+)((a|b|rc)\d+)?\+?( \(|$))");
  for (const auto& s : elf.find_strings(prefix, 5, 256)) {
    if (std::regex_search(s, m, full_re)) {
      if (v.major && (std::stoi(m[1]) != v.major || std::stoi(m[2]) != v.minor)) continue;
      v.major = std::stoi(m[1]);
      v.minor = std::stoi(m[2]);
      v.micro = std::stoi(m[3]);
      break;
    }
  }
  if (!v.major) return std::nullopt;
  v.hex = (uint64_t(v.major) << 24) | (uint64_t(v.minor) << 16) | (uint64_t(v.micro) << 8);
  return v;
}

// An interpreter whose first thread state points back at it: the runtime checks out.
bool runtime_checks_out(process::MemoryReader& memory, const Layout& L, uint64_t runtime_addr) {
  uint64_t interp = 0, tstate = 0, back = 0;
  if (!memory.read_value(runtime_addr + L.runtime.interpreters_head, interp) ||
      !plausible_pointer(interp))
    return false;
  if (!memory.read_value(interp + L.interp.threads_head, tstate)) return false;
  if (tstate == 0) return true;  // an interpreter with no thread yet
  if (!plausible_pointer(tstate) || !memory.read_value(tstate + L.thread.interp, back))
    return false;
  return back == interp;
}

// 3.11+ embed the main interpreter in the runtime (_PyRuntime._main_interpreter), after the
// interpreter list.
bool main_inside_runtime(const Layout& L, uint64_t runtime_addr, uint64_t main_interp) {
  const uint64_t first = runtime_addr + L.runtime.interpreters_head + 16;
  return main_interp >= first && L.runtime.size >= L.interp.size &&
         main_interp - runtime_addr <= L.runtime.size - L.interp.size;
}

// The embedded main interpreter (3.11+), checked in the bytes already read, which saves the
// reads of thousands of pointer pairs that pass the first tests: it is the last interpreter of
// the list, numbered 0, with a thread. True when it lies outside `bytes` (examined later).
bool embedded_main_looks_right(const Layout& L, const std::vector<uint8_t>& bytes,
                               uint64_t bytes_addr, uint64_t main_interp) {
  const uint64_t fields_end =
      std::max({L.interp.next, L.interp.id, L.interp.threads_head}) + sizeof(uint64_t);
  if (bytes.size() < fields_end || main_interp < bytes_addr ||
      main_interp - bytes_addr > bytes.size() - fields_end)
    return true;
  auto field = [&](uint64_t offset) {
    uint64_t value = 0;
    std::memcpy(&value, bytes.data() + (main_interp - bytes_addr) + offset, sizeof(value));
    return value;
  };
  return field(L.interp.next) == 0 && field(L.interp.id) == 0 &&
         plausible_pointer(field(L.interp.threads_head));
}

// The reads the scan may make after reading the mappings, whatever the target holds: at 2-3 us
// a read, the scan stays well under a second even on memory built to mislead it.
constexpr uint64_t kScanMaxReads = 100'000;

// Examining candidates reads through this: once the budget is spent every read fails, so each
// candidate still being examined fails and the scan ends.
class BudgetedMemory : public process::MemoryReader {
 public:
  BudgetedMemory(process::MemoryReader& memory, uint64_t budget)
      : memory_(memory), reads_left_(budget) {}
  bool read(process::RemoteAddr addr, void* out, size_t size) override {
    if (reads_left_ == 0) return false;
    --reads_left_;
    return memory_.read(addr, out, size);
  }
  bool spent() const { return reads_left_ == 0; }

 private:
  process::MemoryReader& memory_;
  uint64_t reads_left_;
};

// Bounds of the memory scan: the scan must stay fast and finite whatever the target holds.
constexpr size_t kScanMaxCandidates = 4096;    // candidates checked in depth
constexpr size_t kScanMaxInterpreters = 256;   // per candidate runtime
constexpr size_t kScanMaxThreads = 10'000;     // per interpreter
constexpr size_t kScanThreadsWithFrames = 64;  // threads whose frames are looked at
constexpr size_t kScanFramesPerThread = 16;    // frames looked at per thread

// tp_name and string data need not be 8-byte aligned.
bool plausible_address(uint64_t p) {
  return p >= 4096 && p < (1ull << 47);
}

// A code object: its type's tp_name reads "code".
bool is_code_object(process::MemoryReader& memory, const Layout& L, uint64_t object) {
  uint64_t type = 0, name = 0;
  char text[5] = {};
  return plausible_pointer(object) && memory.read_value(object + L.ob_type, type) &&
         plausible_pointer(type) && memory.read_value(type + L.type_name, name) &&
         plausible_address(name) && memory.read(name, text, sizeof(text)) &&
         std::memcmp(text, "code", 5) == 0;
}

// True when one of the first frames of the thread holds a code object: its stack is real.
bool thread_runs_code(process::MemoryReader& memory, const Layout& L, uint64_t tstate) {
  uint64_t frame = read_current_frame(memory, L, tstate);
  for (size_t depth = 0; depth < kScanFramesPerThread && plausible_pointer(frame); ++depth) {
    uint64_t code = 0;
    if (!memory.read_value(frame + L.frame.code, code)) return false;
    if (L.frame.code_is_tagged) code &= ~uint64_t{3};
    if (is_code_object(memory, L, code)) return true;
    if (!memory.read_value(frame + L.frame.previous, frame)) return false;
  }
  return false;
}

// What a candidate runtime's interpreters and threads show; `whole` is false as soon as one
// pointer does not check out.
struct RuntimeEvidence {
  bool whole = false;
  bool main_id_zero = false;     // the main interpreter's id is 0, as CPython numbers it
  bool thread_is_pid = false;    // 3.11+: a thread's native id is the process id (main thread)
  bool code_on_a_stack = false;  // a thread's frames hold a real code object
  constexpr int score() const {
    return (code_on_a_stack ? 4 : 0) + (thread_is_pid ? 2 : 0) + main_id_zero;
  }
};

// Every thread of `interp` points back at it, and each thread's `prev` at the one before it.
bool threads_check_out(process::MemoryReader& memory, const Layout& L, pid_t pid, uint64_t interp,
                       bool need_a_thread, RuntimeEvidence& evidence, size_t& threads_with_frames) {
  uint64_t tstate = 0, previous = 0;
  if (!memory.read_value(interp + L.interp.threads_head, tstate)) return false;
  if (tstate == 0) return !need_a_thread;
  for (size_t n = 0; tstate != 0; ++n) {
    uint64_t back = 0, prev = 0;
    if (n == kScanMaxThreads || !plausible_pointer(tstate) ||
        !memory.read_value(tstate + L.thread.interp, back) || back != interp ||
        !memory.read_value(tstate + L.thread.prev, prev) || prev != previous)
      return false;
    if (L.thread.native_thread_id) {
      int64_t native_id = 0;
      if (memory.read_value(tstate + L.thread.native_thread_id, native_id) && native_id == pid)
        evidence.thread_is_pid = true;
    }
    if (!evidence.code_on_a_stack && threads_with_frames < kScanThreadsWithFrames) {
      ++threads_with_frames;
      evidence.code_on_a_stack = thread_runs_code(memory, L, tstate);
    }
    previous = tstate;
    if (!memory.read_value(tstate + L.thread.next, tstate)) return false;
  }
  return true;
}

// Checks a candidate runtime in depth: the interpreter list from interpreters.head ends, and
// reaches interpreters.main; every interpreter's threads point back at it; the main interpreter
// has a thread. 3.11+ embed the main interpreter in the runtime (_PyRuntime._main_interpreter),
// so there `main` must lie inside the candidate.
RuntimeEvidence examine_runtime(process::MemoryReader& memory, const Layout& L, pid_t pid,
                                uint64_t runtime_addr) {
  RuntimeEvidence evidence;
  uint64_t head_and_main[2] = {};
  if (!memory.read(runtime_addr + L.runtime.interpreters_head, head_and_main,
                   sizeof(head_and_main)))
    return evidence;
  const uint64_t head = head_and_main[0], main_interp = head_and_main[1];
  if (!plausible_pointer(head) || !plausible_pointer(main_interp)) return evidence;
  if (L.version.at_least(3, 11) && !main_inside_runtime(L, runtime_addr, main_interp))
    return evidence;
  bool reached_main = false;
  size_t threads_with_frames = 0;
  uint64_t interp = head;
  for (size_t n = 0; interp != 0; ++n) {
    if (n == kScanMaxInterpreters || !plausible_pointer(interp)) return evidence;
    const bool is_main = interp == main_interp;
    if (!threads_check_out(memory, L, pid, interp, is_main, evidence, threads_with_frames))
      return evidence;
    if (is_main) {
      reached_main = true;
      int64_t id = -1;
      evidence.main_id_zero = memory.read_value(interp + L.interp.id, id) && id == 0;
    }
    if (!memory.read_value(interp + L.interp.next, interp)) return evidence;
  }
  evidence.whole = reached_main;
  return evidence;
}

// Fallback without symbols: look through the writable memory of the interpreter's file (and the
// anonymous mapping after it, its .bss) for runtime structures, examine each in depth, and keep
// the one with the most evidence. Cheap tests on the bytes already read come first: 3.13+ start
// with the debug cookie; before, `interpreters.main` follows `interpreters.head` and, 3.11+,
// points inside the runtime itself (3.8-3.10: it equals head, the main interpreter being the
// only one in nearly every process). Taking the first structure whose pointers check out is not
// enough: on 3.11, obmalloc's `usedpools` table is a row of circular lists whose pointers check
// out as a runtime, an interpreter and a thread pointing back at it.
std::optional<uint64_t> scan_for_runtime(pid_t pid, process::MemoryReader& memory,
                                         const std::vector<process::Mapping>& maps,
                                         const std::string& path, const PythonVersion& version) {
  std::optional<Layout> builtin;
  if (version.minor < 13) {
    builtin = builtin_layout(version);
    if (!builtin) return std::nullopt;
    builtin->version = version;
  }
  constexpr int kPerfectScore = RuntimeEvidence{true, true, true, true}.score();
  std::optional<uint64_t> best;
  int best_score = -1;
  size_t examined = 0;
  BudgetedMemory budgeted(memory, kScanMaxReads);
  // Returns true once the search is over: a perfect candidate, or a bound reached.
  auto consider = [&](const Layout& L, uint64_t runtime_addr) {
    if (++examined > kScanMaxCandidates || budgeted.spent()) return true;
    RuntimeEvidence evidence = examine_runtime(budgeted, L, pid, runtime_addr);
    if (evidence.whole && evidence.score() > best_score) {
      best = runtime_addr;
      best_score = evidence.score();
    }
    return best_score == kPerfectScore;
  };
  for (size_t i = 0; i < maps.size(); ++i) {
    const auto& m = maps[i];
    bool own = m.path == path;
    bool bss = m.path.empty() && i > 0 && maps[i - 1].path == path && maps[i - 1].end == m.start;
    if (!(own || bss) || !m.readable || !m.writable || m.size() > (64u << 20)) continue;
    std::vector<uint8_t> bytes(m.size());
    if (!memory.read(m.start, bytes.data(), bytes.size())) continue;
    if (!builtin) {
      for (size_t off = 0; off + 8 <= bytes.size(); off += 8) {
        if (!has_debug_cookie(bytes.data() + off, bytes.size() - off)) continue;
        try {
          Layout L = layout_from_debug_offsets(budgeted, m.start + off);
          if (consider(L, m.start + off)) return best;
        } catch (const Error&) {
          // Not a valid offsets table: a stray copy of the cookie.
        }
      }
      continue;
    }
    const Layout& L = *builtin;
    const uint64_t head_off = L.runtime.interpreters_head;
    for (size_t off = 0; off + head_off + 16 <= bytes.size(); off += 8) {
      uint64_t head = 0, main_interp = 0;
      std::memcpy(&head, bytes.data() + off + head_off, 8);
      std::memcpy(&main_interp, bytes.data() + off + head_off + 8, 8);
      if (!plausible_pointer(head) || !plausible_pointer(main_interp)) continue;
      if (version.minor >= 11 ? !main_inside_runtime(L, m.start + off, main_interp)
                              : main_interp != head)
        continue;
      if (version.minor >= 11 && !embedded_main_looks_right(L, bytes, m.start, main_interp))
        continue;
      if (consider(L, m.start + off)) return best;
    }
  }
  return best;
}

}  // namespace

RuntimeLocation locate_runtime(pid_t pid, process::MemoryReader& memory,
                               const std::vector<process::Mapping>& maps) {
  const bool force_scan = std::getenv("SPYGLASS_FORCE_SCAN") != nullptr;  // tests the fallback
  std::vector<Candidate> candidates = candidates_from_maps(maps);
  size_t checked = 0;
  std::optional<std::string> unsupported;
  for (const Candidate& c : candidates) {
    if (c.priority == 2 && checked > 64) break;
    std::unique_ptr<process::ElfFile> elf;
    try {
      elf = std::make_unique<process::ElfFile>(process::path_in_process_root(pid, c.path));
    } catch (const Error&) {
      continue;
    }
    ++checked;
    const uint64_t bias = c.base - elf->first_load_vaddr();
    RuntimeLocation loc;
    loc.binary = c.path;
    if (!force_scan) {
      if (auto sym = elf->symbol("_PyRuntime")) {
        loc.runtime_addr = bias + sym->value;
        loc.how = "symbol _PyRuntime";
      } else if (auto sec = elf->section(".PyRuntime")) {
        loc.runtime_addr = bias + sec->addr;
        loc.how = ".PyRuntime section";
      }
    }
    bool python_named = c.priority <= 1;
    if (!loc.runtime_addr && !python_named) continue;

    // The version: Py_Version (3.11+), the debug offsets (3.13+), then the file itself.
    std::optional<PythonVersion> version;
    if (auto sym = elf->symbol("Py_Version")) {
      uint32_t hex = 0;
      if (memory.read_value(bias + sym->value, hex) && (hex >> 24) == 3)
        version = PythonVersion::from_hex(hex);
    }
    if (!version && loc.runtime_addr) {
      uint8_t head[16];
      if (memory.read(loc.runtime_addr, head, sizeof(head)) && has_debug_cookie(head, 16)) {
        uint64_t hex;
        std::memcpy(&hex, head + 8, 8);
        version = PythonVersion::from_hex(hex);
      }
    }
    if (!version) version = version_from_file(*elf, c.path);
    if (!version) continue;
    try {
      check_supported(*version);
    } catch (const Error& e) {
      if (loc.runtime_addr || python_named) unsupported = e.what();
      continue;
    }

    if (!loc.runtime_addr) {
      auto found = scan_for_runtime(pid, memory, maps, c.path, *version);
      if (!found) continue;
      loc.runtime_addr = *found;
      loc.how = "memory scan";
    }
    loc.layout = layout_for(memory, *version, loc.runtime_addr);
    if (!runtime_checks_out(memory, loc.layout, loc.runtime_addr)) {
      throw Error(ErrorKind::kNotPython,
                  fmt::format("the Python interpreter in process {} ({}) is not running yet or "
                              "has shut down: no interpreter state to read",
                              pid, version->str()));
    }
    auto symbol_addr = [&](const char* name) -> uint64_t {
      auto sym = elf->symbol(name);
      return sym ? bias + sym->value : 0;
    };
    loc.code_type = symbol_addr("PyCode_Type");
    loc.unicode_type = symbol_addr("PyUnicode_Type");
    loc.bytes_type = symbol_addr("PyBytes_Type");
    if (loc.layout.runtime.code_counter_global)
      loc.code_counter = symbol_addr("_Py_next_func_version");
    return loc;
  }
  if (unsupported) throw Error(ErrorKind::kUnsupported, *unsupported);
  throw Error(ErrorKind::kNotPython,
              fmt::format("process {} is not a Python program: no CPython interpreter found in "
                          "its {} mapped files",
                          pid, candidates.size()));
}

}  // namespace spyglass::cpython
