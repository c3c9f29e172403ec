#include "cpython/interpreter.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <regex>

#include "process/elf.h"
#include "process/error.h"
#include "cpython/remote_pointer.h"
#include "process/memory.h"

namespace spyglass::cpython {
namespace {

constexpr int kOldestMinor = 8;
constexpr int kNewestMinor = 14;


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

PythonVersion version_from_hex(uint64_t hex) {
  PythonVersion v;
  v.hex = hex;
  v.major = static_cast<int>((hex >> 24) & 0xff);
  v.minor = static_cast<int>((hex >> 16) & 0xff);
  v.micro = static_cast<int>((hex >> 8) & 0xff);
  return v;
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

void check_supported(const PythonVersion& v) {
  if (v.major != 3 || v.minor < kOldestMinor || v.minor > kNewestMinor) {
    throw Error(ErrorKind::kUnsupported,
                fmt::format("CPython {} is not supported: spyglass supports CPython 3.{} to 3.{}",
                            v.str(), kOldestMinor, kNewestMinor));
  }
}

Layout layout_for(process::MemoryReader& memory, const PythonVersion& version,
                  uint64_t runtime_addr) {
  check_supported(version);
  if (version.minor >= 13) return layout_from_debug_offsets(memory, runtime_addr);
  auto layout = builtin_layout(version);
  if (!layout) {
    throw Error(ErrorKind::kUnsupported,
                fmt::format("CPython {} is not supported: no layout for it", version.str()));
  }
  layout->version = version;
  return *layout;
}

// An interpreter whose first thread state points back at it: the runtime checks out.
bool runtime_checks_out(process::MemoryReader& memory, const Layout& L, uint64_t runtime_addr) {
  uint64_t interp = 0, tstate = 0, back = 0;
  if (!memory.read_value(runtime_addr + L.runtime.interpreters_head, interp) ||
      !plausible_pointer(interp))
    return false;
  if (!memory.read_value(interp + L.interp.threads_head, tstate)) return false;
  if (tstate == 0) return true;  // an interpreter with no thread yet
  if (!plausible_pointer(tstate) || !memory.read_value(tstate + L.thread.interp, back)) return false;
  return back == interp;
}

// Fallback without symbols: look through the writable memory of the interpreter's file (and the
// anonymous mapping after it, its .bss) for a runtime structure whose pointers check out.
std::optional<uint64_t> scan_for_runtime(process::MemoryReader& memory,
                                         const std::vector<process::Mapping>& maps,
                                         const std::string& path, const PythonVersion& version) {
  std::optional<Layout> layout = version.minor < 13 ? builtin_layout(version) : std::nullopt;
  for (size_t i = 0; i < maps.size(); ++i) {
    const auto& m = maps[i];
    bool own = m.path == path;
    bool bss = m.path.empty() && i > 0 && maps[i - 1].path == path && maps[i - 1].end == m.start;
    if (!(own || bss) || !m.readable || !m.writable || m.size() > (64u << 20)) continue;
    std::vector<uint8_t> bytes(m.size());
    if (!memory.read(m.start, bytes.data(), bytes.size())) continue;
    if (version.minor >= 13) {
      for (size_t off = 0; off + 8 <= bytes.size(); off += 8) {
        if (has_debug_cookie(bytes.data() + off, bytes.size() - off)) return m.start + off;
      }
      continue;
    }
    if (!layout) return std::nullopt;
    uint64_t head_off = layout->runtime.interpreters_head;
    for (size_t off = 0; off + head_off + 8 <= bytes.size(); off += 8) {
      uint64_t interp = 0;
      std::memcpy(&interp, bytes.data() + off + head_off, 8);
      if (!plausible_pointer(interp)) continue;
      // `interpreters.main` follows `interpreters.head`, and both name the main interpreter:
      // this keeps the scan from settling on another field that happens to point at it.
      uint64_t main_interp = 0;
      if (off + head_off + 16 <= bytes.size()) {
        std::memcpy(&main_interp, bytes.data() + off + head_off + 8, 8);
      }
      if (main_interp != interp) continue;
      if (runtime_checks_out(memory, *layout, m.start + off)) {
        uint64_t tstate = 0;
        // Require a real thread so that a stray pair of pointers does not pass.
        if (memory.read_value(interp + layout->interp.threads_head, tstate) && tstate)
          return m.start + off;
      }
    }
  }
  return std::nullopt;
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
        version = version_from_hex(hex);
    }
    if (!version && loc.runtime_addr) {
      uint8_t head[16];
      if (memory.read(loc.runtime_addr, head, sizeof(head)) && has_debug_cookie(head, 16)) {
        uint64_t hex;
        std::memcpy(&hex, head + 8, 8);
        version = version_from_hex(hex);
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
      auto found = scan_for_runtime(memory, maps, c.path, *version);
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
    auto type_addr = [&](const char* name) -> uint64_t {
      auto sym = elf->symbol(name);
      return sym ? bias + sym->value : 0;
    };
    loc.code_type = type_addr("PyCode_Type");
    loc.unicode_type = type_addr("PyUnicode_Type");
    loc.bytes_type = type_addr("PyBytes_Type");
    return loc;
  }
  if (unsupported) throw Error(ErrorKind::kUnsupported, *unsupported);
  throw Error(ErrorKind::kNotPython,
              fmt::format("process {} is not a Python program: no CPython interpreter found in "
                          "its {} mapped files",
                          pid, candidates.size()));
}

}  // namespace spyglass::cpython
