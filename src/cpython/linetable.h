// Decoding each CPython version's table from instruction offset to line number.
#pragma once

#include <cstdint>
#include <span>

#include "cpython/layout.h"

namespace spyglass::cpython {

// The line of the instruction at `offset` (bytes for kLnotab/kLinetable310, code units for
// kLocations), given the code's first line. Returns `firstlineno` when the table has no line
// for it, and never reads outside `table`.
int line_for_offset(LineTableFormat format, std::span<const uint8_t> table, int firstlineno,
                    int64_t offset);

}  // namespace spyglass::cpython
