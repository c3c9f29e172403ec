// Exact mode across processes (`record --exact -s`): each worker times its own calls and sends
// its results as JSON over its control socket; these read them back and add them up into one
// table, percentiles included (from each process's latency histogram).
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <utility>
#include <vector>

#include "report/results.h"

namespace spyglass::report {

// The inverse of to_json() for exact mode's results, as a target process sent them: untrusted,
// so every field is checked. Throws std::invalid_argument naming what was wrong.
Results exact_results_from_json(const nlohmann::json& document);

// The results of several processes as one: each function's calls, times and latency summed
// (percentiles from the merged histograms), its matches merged by label, its threads listed
// side by side. Functions in the order the first process chose them, then any only others have.
Results merge_exact_results(const std::vector<Results>& parts);

// The value below which the fraction `quantile` of the calls in `histogram` ((seconds, calls),
// any order) lie, as LatencyHistogram::quantile ranks them; 0 when empty.
double histogram_quantile(std::vector<std::pair<double, uint64_t>> histogram, double quantile);

}  // namespace spyglass::report
