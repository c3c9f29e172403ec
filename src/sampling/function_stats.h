// Per-function figures computed from a Profile: the chosen functions' results, and the
// heaviest functions of the whole program (for `functions` and `top`).
#pragma once

#include <string>
#include <vector>

#include "report/chosen.h"
#include "report/results.h"
#include "sampling/profile.h"
#include "sampling/sampler.h"

namespace spyglass::sampling {

// Throws Error(kUsage) for a malformed function pattern, saying why.
void check_pattern(const std::string& text);

// The results for the chosen set (every pattern appears, "no data" when never seen), built
// for `profile` by the caller's query.
report::Results chosen_function_results(const Profile& profile, const report::ChosenSet& chosen,
                                        const SamplerStatus& status);

struct FunctionTotals {
  std::string function;  // qualified name
  std::string file;
  int firstlineno = 0;
  double seconds = 0;  // inclusive
  double self_seconds = 0;
  uint64_t samples = 0;
};

// Every function seen, heaviest (inclusive) first; only those matching `pattern` when given
// (Error(kUsage) for a malformed one).
std::vector<FunctionTotals> function_totals(const Profile& profile,
                                            const std::string& pattern = "");

}  // namespace spyglass::sampling
