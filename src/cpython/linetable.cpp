// Line-number tables of CPython 3.8+ (lnotab, the 3.10 table, the 3.11+ location table). The
// tables come from the target's memory, so they are untrusted: every read is bounds-checked,
// every loop runs at most once per table byte, and line arithmetic is done in 64 bits and
// clamped, so a corrupt table gives a wrong line at worst. Formats: Objects/lnotab_notes.txt
// (3.8-3.10) and Objects/locations.md (3.11+).

#include "cpython/linetable.h"

#include <climits>

namespace spyglass::cpython {
namespace {

// The line tables never need more: a real line delta is a few thousand at most.
constexpr int64_t kLineLimit = INT_MAX;

int clamp_line(int64_t line, int firstlineno) {
  if (line < 0 || line > kLineLimit) return firstlineno;
  return static_cast<int>(line);
}

// 3.8, 3.9 co_lnotab: (byte-offset increment: unsigned, line increment: signed) pairs. The line
// of an offset is the line after the last pair whose cumulative offset is <= it.
int lnotab_line(std::span<const uint8_t> table, int firstlineno, int64_t offset) {
  int64_t address = 0;
  int64_t line = firstlineno;
  for (size_t i = 0; i + 1 < table.size(); i += 2) {
    address += table[i];
    if (address > offset) break;
    line += static_cast<int8_t>(table[i + 1]);
  }
  return clamp_line(line, firstlineno);
}

// 3.10 co_linetable (PEP 626): (byte-offset delta: unsigned, line delta: signed) pairs, each
// closing a range [start, start + delta). A line delta of -128 means "no line" for that range
// and leaves the running line unchanged.
int linetable310_line(std::span<const uint8_t> table, int firstlineno, int64_t offset) {
  constexpr int8_t kNoLine = -128;
  int64_t end = 0;
  int64_t line = firstlineno;
  for (size_t i = 0; i + 1 < table.size(); i += 2) {
    const int64_t start = end;
    end += table[i];
    const auto line_delta = static_cast<int8_t>(table[i + 1]);
    const bool has_line = line_delta != kNoLine;
    if (has_line) line += line_delta;
    if (start <= offset && offset < end)
      return has_line ? clamp_line(line, firstlineno) : firstlineno;
  }
  return firstlineno;
}

// 3.11+ location table reader: entries start with a byte whose top bit is set.
class LocationReader {
 public:
  explicit LocationReader(std::span<const uint8_t> table) : table_(table) {}
  bool at_end() const { return pos_ >= table_.size(); }
  uint8_t next_byte() { return at_end() ? 0 : table_[pos_++]; }
  // Unsigned varint: 6-bit groups, least significant first, 0x40 = more follow.
  uint64_t varint() {
    uint8_t byte = next_byte();
    uint64_t value = byte & 0x3f;
    unsigned shift = 0;
    while ((byte & 0x40) != 0 && !at_end() && shift < 60) {
      byte = next_byte();
      shift += 6;
      value |= static_cast<uint64_t>(byte & 0x3f) << shift;
    }
    return value;
  }
  // Signed varint: the sign in the low bit of the unsigned varint.
  int64_t svarint() {
    const uint64_t raw = varint();
    const auto magnitude = static_cast<int64_t>((raw >> 1) & 0x3fffffffffffffffULL);
    return (raw & 1) != 0 ? -magnitude : magnitude;
  }
  // Skips what remains of the current entry (extra bytes never have the top bit set).
  void skip_to_next_entry() {
    while (!at_end() && (table_[pos_] & 0x80) == 0) ++pos_;
  }

 private:
  std::span<const uint8_t> table_;
  size_t pos_ = 0;
};

// 3.11+ co_linetable: entries of (1 code:4 length-1:3) plus extra bytes by code:
// 0-9 short form (same line), 10-12 one-line form (line delta code-10), 13 no columns (svarint
// line delta), 14 long form (svarint line delta, then end line and columns), 15 no location.
int locations_line(std::span<const uint8_t> table, int firstlineno, int64_t offset) {
  constexpr int kNoColumns = 13, kLong = 14, kNoLocation = 15;
  constexpr int kOneLine0 = 10, kOneLine2 = 12;
  LocationReader reader(table);
  int64_t end = 0;  // in code units
  int64_t line = firstlineno;
  while (!reader.at_end()) {  // each pass consumes at least one byte
    const uint8_t head = reader.next_byte();
    if ((head & 0x80) == 0) {  // not an entry start: resynchronise
      reader.skip_to_next_entry();
      continue;
    }
    const int code = (head >> 3) & 0x0f;
    const int64_t start = end;
    end += (head & 0x07) + 1;
    if (code == kNoColumns || code == kLong) {
      line += reader.svarint();
    } else if (code >= kOneLine0 && code <= kOneLine2) {
      line += code - kOneLine0;
    }
    reader.skip_to_next_entry();
    if (start <= offset && offset < end) {
      return code == kNoLocation ? firstlineno : clamp_line(line, firstlineno);
    }
    if (line < -kLineLimit || line > kLineLimit) return firstlineno;  // corrupt: stop early
  }
  return firstlineno;
}

}  // namespace

int line_for_offset(LineTableFormat format, std::span<const uint8_t> table, int firstlineno,
                    int64_t offset) {
  if (offset < 0) return firstlineno;
  switch (format) {
    case LineTableFormat::kLnotab:
      return lnotab_line(table, firstlineno, offset);
    case LineTableFormat::kLinetable310:
      return linetable310_line(table, firstlineno, offset);
    case LineTableFormat::kLocations:
      return locations_line(table, firstlineno, offset);
  }
  return firstlineno;
}

}  // namespace spyglass::cpython
