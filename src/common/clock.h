// The one monotonic clock of the command line and the sampler, in seconds.
#pragma once

namespace spyglass {

// CLOCK_MONOTONIC in seconds (a vDSO call, ~27 ns).
double monotonic_seconds();

}  // namespace spyglass
