// Decoding each CPython version's table from instruction offset to line number.
#pragma once

#include <cstdint>
#include <span>

#include "cpython/layout.h"

namespace spyglass::cpython {

// The line of the instruction at `offset` (bytes for kLnotab/kLinetable310, code units for
// kLocations), given the code's first line. 3.8/3.9 f_lasti is in bytes; 3.10's f_lasti counts
// code units: double it for kLinetable310; 3.11+: (instruction pointer - co_code_adaptive) / 2.
// Returns `firstlineno` when the table has no line for it (incl. 3.10's -128 and 3.11+'s
// no-location entries), and never reads outside `table`.
int line_for_offset(LineTableFormat format, std::span<const uint8_t> table, int firstlineno,
                    int64_t offset);

}  // namespace spyglass::cpython
