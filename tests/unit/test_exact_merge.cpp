// Exact mode across processes: each worker's results, sent as JSON, read back and added up.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "report/exact_merge.h"
#include "report/results.h"

namespace spyglass::report {
namespace {

// One process's results for `handle` (calls, seconds, latencies of its calls), as the
// extension sends them.
Results worker(int pid, const std::vector<double>& latencies) {
  Results r;
  r.mode = "exact";
  r.pid = pid;
  r.python_version = "3.12.1";
  r.duration_seconds = 2.0;
  FunctionResult f;
  f.name = "handle";
  f.has_data = !latencies.empty();
  Latency latency;
  latency.min = 1e9;
  double sum = 0;
  for (double l : latencies) {
    sum += l;
    latency.min = std::min(latency.min, l);
    latency.max = std::max(latency.max, l);
    latency.histogram.emplace_back(l, 1);
  }
  latency.mean = latencies.empty() ? 0 : sum / static_cast<double>(latencies.size());
  latency.p50 = histogram_quantile(latency.histogram, 0.50);
  latency.p90 = histogram_quantile(latency.histogram, 0.90);
  latency.p99 = histogram_quantile(latency.histogram, 0.99);
  f.figures.calls = latencies.size();
  f.figures.seconds = sum;
  f.figures.self_seconds = sum;
  f.figures.latency = latency;
  MatchResult m;
  m.label = "handle (app.py:3)";
  m.function = "handle";
  m.file = "app.py";
  m.line = 3;
  m.has_figures = true;
  m.figures = f.figures;
  f.matches.push_back(m);
  ThreadFigures t;
  t.native_id = pid;
  t.name = "MainThread";
  t.figures = f.figures;
  f.threads.push_back(t);
  r.functions.push_back(f);
  return r;
}

TEST(ExactMerge, JsonReadsBackWhatWasWritten) {
  const Results one = worker(101, {0.001, 0.002, 0.004});
  const Results back = exact_results_from_json(to_json(one));
  ASSERT_EQ(back.functions.size(), 1u);
  EXPECT_EQ(back.pid, 101);
  EXPECT_EQ(back.functions[0].figures.calls, 3u);
  EXPECT_DOUBLE_EQ(back.functions[0].figures.seconds, 0.007);
  ASSERT_TRUE(back.functions[0].figures.latency);
  EXPECT_EQ(back.functions[0].figures.latency->histogram.size(), 3u);
  ASSERT_EQ(back.functions[0].matches.size(), 1u);
  EXPECT_TRUE(back.functions[0].matches[0].has_figures);
  ASSERT_EQ(back.functions[0].threads.size(), 1u);
  EXPECT_EQ(back.functions[0].threads[0].native_id, 101);
}

// Calls and times add up; percentiles are those of all the calls together, not an average of
// each process's.
TEST(ExactMerge, FiguresAddUpAndPercentilesComeFromAllCalls) {
  const Results merged =
      merge_exact_results({worker(1, {0.001, 0.001, 0.001, 0.001}),
                           worker(2, {0.010, 0.010, 0.010, 0.010, 0.010, 0.010})});
  ASSERT_EQ(merged.functions.size(), 1u);
  const FunctionResult& f = merged.functions[0];
  EXPECT_TRUE(f.has_data);
  EXPECT_EQ(f.figures.calls, 10u);
  EXPECT_NEAR(f.figures.seconds, 0.064, 1e-12);
  ASSERT_TRUE(f.figures.latency);
  EXPECT_NEAR(f.figures.latency->mean, 0.0064, 1e-12);
  EXPECT_DOUBLE_EQ(f.figures.latency->min, 0.001);
  EXPECT_DOUBLE_EQ(f.figures.latency->max, 0.010);
  EXPECT_DOUBLE_EQ(f.figures.latency->p50, 0.010);  // the 5th of 10 calls: process 2's
  EXPECT_DOUBLE_EQ(f.figures.latency->p90, 0.010);
  ASSERT_EQ(f.matches.size(), 1u);  // the same function in both: one match, figures summed
  EXPECT_EQ(f.matches[0].figures.calls, 10u);
  EXPECT_EQ(f.threads.size(), 2u);  // threads side by side
}

// A process that has not called the function yet takes nothing away from the others.
TEST(ExactMerge, ProcessWithoutCallsLeavesTheFiguresAlone) {
  const Results merged = merge_exact_results({worker(1, {}), worker(2, {0.003, 0.005})});
  const FunctionResult& f = merged.functions[0];
  EXPECT_EQ(f.figures.calls, 2u);
  EXPECT_DOUBLE_EQ(f.figures.latency->min, 0.003);
  EXPECT_DOUBLE_EQ(f.figures.latency->p50, 0.003);
  EXPECT_DOUBLE_EQ(f.figures.latency->max, 0.005);
}

TEST(ExactMerge, HistogramQuantileRanksAsTheExtensionDoes) {
  EXPECT_EQ(histogram_quantile({}, 0.5), 0);
  EXPECT_DOUBLE_EQ(histogram_quantile({{2.0, 1}, {1.0, 1}}, 0.5), 1.0);  // p50 of {a, b} is a
  EXPECT_DOUBLE_EQ(histogram_quantile({{1.0, 99}, {5.0, 1}}, 0.99), 1.0);
  EXPECT_DOUBLE_EQ(histogram_quantile({{1.0, 98}, {5.0, 2}}, 0.99), 5.0);
}

// What a target sends is untrusted: a wrong shape is an error naming it, never a crash.
TEST(ExactMerge, BadResultsAreRefusedWithAReason) {
  using nlohmann::json;
  EXPECT_THROW(exact_results_from_json(json::array()), std::invalid_argument);
  EXPECT_THROW(exact_results_from_json(json{{"mode", "wall"}}), std::invalid_argument);
  json doc = to_json(worker(1, {0.001}));
  doc["functions"][0]["calls"] = -3;
  EXPECT_THROW(exact_results_from_json(doc), std::invalid_argument);
  doc = to_json(worker(1, {0.001}));
  doc["functions"][0]["calls"] = 5e84;
  EXPECT_THROW(exact_results_from_json(doc), std::invalid_argument);
  doc = to_json(worker(1, {0.001}));
  doc["functions"][0]["latency"]["histogram"] = json::array({json::array({0.1})});
  EXPECT_THROW(exact_results_from_json(doc), std::invalid_argument);
  doc = to_json(worker(1, {0.001}));
  doc["functions"][0]["threads"] = "many";
  EXPECT_THROW(exact_results_from_json(doc), std::invalid_argument);
}

}  // namespace
}  // namespace spyglass::report
