// libFuzzer target: the line-table decoders of every CPython version on arbitrary tables and
// offsets. They must never read outside the table and always return a line.
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "cpython/linetable.h"

using spyglass::cpython::LineTableFormat;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 13) return 0;
  static const LineTableFormat kFormats[] = {LineTableFormat::kLnotab,
                                             LineTableFormat::kLinetable310,
                                             LineTableFormat::kLocations};
  LineTableFormat format = kFormats[data[0] % 3];
  int32_t firstlineno;
  int64_t offset;
  std::memcpy(&firstlineno, data + 1, sizeof(firstlineno));
  std::memcpy(&offset, data + 5, sizeof(offset));
  // A copy of exactly the table's size, so AddressSanitizer sees any read past its end.
  std::vector<uint8_t> table(data + 13, data + size);
  (void)spyglass::cpython::line_for_offset(format, std::span<const uint8_t>(table), firstlineno,
                                           offset);
  // Small offsets are where the real instructions are.
  for (int64_t small = -2; small < 64; small += 7) {
    (void)spyglass::cpython::line_for_offset(format, std::span<const uint8_t>(table),
                                             firstlineno, small);
  }
  return 0;
}
