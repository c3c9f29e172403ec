// The version checks and helpers of layout.h; the tables themselves are generated from
// versions.toml (layout_generated.cpp) and read by debug_offsets.cpp.
#include "cpython/layout.h"

#include <fmt/format.h>

#include <cstring>

#include "common/error.h"

namespace spyglass::cpython {

std::string PythonVersion::str() const {
  return fmt::format("{}.{}.{}", major, minor, micro);
}

PythonVersion PythonVersion::from_hex(uint64_t hex) {
  PythonVersion version;
  version.major = static_cast<int>((hex >> 24) & 0xff);
  version.minor = static_cast<int>((hex >> 16) & 0xff);
  version.micro = static_cast<int>((hex >> 8) & 0xff);
  version.hex = hex;
  return version;
}

bool has_debug_cookie(const void* bytes, size_t size) {
  static constexpr char kCookie[8] = {'x', 'd', 'e', 'b', 'u', 'g', 'p', 'y'};
  return bytes != nullptr && size >= sizeof(kCookie) &&
         std::memcmp(bytes, kCookie, sizeof(kCookie)) == 0;
}

void check_supported(const PythonVersion& v) {
  const SupportedVersions& range = kSupportedVersions;
  if (v.major == 3 && v.minor > range.newest_minor) {
    // A newer interpreter than this spyglass knows (say a 3.16 alpha): say what it would take.
    throw Error(ErrorKind::kUnsupported,
                fmt::format("CPython {} is newer than this spyglass knows (3.{} to 3.{}): "
                            "supporting it takes its _Py_DebugOffsets shape and the constants "
                            "outside it in src/cpython/versions.toml, checked against "
                            "libpython3.{}-dev's headers by tools/check_layouts.py",
                            v.str(), range.oldest_minor, range.newest_minor, v.minor));
  }
  if (v.major != 3 || v.minor < range.oldest_minor) {
    throw Error(ErrorKind::kUnsupported,
                fmt::format("CPython {} is not supported: spyglass supports CPython 3.{} to 3.{}",
                            v.str(), range.oldest_minor, range.newest_minor));
  }
}

bool reads_debug_offsets(const PythonVersion& version) {
  return version.major == 3 && version.minor >= kSupportedVersions.first_debug_offsets_minor;
}

Layout layout_for(process::MemoryReader& memory, const PythonVersion& version,
                  uint64_t runtime_addr) {
  check_supported(version);
  if (reads_debug_offsets(version)) return layout_from_debug_offsets(memory, runtime_addr);
  auto layout = builtin_layout(version);
  if (!layout) {  // a version in the range always has one: versions.toml says so
    throw Error(ErrorKind::kUnsupported,
                fmt::format("CPython {} is not supported: no layout for it", version.str()));
  }
  return *layout;
}

}  // namespace spyglass::cpython
