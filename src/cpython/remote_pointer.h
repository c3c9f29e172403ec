// The one test every pointer read from the target passes before it is followed.
#pragma once

#include <cstdint>

namespace spyglass::cpython {

// A plausible user-space object pointer: canonical, not in the first page, 8-byte aligned.
inline bool plausible_pointer(uint64_t p) { return p >= 4096 && p < (1ull << 47) && (p % 8) == 0; }

}  // namespace spyglass::cpython
