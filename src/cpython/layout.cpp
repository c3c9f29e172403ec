// Small helpers of layout.h; the tables are in layout_tables.cpp and debug_offsets.cpp.
#include "cpython/layout.h"

#include <fmt/format.h>

#include <cstring>

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

}  // namespace spyglass::cpython
